"""The in-memory bus: RabbitMQ's routing semantics inside one process, for backtests and tests.

* Topic routing with ``*`` (one word) and ``#`` (zero or more words); the set of queues a routing key
  reaches is computed once and cached.
* Deterministic FIFO dispatch: every published message goes to the back of one global queue; a
  publish made outside a handler drains it before returning, a publish made inside a handler is
  dispatched after the message in hand. So the same input always gives the same order of
  deliveries, and a backtest sees each candle's consequences before the next candle.
* The validated model object itself is handed to subscribers (no JSON round trip), so a message is
  validated once, where it is made. Raw bytes (``publish_raw``) are decoded and validated like on
  RabbitMQ, and a message that fails goes to the queue's dead letters with the reason.
* A handler exception is retried up to the delivery limit, then dead-lettered with the exception
  as reason; a handler raising :class:`~core.errors.MessageRejected` is dead-lettered at once.
* A mandatory publish that matches no queue raises :class:`~core.errors.UnroutableMessage`.
* Single-active-consumer queues deliver only to their first consumer; the next one takes over
  when it unsubscribes. A queue without consumers keeps its messages until one subscribes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.errors import BusClosed, MessageRejected, UnroutableMessage
from core.messages.base import Envelope
from core.messages.codec import JsonCodec
from core.ports import DeadLetter, Handler, QueueSpec
from core.routing import DEFAULT_DELIVERY_LIMIT, routing_key, topic_matches

_Pending = tuple["_Queue", Envelope | None, str, bytes | None, str | None]
"""(queue, envelope or None when undecodable, routing key, raw body, rejection reason)."""


@dataclass(slots=True)
class _Queue:
    spec: QueueSpec
    delivery_limit: int
    handlers: list[Handler] = field(default_factory=list)
    next_handler: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    delivered: int = 0
    backlog: deque[_Pending] = field(default_factory=deque)
    """Messages that arrived while the queue had no consumer (delivered first to the next one)."""

    def pick(self) -> Handler:
        """Round-robin over competing consumers of this queue (deterministic); the first consumer
        only on a single-active-consumer queue."""
        handlers = self.handlers
        if len(handlers) == 1 or self.spec.single_active_consumer:
            return handlers[0]
        handler = handlers[self.next_handler % len(handlers)]
        self.next_handler += 1
        return handler


@dataclass(frozen=True, slots=True)
class BusStats:
    """Counters of an in-memory bus (all queues together)."""

    published: int
    delivered: int
    failed_attempts: int
    dead_lettered: int


class InMemoryBus:
    """A :class:`core.ports.Bus` that lives in one process. See the module docstring."""

    def __init__(
        self,
        codec: JsonCodec | None = None,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    ) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be >= 1")
        self._codec = codec or JsonCodec()
        self._delivery_limit = delivery_limit
        self._queues: dict[str, _Queue] = {}
        self._route_cache: dict[str, tuple[_Queue, ...]] = {}
        self._pending: deque[_Pending] = deque()
        self._draining = False
        self._drainer: asyncio.Task[object] | None = None
        self._in_hand: Handler | None = None
        self._handed: asyncio.Event | None = None
        self._started = False
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._published = 0
        self._failed_attempts = 0

    async def start(self) -> None:
        """Mark the bus usable. Idempotent."""
        if self._closed:
            raise BusClosed("the bus is closed")
        self._started = True

    async def subscribe(self, spec: QueueSpec, handler: Handler) -> None:
        """Declare the queue (or join it as a competing consumer) and bind its patterns."""
        self._ensure_open()
        queue = self._queues.get(spec.name)
        if queue is None:
            queue = _Queue(spec=spec, delivery_limit=spec.delivery_limit or self._delivery_limit)
            self._queues[spec.name] = queue
        elif set(queue.spec.patterns) != set(spec.patterns):
            merged = tuple(dict.fromkeys((*queue.spec.patterns, *spec.patterns)))
            queue.spec = QueueSpec(
                name=spec.name,
                patterns=merged,
                prefetch=spec.prefetch,
                delivery_limit=queue.spec.delivery_limit,
                single_active_consumer=queue.spec.single_active_consumer,
            )
        queue.handlers.append(handler)
        self._route_cache.clear()
        if queue.backlog:
            # kept while nobody consumed: ahead of anything published to this queue since
            self._pending.extendleft(reversed(queue.backlog))
            queue.backlog.clear()
            if not self._draining:
                await self._drain()

    async def declare(self, spec: QueueSpec) -> None:
        """Declare the queue and bind its patterns without a consumer (messages wait for one)."""
        self._ensure_open()
        if spec.name not in self._queues:
            self._queues[spec.name] = _Queue(spec=spec, delivery_limit=spec.delivery_limit or self._delivery_limit)
            self._route_cache.clear()

    async def unsubscribe(self, queue: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (every handler when None) from ``queue``; the queue and its bindings
        stay, and its messages wait for the next consumer."""
        found = self._queues.get(queue)
        if found is None:
            return
        removed = list(found.handlers) if handler is None else [h for h in found.handlers if h is handler]
        found.handlers[:] = [h for h in found.handlers if h not in removed]
        # like RabbitMQ: return once the message in hand (if it is one of these consumers') is handled,
        # unless called from a handler (the drain runs one handler at a time: it would wait for itself)
        while self._in_hand is not None and self._in_hand in removed and asyncio.current_task() is not self._drainer:
            self._handed = asyncio.Event()
            await self._handed.wait()
        self._handed = None

    async def publish(self, envelope: Envelope, routing_key: str | None = None) -> None:
        """Route ``envelope`` to every matching queue; drain unless called from a handler."""
        if not self._started or self._closed:
            self._ensure_open()
        key = routing_key if routing_key is not None else _routing_key(envelope)
        queues = self._route_cache.get(key)
        if queues is None:
            queues = self._route(key)
        if not queues:
            raise UnroutableMessage(key)
        self._published += 1
        pending = self._pending
        for queue in queues:
            pending.append((queue, envelope, key, None, None))
        if not self._draining:
            await self._drain()

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Decode and validate ``body`` as a consumer would; a bad message is dead-lettered per queue."""
        self._ensure_open()
        queues = self._route_cache.get(routing_key)
        if queues is None:
            queues = self._route(routing_key)
        if not queues:
            raise UnroutableMessage(routing_key)
        self._published += 1
        envelope: Envelope | None
        reason: str | None = None
        try:
            envelope = self._codec.decode(body)
        except MessageRejected as exc:
            envelope, reason = None, exc.reason
        for queue in queues:
            self._pending.append((queue, envelope, routing_key, body, reason))
        if not self._draining:
            await self._drain()

    async def dead_letters(self, queue: str) -> Sequence[DeadLetter]:
        """The dead letters of ``queue`` (empty for an unknown queue)."""
        found = self._queues.get(queue)
        return tuple(found.dead) if found else ()

    async def close(self) -> None:
        """Wait until every pending message has been handled, then refuse further use."""
        if self._closed:
            return
        if self._draining:
            await self._idle.wait()
        elif self._pending:
            await self._drain()
        self._closed = True

    async def wait_idle(self) -> None:
        """Wait until no message is pending or being handled."""
        await self._idle.wait()

    @property
    def stats(self) -> BusStats:
        """Counters over every queue."""
        return BusStats(
            published=self._published,
            delivered=sum(q.delivered for q in self._queues.values()),
            failed_attempts=self._failed_attempts,
            dead_lettered=sum(len(q.dead) for q in self._queues.values()),
        )

    def queue_names(self) -> list[str]:
        """Names of the declared queues."""
        return sorted(self._queues)

    # -- internals ---------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
        if not self._started:
            raise BusClosed("the bus is not started; call start() first")

    def _route(self, key: str) -> tuple[_Queue, ...]:
        matched = tuple(q for q in self._queues.values() if any(topic_matches(p, key) for p in q.spec.patterns))
        self._route_cache[key] = matched
        return matched

    async def _drain(self) -> None:
        self._draining = True
        self._drainer = asyncio.current_task()
        self._idle.clear()
        pending = self._pending
        try:
            while pending:
                queue, envelope, key, body, reason = pending.popleft()
                if envelope is None:
                    self._dead_letter(queue, key, body or b"", reason or "rejected")
                    continue
                handlers = queue.handlers
                if not handlers:
                    queue.backlog.append((queue, envelope, key, body, reason))
                    continue
                handler = handlers[0] if len(handlers) == 1 else queue.pick()
                self._in_hand = handler
                try:
                    await handler(envelope)
                except MessageRejected as exc:
                    self._dead_letter(queue, key, body or self._encode(envelope), exc.reason)
                    continue
                except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                    if not await self._retry(queue, handler, envelope, key, body, exc):
                        continue
                finally:
                    self._in_hand = None
                    if self._handed is not None:
                        self._handed.set()
                queue.delivered += 1
        finally:
            self._draining = False
            self._idle.set()

    async def _retry(
        self,
        queue: _Queue,
        handler: Handler,
        envelope: Envelope,
        key: str,
        body: bytes | None,
        first: Exception,
    ) -> bool:
        """Redeliver up to the delivery limit; True when a redelivery succeeded."""
        self._failed_attempts += 1
        error: Exception = first
        for _ in range(queue.delivery_limit - 1):
            try:
                await handler(envelope)
            except MessageRejected as exc:
                self._dead_letter(queue, key, body or self._encode(envelope), exc.reason)
                return False
            except Exception as exc:  # noqa: BLE001
                self._failed_attempts += 1
                error = exc
            else:
                return True
        reason = f"delivery limit {queue.delivery_limit} reached: {type(error).__name__}: {error}"
        self._dead_letter(queue, key, body or self._encode(envelope), reason)
        return False

    def _dead_letter(self, queue: _Queue, key: str, body: bytes, reason: str) -> None:
        queue.dead.append(DeadLetter(queue=queue.spec.name, routing_key=key, body=body, reason=reason))

    def _encode(self, envelope: Envelope) -> bytes:
        try:
            return self._codec.encode(envelope)
        except MessageRejected:
            return envelope.model_dump_json().encode()


def _routing_key(envelope: Envelope) -> str:
    return routing_key(envelope.payload)
