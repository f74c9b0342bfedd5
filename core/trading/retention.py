"""Time-bounded retention of per-order / per-intent state in memory.

An order or intent can never be executed after its intent expired: execution rejects an order with
``now >= expires_at`` and cancels open ones whose intent expired, risk and compliance reject stale
intents. So the state kept about a *terminal* order or an intent that expired more than a grace
period ago can be forgotten without changing any decision; within the grace a redelivery is still
recognised as a duplicate. :class:`ExpiryQueue` hands back those keys in expiry order, driven by the
caller's clock: a heap, so adding a key costs O(log n) and seeing that nothing is due costs O(1) (no
scan per candle or per message).
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K")


class ExpiryQueue(Generic[K]):
    """Keys with their expiry time; :meth:`due` pops those that expired more than ``grace`` ago."""

    __slots__ = ("_heap", "_seq", "grace")

    def __init__(self, grace: timedelta) -> None:
        self.grace = grace
        self._heap: list[tuple[datetime, int, K]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, key: K, expires_at: datetime) -> None:
        """Track ``key``, which expires at ``expires_at`` (the same key may be added again later)."""
        self._seq += 1
        heapq.heappush(self._heap, (expires_at, self._seq, key))

    def due(self, now: datetime) -> list[K]:
        """Remove and return the keys whose ``expires_at + grace < now``, oldest expiry first.

        A caller that must keep one of them longer (its order is not terminal yet) adds it again,
        e.g. with ``now`` as its new expiry, so it is looked at again one grace later.
        """
        heap = self._heap
        if not heap:
            return []
        cutoff = now - self.grace
        if heap[0][0] >= cutoff:
            return []
        out: list[K] = []
        while heap and heap[0][0] < cutoff:
            out.append(heapq.heappop(heap)[2])
        return out


def grace_of(seconds: float | None) -> timedelta | None:
    """A retention grace from a ``retention_grace_s`` setting (``None``: keep everything)."""
    return None if seconds is None else timedelta(seconds=seconds)
