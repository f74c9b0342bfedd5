"""The hash-chained, append-only audit trail (pure part).

Each record's ``hash`` is ``sha256(prev_hash + canonical(row))`` where ``canonical(row)`` is the
JSON of ``seq``, ``ts`` (ISO-8601 UTC, microseconds), ``kind``, ``ref`` and ``payload`` with sorted
keys and no whitespace. Changing, inserting or deleting any stored row breaks the chain from that
row on, which :func:`verify_chain` reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit row. ``payload`` is the canonical JSON text of what was audited."""

    seq: int
    ts: datetime
    kind: str
    ref: str
    payload: str
    prev_hash: str
    hash: str


def canonical_json(value: Mapping[str, Any]) -> str:
    """Deterministic JSON: sorted keys, no whitespace, Decimals/UUIDs/datetimes as strings."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME, default=_default).decode()


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, seq: int, ts: datetime, kind: str, ref: str, payload: str) -> str:
    """The chained hash of one row."""
    canonical = canonical_json({"seq": seq, "ts": _iso(ts), "kind": kind, "ref": ref, "payload": payload})
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def make_record(prev: AuditRecord | None, ts: datetime, kind: str, ref: str, payload: Mapping[str, Any]) -> AuditRecord:
    """The record that follows ``prev`` (or the first one)."""
    if ts.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    # Postgres keeps microseconds: truncate so the stored row hashes the same.
    ts = ts.astimezone(UTC)
    text = canonical_json(payload)
    return AuditRecord(seq, ts, kind, ref, text, prev_hash, row_hash(prev_hash, seq, ts, kind, ref, text))


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Where and why verification failed."""

    seq: int
    reason: str


def verify_chain(
    records: Iterable[AuditRecord], start_prev_hash: str = GENESIS_HASH, start_seq: int = 1
) -> ChainProblem | None:
    """Check a run of consecutive records; ``None`` when intact, else the first problem."""
    prev_hash = start_prev_hash
    expected_seq = start_seq
    for rec in records:
        if rec.seq != expected_seq:
            return ChainProblem(rec.seq, f"sequence gap: expected {expected_seq}, found {rec.seq}")
        if rec.prev_hash != prev_hash:
            return ChainProblem(rec.seq, "prev_hash does not match the previous row's hash")
        if row_hash(prev_hash, rec.seq, rec.ts, rec.kind, rec.ref, rec.payload) != rec.hash:
            return ChainProblem(rec.seq, "row content does not match its hash (tampered)")
        prev_hash = rec.hash
        expected_seq += 1
    return None
