"""The audit trail writer: appends hash-chained records through an :class:`AuditStore`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.trading.audit import AuditRecord, make_record
from core.trading.stores import AuditStore


class AuditTrail:
    """Appends records to one chain. Call :meth:`load` once before the first append."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self._last: AuditRecord | None = None
        self._loaded = False
        self._lock = asyncio.Lock()  # queues are consumed concurrently: one append at a time

    async def load(self) -> None:
        """Continue the chain after the newest stored record."""
        self._last = await self.store.last()
        self._loaded = True

    async def append(self, ts: datetime, kind: str, ref: str, payload: Mapping[str, Any]) -> AuditRecord:
        """Append one record and return it (serialised: the chain has one order)."""
        async with self._lock:
            if not self._loaded:
                await self.load()
            record = make_record(self._last, ts, kind, ref, payload)
            try:
                await self.store.append(record)
            except BaseException:
                # The write may have committed before the failure reached us: the chain's head is
                # unknown now, so the next append continues from what the store really holds.
                self._loaded = False
                raise
            self._last = record
            return record
