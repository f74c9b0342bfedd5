"""Daily token budgets: the in-memory ledger (backtests, the embedded run) and the PostgreSQL one.

Both follow the same rules (:class:`core.llm.TokenBudget`): a call first *reserves* its worst case
(prompt estimate + answer cap) from the UTC day's remainder, atomically, or is refused; after the
call the reservation is *settled* with the real usage. The day's ``used`` is reserved-but-unsettled
tokens plus settled usage, so concurrent callers can never together reserve more than the budget.
A reservation settles on the day it was made, even when the call ends after midnight.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from core.llm import Usage


def utc_now() -> datetime:
    """The wall clock, UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One role and model's share of a day: calls, tokens, estimated cost, and tokens still held."""

    role: str
    model: str
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    open_reservations: int = 0
    reserved_open: int = 0

    @property
    def tokens(self) -> int:
        """Tokens in and out."""
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A day of the budget: the limit, what is used (settled + held), and the split by role/model."""

    day: date
    budget: int
    used: int
    rows: tuple[UsageRow, ...] = field(default=())

    @property
    def remaining(self) -> int:
        """Tokens still available today (never negative)."""
        return max(0, self.budget - self.used)

    @property
    def cost_usd(self) -> Decimal:
        """The day's estimated cost."""
        return sum((r.cost_usd for r in self.rows), Decimal(0))


@dataclass(slots=True)
class _Entry:
    day: date
    role: str
    model: str
    reserved: int
    usage: Usage | None = None
    cost_usd: Decimal = Decimal(0)


class InMemoryTokenBudget:
    """The daily budget in this process's memory, with the same rules as the PostgreSQL ledger.

    Reserve and settle take a lock and never await, so concurrent tasks (and threads) cannot
    overspend. ``now`` is the clock that says which UTC day it is (the wall clock by default).
    """

    def __init__(self, daily_tokens: int, *, now: Callable[[], datetime] = utc_now) -> None:
        if daily_tokens < 0:
            raise ValueError("daily_tokens must be >= 0")
        self.daily_tokens = daily_tokens
        self._now = now
        self._lock = threading.Lock()
        self._used: dict[date, int] = {}
        self._entries: dict[str, _Entry] = {}

    def _today(self) -> date:
        return self._now().astimezone(UTC).date()

    async def reserve(self, tokens: int, *, role: str, model: str) -> str | None:
        """Take ``tokens`` from today's remainder; the reservation id, or None when they do not fit."""
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        day = self._today()
        with self._lock:
            used = self._used.get(day, 0)
            if used + tokens > self.daily_tokens:
                return None
            self._used[day] = used + tokens
            rid = str(uuid.uuid4())
            self._entries[rid] = _Entry(day=day, role=role, model=model, reserved=tokens)
            return rid

    async def settle(self, reservation_id: str, usage: Usage, cost_usd: Decimal) -> None:
        """Replace the reservation with the real usage; settling twice is a no-op."""
        with self._lock:
            entry = self._entries.get(reservation_id)
            if entry is None:
                raise KeyError(f"unknown reservation {reservation_id}")
            if entry.usage is not None:
                return
            entry.usage = usage
            entry.cost_usd = cost_usd
            self._used[entry.day] = self._used.get(entry.day, 0) - entry.reserved + usage.total

    async def used_today(self) -> int:
        """Tokens reserved or used today (UTC)."""
        with self._lock:
            return self._used.get(self._today(), 0)

    async def status(self, day: date | None = None) -> BudgetStatus:
        """The budget of ``day`` (today by default), split by role and model."""
        day = day or self._today()
        with self._lock:
            groups: dict[tuple[str, str], list[_Entry]] = {}
            for entry in self._entries.values():
                if entry.day == day:
                    groups.setdefault((entry.role, entry.model), []).append(entry)
            rows = tuple(_row(role, model, entries) for (role, model), entries in sorted(groups.items()))
            return BudgetStatus(day=day, budget=self.daily_tokens, used=self._used.get(day, 0), rows=rows)


def _row(role: str, model: str, entries: list[_Entry]) -> UsageRow:
    settled = [e for e in entries if e.usage is not None]
    pending = [e for e in entries if e.usage is None]
    return UsageRow(
        role=role,
        model=model,
        calls=len(settled),
        tokens_in=sum(e.usage.tokens_in for e in settled if e.usage is not None),
        tokens_out=sum(e.usage.tokens_out for e in settled if e.usage is not None),
        cost_usd=sum((e.cost_usd for e in settled), Decimal(0)),
        open_reservations=len(pending),
        reserved_open=sum(e.reserved for e in pending),
    )
