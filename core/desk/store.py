"""Where desk decisions are kept: a port, and the in-memory store of backtests and embedded runs.

PostgreSQL (``desk_decisions`` + ``desk_role_outputs``, migration 009) is the live adapter
(``infrastructure/database/timescale/desk_store.py``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable
from uuid import UUID

from core.messages.desk import DeskDecision


@runtime_checkable
class DeskStore(Protocol):
    """Desk decisions with their role reports."""

    async def record(self, decision: DeskDecision) -> None:
        """Store a decision and its role reports (idempotent by decision id)."""
        ...

    async def get(self, decision_id: UUID) -> DeskDecision | None:
        """One decision, or None."""
        ...

    async def query(
        self, *, symbol: str | None = None, outcome: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[DeskDecision], int]:
        """Decisions newest first (``outcome`` filters on the verdict), and the total matching."""
        ...


class InMemoryDeskStore:
    """:class:`DeskStore` in a dict (bounded: the oldest decisions are dropped past ``limit``)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._decisions: dict[UUID, DeskDecision] = {}

    async def record(self, decision: DeskDecision) -> None:
        """See the port."""
        self._decisions.setdefault(decision.decision_id, decision)
        while len(self._decisions) > self.limit:
            del self._decisions[next(iter(self._decisions))]

    async def get(self, decision_id: UUID) -> DeskDecision | None:
        """See the port."""
        return self._decisions.get(decision_id)

    async def query(
        self, *, symbol: str | None = None, outcome: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[DeskDecision], int]:
        """See the port."""
        rows = [
            d
            for d in self._decisions.values()
            if (symbol is None or d.symbol == symbol) and (outcome is None or d.verdict == outcome.upper())
        ]
        rows.sort(key=lambda d: (d.ts, str(d.decision_id)), reverse=True)
        return rows[offset : offset + limit], len(rows)

    def all(self) -> list[DeskDecision]:
        """Every decision, oldest first."""
        return sorted(self._decisions.values(), key=lambda d: (d.ts, str(d.decision_id)))
