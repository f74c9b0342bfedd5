"""The contract registry: wire ``type`` + ``schema_version`` -> payload class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from core.errors import UnknownMessageType
from core.messages.base import Payload

P = TypeVar("P", bound=type[Payload])


class MessageRegistry:
    """Maps ``(type, schema_version)`` to the payload class that validates it."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], type[Payload]] = {}

    def register(self, cls: P) -> P:
        """Register a payload class (usable as a class decorator). Duplicates are an error."""
        if not cls.TYPE:
            raise ValueError(f"{cls.__name__} has no TYPE")
        key = (cls.TYPE, cls.SCHEMA_VERSION)
        existing = self._by_key.get(key)
        if existing is not None and existing is not cls:
            raise ValueError(f"{key} is registered twice: {existing.__name__} and {cls.__name__}")
        self._by_key[key] = cls
        return cls

    def resolve(self, type_: object, schema_version: object) -> type[Payload]:
        """The payload class for a wire type and version; raises :class:`UnknownMessageType`."""
        if not isinstance(type_, str) or not isinstance(schema_version, int):
            raise UnknownMessageType("envelope lacks a string 'type' and an integer 'schema_version'")
        cls = self._by_key.get((type_, schema_version))
        if cls is None:
            known = sorted(v for (t, v) in self._by_key if t == type_)
            hint = f" (known versions: {known})" if known else ""
            raise UnknownMessageType(f"unknown message type {type_!r} v{schema_version}{hint}")
        return cls

    def __iter__(self) -> Iterator[type[Payload]]:
        return iter(sorted(self._by_key.values(), key=lambda c: (c.TYPE, c.SCHEMA_VERSION)))

    def __len__(self) -> int:
        return len(self._by_key)


REGISTRY = MessageRegistry()
"""The process-wide registry every built-in contract registers into."""

register = REGISTRY.register
