"""Call logs: every model call's :class:`~core.llm.LLMCallRecord`, in memory or in ``agent_logs``.

The in-memory log serves backtests, the embedded run and tests; :class:`PostgresCallLog` (in
``infrastructure.llm.pg_calllog``) writes the ``agent_logs`` table. Both keep a record once, however
often it is recorded (a retried write must not count a call twice).
"""

from __future__ import annotations

import hashlib
import threading
from decimal import Decimal

from core.llm import CallLog, LLMCallRecord, Usage

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


_: type[CallLog] = InMemoryCallLog
