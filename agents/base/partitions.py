"""Which symbol partitions one replica consumes: the orchestrator's assignment, or all of them.

A scaled-out agent declares one queue per partition and purpose (``<kind>.<purpose>.p<i>``, each
single-active-consumer). With single-active-consumer the first replica to subscribe is active on
every queue, so replicas do not subscribe to everything: each consumes the partitions that the
orchestrator's latest :class:`~core.messages.PartitionAssignment` gives it, and cancels the ones it
lost. While a partition moves, single-active-consumer keeps at most one consumer active on it, and
the bus returns unstarted deliveries in order, so a symbol's messages are never handled out of order.

Without an orchestrator the swarm still works: a replica that got no assignment within
``partition_grace_s`` of starting, or whose last assignment expired (``valid_for_s``), consumes
every partition (correct, single-active-consumer picks one consumer per queue; just unbalanced).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from core import routing
from core.messages import Envelope, PartitionAssignment
from core.ports import Bus, Handler, QueueSpec

PartitionQueues = Mapping[int, Sequence[tuple[QueueSpec, Handler]]]
"""Partition -> the (queue, handler) pairs of that partition (one per purpose)."""

PartitionsChanged = Callable[[frozenset[int], frozenset[int]], Awaitable[None]]
"""``(gained, lost)``: called after the lost partitions stopped and before the gained ones start."""


class PartitionConsumer:
    """Subscribes and unsubscribes one replica's partition queues (see the module docstring)."""

    def __init__(
        self,
        *,
        bus: Bus,
        kind: str,
        agent_id: str,
        partitions: int,
        queues: PartitionQueues,
        grace_s: float,
        log: Any,
        check_interval_s: float | None = None,
        on_change: PartitionsChanged | None = None,
    ) -> None:
        missing = set(range(partitions)) - set(queues)
        if missing or set(queues) - set(range(partitions)):
            raise ValueError(f"{kind}: partition queues must cover exactly 0..{partitions - 1} (missing {missing})")
        self.bus = bus
        self.kind = kind
        self.agent_id = agent_id
        self.partitions = partitions
        self.queues = queues
        self.grace_s = grace_s
        self.log = log
        self.check_interval_s = check_interval_s or min(1.0, grace_s / 2)
        self.on_change = on_change
        self.owned: frozenset[int] = frozenset()
        self.generation: int | None = None
        """The generation of the assignment applied last (None: none yet, or fallen back)."""
        self.fallback = False
        """True while consuming every partition for lack of a (fresh) assignment."""
        self._lock = asyncio.Lock()
        self._started_at = 0.0
        self._assigned_at: float | None = None
        self._valid_for = 0.0
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Declare every partition queue (so every symbol is routable and kept whoever owns it),
        then start the grace-period watchdog (the assignment queue is subscribed by the agent)."""
        for partition in range(self.partitions):
            for spec, _ in self.queues[partition]:
                await self.bus.declare(spec)
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        self._watchdog = asyncio.create_task(self._watch(), name=f"partitions:{self.agent_id}")

    async def stop(self) -> None:
        """Stop the watchdog (the bus, closed by the host, cancels the consumers)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None

    async def on_assignment(self, assignment: PartitionAssignment, envelope: Envelope) -> None:
        """Consume exactly the partitions ``assignment`` gives this replica."""
        if assignment.agent_kind != self.kind:
            return
        if assignment.partitions != self.partitions:
            self.log.error(
                "partition assignment ignored: another partition count",
                assigned=assignment.partitions,
                configured=self.partitions,
            )
            return
        self._assigned_at = asyncio.get_running_loop().time()
        self._valid_for = assignment.valid_for_s
        await self._apply(assignment.owned_by(self.agent_id), generation=assignment.generation)

    def due_fallback(self, now: float) -> bool:
        """Whether this replica must consume every partition now: no assignment within the grace
        period since start, or the last one expired."""
        if self.fallback:
            return False
        if self._assigned_at is None:
            return now - self._started_at >= self.grace_s
        return now - self._assigned_at > self._valid_for

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.check_interval_s)
            if not self.due_fallback(loop.time()):
                continue
            try:
                self.log.warning(
                    "no fresh partition assignment: consuming every partition",
                    grace_s=self.grace_s,
                    expired=self._assigned_at is not None,
                )
                await self._apply(frozenset(range(self.partitions)), generation=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("partition fallback failed")

    async def _apply(self, desired: frozenset[int], *, generation: int | None) -> None:
        async with self._lock:
            lost = sorted(self.owned - desired)
            gained = sorted(desired - self.owned)
            for partition in lost:
                await self._each(partition, subscribe=False)
                self.owned = self.owned - {partition}
            if (lost or gained) and self.on_change is not None:
                await self.on_change(frozenset(gained), frozenset(lost))
            for partition in gained:
                await self._each(partition, subscribe=True)
                self.owned = self.owned | {partition}
            self.generation = generation
            self.fallback = generation is None
            if lost or gained:
                self.log.info(
                    "partitions reassigned",
                    owned=sorted(self.owned),
                    gained=gained,
                    lost=lost,
                    generation=generation,
                    fallback=self.fallback,
                )

    async def _each(self, partition: int, *, subscribe: bool) -> None:
        for spec, handler in self.queues[partition]:
            if subscribe:
                await self.bus.subscribe(spec, handler)
            else:
                await self.bus.unsubscribe(spec.name, handler)


def group_by_partition(items: Iterable[tuple[int, QueueSpec, Handler]]) -> dict[int, list[tuple[QueueSpec, Handler]]]:
    """``(partition, spec, handler)`` triples grouped by partition."""
    grouped: dict[int, list[tuple[QueueSpec, Handler]]] = {}
    for partition, spec, handler in items:
        grouped.setdefault(partition, []).append((spec, handler))
    return grouped


def symbol_partitions(symbols: Sequence[str], partitions: int) -> list[tuple[int | None, list[str]]]:
    """``(partition, symbols)`` of a scalable agent's queues, symbols in the configured order.

    One unpartitioned queue (``None``, every symbol) when ``partitions`` is 1; otherwise one entry
    per partition, including partitions no symbol falls in (their queue exists and binds nothing).
    """
    if partitions <= 1:
        return [(None, list(symbols))]
    return [(i, routing.partition_symbols(symbols, i, partitions)) for i in range(partitions)]
