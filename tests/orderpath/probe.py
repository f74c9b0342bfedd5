"""A test-side listener that collects every payload of some routing patterns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

from core.messages import Envelope, Payload
from core.ports import Bus, QueueSpec

P = TypeVar("P", bound=Payload)


class Probe:
    """Collects payloads published on ``patterns`` (its own queue)."""

    def __init__(self) -> None:
        self.items: list[Payload] = []

    async def attach(self, bus: Bus, patterns: Sequence[str]) -> Probe:
        """Bind a fresh queue and start collecting."""

        async def handler(envelope: Envelope) -> None:
            self.items.append(envelope.payload)

        await bus.subscribe(QueueSpec(name=f"probe.{uuid.uuid4().hex[:8]}", patterns=tuple(patterns)), handler)
        return self

    def of(self, cls: type[P]) -> list[P]:
        """The collected payloads of one type."""
        return [p for p in self.items if isinstance(p, cls)]
