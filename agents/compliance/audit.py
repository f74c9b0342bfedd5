"""The audit trail writer: appends hash-chained records through an :class:`AuditStore`, and signs
checkpoints of the chain's head (:mod:`core.trading.audit`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from core.trading.audit import AuditCheckpoint, AuditRecord, CheckpointKind, make_checkpoint, make_record
from core.trading.stores import AuditStore


class AuditTrail:
    """Appends records to one chain. Call :meth:`load` once before the first append.

    With a ``key`` every row is an HMAC chained on the previous one, and a signed checkpoint of the
    head is stored at :meth:`load` (``start``), at :meth:`close` (``stop``), and whenever
    :meth:`append` or :meth:`tick` finds the last one ``period`` old (``periodic``, also when nothing
    was appended: a silent period is vouched for too)."""

    def __init__(self, store: AuditStore, key: bytes | None = None, period: timedelta = timedelta(minutes=5)) -> None:
        self.store = store
        self.key = key
        self.period = period
        self._last: AuditRecord | None = None
        self._last_checkpoint: datetime | None = None
        self._loaded = False
        self._lock = asyncio.Lock()  # queues are consumed concurrently: one append at a time

    async def load(self, now: datetime | None = None) -> None:
        """Continue the chain after the newest stored record (and sign a ``start`` checkpoint at ``now``)."""
        self._last = await self.store.last()
        self._loaded = True
        if now is not None:
            await self._checkpoint(now, "start")

    async def append(self, ts: datetime, kind: str, ref: str, payload: Mapping[str, Any]) -> AuditRecord:
        """Append one record and return it (serialised: the chain has one order)."""
        async with self._lock:
            if not self._loaded:
                await self.load()
            record = make_record(self._last, ts, kind, ref, payload, self.key)
            try:
                await self.store.append(record)
            except BaseException:
                # The write may have committed before the failure reached us: the chain's head is
                # unknown now, so the next append continues from what the store really holds.
                self._loaded = False
                raise
            self._last = record
            await self._due(ts)
            return record

    async def tick(self, now: datetime) -> None:
        """Sign a ``periodic`` checkpoint when the last one is ``period`` old."""
        if self.key is None or (self._last_checkpoint is not None and now - self._last_checkpoint < self.period):
            return
        async with self._lock:
            if not self._loaded:
                await self.load()
            await self._due(now)

    async def close(self, now: datetime) -> None:
        """Sign the ``stop`` checkpoint (a gap after it is a planned stop, not a cut)."""
        async with self._lock:
            if self._loaded:
                await self._checkpoint(now, "stop")

    async def _due(self, now: datetime) -> None:
        if self.key is not None and (self._last_checkpoint is None or now - self._last_checkpoint >= self.period):
            await self._checkpoint(now, "periodic")

    async def _checkpoint(self, now: datetime, kind: CheckpointKind) -> AuditCheckpoint | None:
        if self.key is None:
            return None
        checkpoint = make_checkpoint(self.key, self._last, now, kind)
        await self.store.append_checkpoint(checkpoint)
        self._last_checkpoint = now
        return checkpoint
