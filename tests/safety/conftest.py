"""Fixtures of the safety tests: the shared kit (tests/stackkit.py) exposes a private broker."""

from tests.stackkit import private_broker

__all__ = ["private_broker"]
