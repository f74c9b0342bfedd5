"""Risk decides each trade intent once: the first decision per ``intent_id`` and the message it came in.

A second message carrying an intent already decided (the strategy replayed it, a restarted strategy
decided the same candle again, anyone re-published it) is a duplicate: it is not decided again and
nothing is published for it. Only a *redelivery* of the very message that was decided (same
``message_id``: the broker gave it back because the process died before acknowledging it) publishes
the stored decision again, so a decision lost with a crash still reaches compliance.

The ledger is kept in memory (bounded like the engine's decision cache: forgotten one retention grace
after the intent expired, at most ``keep`` entries) and, in the agent processes, in PostgreSQL
(``risk_intents``), so a restarted risk agent does not decide an intent twice either.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from core.messages import RiskDecision
from core.trading.retention import ExpiryQueue


class DurableLedger(Protocol):
    """The durable part of the ledger (``infrastructure.database.timescale.control_store.PostgresRiskLedger``)."""

    async def get(self, intent_id: UUID) -> tuple[UUID, dict[str, Any]] | None:
        """``(message id, decision JSON)`` of a decided intent, or None."""
        ...

    async def add(self, intent_id: UUID, message_id: UUID, decision: dict[str, Any], decided_at: datetime) -> bool:
        """Record the first decision; False when the intent was decided already."""
        ...


class IntentLedger:
    """The first decision of every intent (see the module docstring)."""

    def __init__(
        self, durable: DurableLedger | None = None, *, grace: timedelta | None = None, keep: int = 100_000
    ) -> None:
        self.durable = durable
        self.keep = keep
        self._decided: OrderedDict[UUID, tuple[UUID, RiskDecision]] = OrderedDict()
        self._expiry: ExpiryQueue[UUID] | None = ExpiryQueue(grace) if grace is not None else None

    def __len__(self) -> int:
        return len(self._decided)

    async def first(self, intent_id: UUID) -> tuple[UUID, RiskDecision] | None:
        """``(message id, decision)`` of the intent's first decision, or None when it is new."""
        known = self._decided.get(intent_id)
        if known is not None or self.durable is None:
            return known
        stored = await self.durable.get(intent_id)
        if stored is None:
            return None
        return stored[0], RiskDecision.model_validate(stored[1])

    async def record(self, message_id: UUID, decision: RiskDecision, expires_at: datetime, now: datetime) -> bool:
        """Remember ``decision`` as the intent's first; False when another process recorded one first."""
        if self.durable is not None and not await self.durable.add(
            decision.intent_id, message_id, decision.model_dump(mode="json"), now
        ):
            return False
        decided = self._decided
        decided[decision.intent_id] = (message_id, decision)
        if len(decided) > self.keep:
            decided.popitem(last=False)
        expiry = self._expiry
        if expiry is not None:
            expiry.add(decision.intent_id, expires_at)
            for intent_id in expiry.due(now):
                decided.pop(intent_id, None)
        return True
