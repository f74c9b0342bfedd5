"""The hash-chained, append-only audit trail (pure part).

Each record's ``hash`` is ``HMAC-SHA256(key, prev_hash + canonical(row))`` where ``canonical(row)``
is the JSON of ``seq``, ``ts`` (ISO-8601 UTC, microseconds), ``kind``, ``ref`` and ``payload`` with
sorted keys and no whitespace, and ``key`` the audit key (a secret only the compliance agent and the
verifier hold). Changing, inserting or deleting any stored row breaks the chain from that row on,
which :func:`verify_chain` reports; without the key nobody can recompute a valid chain after an edit.
Without a key (development) the hash is a plain ``sha256``: an edit is detected, a full recompute is
not.

A chain alone cannot tell that its newest rows were deleted. **Signed checkpoints** anchor it: every
``period`` (and when the agent starts and stops) the writer stores an :class:`AuditCheckpoint`, the
head of the chain (sequence number and hash) at that time, MACed with the key. :func:`verify_range`
checks a run of records and the checkpoints of the same period: every checkpoint's MAC, that the row
it names still has the hash it recorded (a rewritten or cut chain fails), and that checkpoints come
at least every two periods (a cut tail took its checkpoints with it, and the gap shows) except after a
``stop`` checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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


def _digest(key: bytes | None, text: str) -> str:
    if key is None:
        return hashlib.sha256(text.encode()).hexdigest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def row_hash(
    prev_hash: str, seq: int, ts: datetime, kind: str, ref: str, payload: str, key: bytes | None = None
) -> str:
    """The chained hash of one row (an HMAC with the audit ``key``, a plain sha256 without one)."""
    canonical = canonical_json({"seq": seq, "ts": _iso(ts), "kind": kind, "ref": ref, "payload": payload})
    return _digest(key, prev_hash + canonical)


def make_record(
    prev: AuditRecord | None,
    ts: datetime,
    kind: str,
    ref: str,
    payload: Mapping[str, Any],
    key: bytes | None = None,
) -> AuditRecord:
    """The record that follows ``prev`` (or the first one), chained with the audit ``key``."""
    if ts.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    # Postgres keeps microseconds: truncate so the stored row hashes the same.
    ts = ts.astimezone(UTC)
    text = canonical_json(payload)
    return AuditRecord(seq, ts, kind, ref, text, prev_hash, row_hash(prev_hash, seq, ts, kind, ref, text, key))


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Where and why verification failed."""

    seq: int
    reason: str


def verify_chain(
    records: Iterable[AuditRecord], start_prev_hash: str = GENESIS_HASH, start_seq: int = 1, key: bytes | None = None
) -> ChainProblem | None:
    """Check a run of consecutive records (hashed with ``key``); ``None`` when intact, else the first
    problem."""
    prev_hash = start_prev_hash
    expected_seq = start_seq
    for rec in records:
        if rec.seq != expected_seq:
            return ChainProblem(rec.seq, f"sequence gap: expected {expected_seq}, found {rec.seq}")
        if rec.prev_hash != prev_hash:
            return ChainProblem(rec.seq, "prev_hash does not match the previous row's hash")
        if row_hash(prev_hash, rec.seq, rec.ts, rec.kind, rec.ref, rec.payload, key) != rec.hash:
            return ChainProblem(rec.seq, "row content does not match its hash (tampered, or another key)")
        prev_hash = rec.hash
        expected_seq += 1
    return None


CheckpointKind = Literal["start", "periodic", "stop"]


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """The head of the chain at ``ts``, signed: ``seq`` 0 and the genesis hash for an empty chain."""

    ts: datetime
    seq: int
    head_hash: str
    kind: CheckpointKind
    mac: str


def _checkpoint_text(ts: datetime, seq: int, head_hash: str, kind: str) -> str:
    return canonical_json({"ts": _iso(ts), "seq": seq, "head_hash": head_hash, "kind": kind})


def make_checkpoint(key: bytes, head: AuditRecord | None, ts: datetime, kind: CheckpointKind) -> AuditCheckpoint:
    """A signed checkpoint of the chain whose newest record is ``head``."""
    if ts.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    ts = ts.astimezone(UTC)
    seq, head_hash = (0, GENESIS_HASH) if head is None else (head.seq, head.hash)
    return AuditCheckpoint(ts, seq, head_hash, kind, _digest(key, _checkpoint_text(ts, seq, head_hash, kind)))


def verify_range(
    records: Sequence[AuditRecord],
    checkpoints: Sequence[AuditCheckpoint],
    heads: Mapping[int, AuditRecord],
    *,
    key: bytes,
    period: timedelta,
    until: datetime,
    start_prev_hash: str = GENESIS_HASH,
    last_seq: int = 0,
) -> list[ChainProblem]:
    """Every problem of a run of records and the checkpoints of the same period (see the module
    docstring): the chain (with ``key``); each checkpoint's MAC; the row each checkpoint names
    (``heads`` by sequence number, wherever it lies) still has the hash it recorded, and exists at all
    (``last_seq``: the newest sequence number in the log); a checkpoint at least every two ``period``
    up to ``until`` (the end of the range, or now), except after a ``stop`` checkpoint."""
    problems: list[ChainProblem] = []
    if records:
        broken = verify_chain(records, start_prev_hash, records[0].seq, key)
        if broken is not None:
            problems.append(broken)
    ordered = sorted(checkpoints, key=lambda c: c.ts)
    for cp in ordered:
        text = _checkpoint_text(cp.ts, cp.seq, cp.head_hash, cp.kind)
        if not hmac.compare_digest(_digest(key, text), cp.mac):
            problems.append(ChainProblem(cp.seq, f"checkpoint of {_iso(cp.ts)} is not signed with the audit key"))
            continue
        if cp.seq == 0:
            continue
        if cp.seq > last_seq:
            problems.append(
                ChainProblem(
                    cp.seq,
                    f"rows deleted: the checkpoint of {_iso(cp.ts)} names head seq {cp.seq}, "
                    f"the log ends at {last_seq}",
                )
            )
            continue
        head = heads.get(cp.seq)
        if head is None or head.hash != cp.head_hash:
            problems.append(
                ChainProblem(cp.seq, f"row {cp.seq} no longer has the hash the checkpoint of {_iso(cp.ts)} signed")
            )
    limit = 2 * period
    for before, after in itertools.pairwise(ordered):
        if before.kind != "stop" and after.ts - before.ts > limit:
            problems.append(
                ChainProblem(
                    after.seq,
                    f"no signed checkpoint between {_iso(before.ts)} and {_iso(after.ts)} (expected every {period})",
                )
            )
    if ordered and ordered[-1].kind != "stop" and until - ordered[-1].ts > limit:
        last = ordered[-1]
        problems.append(
            ChainProblem(
                last.seq,
                f"no signed checkpoint after {_iso(last.ts)} up to {_iso(until)} (expected every {period}): "
                "the tail may have been cut (or the compliance agent died)",
            )
        )
    return problems
