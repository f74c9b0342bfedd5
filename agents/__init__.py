"""Agents: one package per agent. Each holds its decision logic (ports only) and its wiring.

Agents never import each other (import-linter enforces it); they talk only through the bus.
"""
