"""The intended trading state: what the operator last asked the whole swarm to do, kept durably.

The orchestrator is the one place that knows whether trading should be ACTIVE, PAUSED or HALTED. It
saves that intent before it publishes the command (so a HALT survives an orchestrator restart even
if no agent reports it), restores it at start, and reconciles the agents with it: an agent that
reports another state than the intent asks for is commanded again and alerted on
(:mod:`agents.orchestrator.agent`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from agents.orchestrator.commands import TradingMode


@dataclass(frozen=True, slots=True)
class TradingIntent:
    """The swarm-wide trading mode the operator asked for, and by which command."""

    mode: TradingMode
    changed_at: datetime
    command_id: UUID | None = None
    reason: str = ""
    issued_by: str = ""


class IntentStore(Protocol):
    """Where the intended trading state survives the orchestrator process."""

    async def load(self) -> TradingIntent | None:
        """The last saved intent (None: never saved)."""
        ...

    async def save(self, intent: TradingIntent) -> None:
        """Save ``intent`` durably before returning."""
        ...


class InMemoryIntentStore:
    """An :class:`IntentStore` in memory (one process: tests, the in-process swarm)."""

    def __init__(self) -> None:
        self.intent: TradingIntent | None = None

    async def load(self) -> TradingIntent | None:
        """See :class:`IntentStore`."""
        return self.intent

    async def save(self, intent: TradingIntent) -> None:
        """See :class:`IntentStore`."""
        self.intent = intent
