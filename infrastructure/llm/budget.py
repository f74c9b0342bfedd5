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

import asyncpg

from core.llm import Usage
from infrastructure.database.timescale.pool import Database


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


_RESERVE = """
WITH existing AS (
    SELECT reservation_id FROM llm_budget_ledger WHERE reservation_id = $4
), day_row AS (
    INSERT INTO llm_budget_days AS d (day, budget, used)
    SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (day) DO UPDATE SET used = d.used + EXCLUDED.used, budget = EXCLUDED.budget
    WHERE d.used + EXCLUDED.used <= EXCLUDED.budget
    RETURNING d.day
), held AS (
    INSERT INTO llm_budget_ledger (reservation_id, day, role, model, reserved)
    SELECT $4, day, $5, $6, $3 FROM day_row
    RETURNING reservation_id
)
SELECT reservation_id FROM held UNION ALL SELECT reservation_id FROM existing
"""
"""Reserve in one statement: the day row is locked by ON CONFLICT DO UPDATE and its WHERE is
evaluated on the latest committed ``used``; the ledger row is written only if the day took the
tokens. A retried statement (lost acknowledgement) finds its own reservation and takes nothing."""


class PostgresTokenBudget:
    """The daily budget in PostgreSQL (``llm_budget_days`` and ``llm_budget_ledger``, migration 003),
    shared by every process of the stack: two desks racing can never overspend it."""

    def __init__(self, db: Database, daily_tokens: int, *, now: Callable[[], datetime] = utc_now) -> None:
        if daily_tokens < 0:
            raise ValueError("daily_tokens must be >= 0")
        self.db = db
        self.daily_tokens = daily_tokens
        self._now = now

    def _today(self) -> date:
        return self._now().astimezone(UTC).date()

    async def reserve(self, tokens: int, *, role: str, model: str) -> str | None:
        """Take ``tokens`` from today's remainder atomically; the reservation id, or None."""
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if tokens > self.daily_tokens:
            return None
        rid, day = uuid.uuid4(), self._today()

        async def run(conn: asyncpg.Connection) -> str | None:
            got = await conn.fetchval(_RESERVE, day, self.daily_tokens, tokens, rid, role, model)
            return str(got) if got is not None else None

        return await self.db.run("llm_budget_reserve", run)

    async def settle(self, reservation_id: str, usage: Usage, cost_usd: Decimal) -> None:
        """Replace the reservation with the real usage (in one transaction); settling twice is a no-op."""
        rid = uuid.UUID(reservation_id)

        async def run(conn: asyncpg.Connection) -> None:
            row = await conn.fetchrow(
                "UPDATE llm_budget_ledger SET tokens_in = $2, tokens_out = $3, cost_usd = $4, settled_at = now() "
                "WHERE reservation_id = $1 AND settled_at IS NULL RETURNING day, reserved",
                rid,
                usage.tokens_in,
                usage.tokens_out,
                cost_usd,
            )
            if row is None:
                if await conn.fetchval("SELECT 1 FROM llm_budget_ledger WHERE reservation_id = $1", rid) is None:
                    raise KeyError(f"unknown reservation {reservation_id}")
                return
            await conn.execute(
                "UPDATE llm_budget_days SET used = used - $2 + $3 WHERE day = $1",
                row["day"],
                row["reserved"],
                usage.total,
            )

        await self.db.transaction("llm_budget_settle", run)

    async def used_today(self) -> int:
        """Tokens reserved or used today (UTC), across every process."""
        day = self._today()
        used = await self.db.run(
            "llm_budget_used", lambda c: c.fetchval("SELECT used FROM llm_budget_days WHERE day = $1", day)
        )
        return int(used or 0)

    async def status(self, day: date | None = None) -> BudgetStatus:
        """The budget of ``day`` (today by default), split by role and model."""
        day = day or self._today()

        async def run(conn: asyncpg.Connection) -> BudgetStatus:
            head = await conn.fetchrow("SELECT budget, used FROM llm_budget_days WHERE day = $1", day)
            rows = await conn.fetch(
                "SELECT role, model, count(settled_at) AS calls, "
                "coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out, "
                "coalesce(sum(cost_usd), 0) AS cost_usd, "
                "count(*) FILTER (WHERE settled_at IS NULL) AS open_reservations, "
                "coalesce(sum(reserved) FILTER (WHERE settled_at IS NULL), 0) AS reserved_open "
                "FROM llm_budget_ledger WHERE day = $1 GROUP BY role, model ORDER BY role, model",
                day,
            )
            return BudgetStatus(
                day=day,
                budget=int(head["budget"]) if head else self.daily_tokens,
                used=int(head["used"]) if head else 0,
                rows=tuple(
                    UsageRow(
                        role=r["role"],
                        model=r["model"],
                        calls=int(r["calls"]),
                        tokens_in=int(r["tokens_in"]),
                        tokens_out=int(r["tokens_out"]),
                        cost_usd=Decimal(r["cost_usd"]),
                        open_reservations=int(r["open_reservations"]),
                        reserved_open=int(r["reserved_open"]),
                    )
                    for r in rows
                ),
            )

        return await self.db.run("llm_budget_status", run)
