"""Fixtures of the RabbitMQ integration tests: a private broker node for the restart test."""

from tests.stackkit import private_broker

__all__ = ["private_broker"]
