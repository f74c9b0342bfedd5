"""Call logs: every model call's :class:`~core.llm.LLMCallRecord`, in memory or in ``agent_logs``.

The in-memory log serves backtests, the embedded run and tests; :class:`PostgresCallLog` writes the
``agent_logs`` table (migration 003). Both keep a record once, however often it is recorded (a
retried write must not count a call twice).
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from decimal import Decimal

import asyncpg

from core.llm import CallLog, CallOutcome, LLMCallRecord, Usage
from infrastructure.database.timescale.pool import Database

SUMMARY_CHARS = 300
"""Longest input or output summary stored per call."""


def summarize(text: str, limit: int = SUMMARY_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (with an ellipsis when cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def record_key(record: LLMCallRecord) -> str:
    """A stable identity of a record (the dedupe key of a retried write)."""
    parts = (
        record.ts.isoformat(),
        record.decision_id,
        record.role,
        record.provider,
        record.model,
        str(record.usage.tokens_in),
        str(record.usage.tokens_out),
        repr(record.latency_s),
        record.outcome.value,
        record.input_summary,
        record.output_summary,
        record.error or "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class InMemoryCallLog:
    """The call log of one process, in memory (thread-safe, deduplicated)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[LLMCallRecord] = []
        self._keys: set[str] = set()

    async def record(self, record: LLMCallRecord) -> None:
        """Keep ``record`` (once)."""
        key = record_key(record)
        with self._lock:
            if key in self._keys:
                return
            self._keys.add(key)
            self._records.append(record)

    @property
    def records(self) -> tuple[LLMCallRecord, ...]:
        """Every record, in the order recorded."""
        with self._lock:
            return tuple(self._records)

    def for_decision(self, decision_id: str) -> tuple[LLMCallRecord, ...]:
        """The records of one decision."""
        return tuple(r for r in self.records if r.decision_id == decision_id)

    def totals(self) -> tuple[Usage, Decimal]:
        """Tokens and estimated cost of every record."""
        records = self.records
        usage = Usage(sum(r.usage.tokens_in for r in records), sum(r.usage.tokens_out for r in records))
        return usage, sum((r.cost_usd for r in records), Decimal(0))


_COLUMNS = (
    "record_key, ts, decision_id, agent, symbol, provider, model, tokens_in, tokens_out, cost_usd, latency_s, "
    "outcome, input_summary, output_summary, error"
)
_INSERT = (
    f"INSERT INTO agent_logs ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "  # noqa: S608 - constant
    "ON CONFLICT (record_key) DO NOTHING"
)
_SELECT = (
    f"SELECT {_COLUMNS} FROM agent_logs WHERE ($1::text IS NULL OR decision_id = $1) "  # noqa: S608 - constant
    "AND ($2::timestamptz IS NULL OR ts >= $2) AND ($3::timestamptz IS NULL OR ts < $3) ORDER BY ts, record_key"
)


class PostgresCallLog:
    """The ``agent_logs`` table: one row per call, written idempotently (keyed by :func:`record_key`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, record: LLMCallRecord) -> None:
        """Insert ``record`` (a second insert of the same record changes nothing)."""
        args = (
            record_key(record),
            record.ts,
            record.decision_id,
            record.role,
            record.symbol,
            record.provider,
            record.model,
            record.usage.tokens_in,
            record.usage.tokens_out,
            record.cost_usd,
            record.latency_s,
            record.outcome.value,
            record.input_summary,
            record.output_summary,
            record.error,
        )
        await self.db.run(
            "llm_call_log",
            lambda c: c.execute(_INSERT, *args),
        )

    async def records(
        self, *, decision_id: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[LLMCallRecord]:
        """Records of one decision and/or a time range, oldest first."""

        async def run(conn: asyncpg.Connection) -> list[LLMCallRecord]:
            return [_from_row(r) for r in await conn.fetch(_SELECT, decision_id, since, until)]

        return await self.db.run("llm_call_log_read", run)


def _from_row(row: asyncpg.Record) -> LLMCallRecord:
    return LLMCallRecord(
        ts=row["ts"],
        decision_id=row["decision_id"],
        role=row["agent"],
        symbol=row["symbol"],
        provider=row["provider"],
        model=row["model"],
        usage=Usage(int(row["tokens_in"]), int(row["tokens_out"])),
        cost_usd=Decimal(row["cost_usd"]),
        latency_s=float(row["latency_s"]),
        outcome=CallOutcome(row["outcome"]),
        input_summary=row["input_summary"],
        output_summary=row["output_summary"],
        error=row["error"],
    )


_: type[CallLog] = InMemoryCallLog
__: type[CallLog] = PostgresCallLog
