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
* A handler that carries a plain-function twin (``handler.sync``, see
  :meth:`agents.base.Agent._dispatcher`) is called through it: no coroutine per delivery.

The backtest kernel (:meth:`InMemoryBus.publish_column`): a :class:`~core.columns.Column` of
candles is published as if its rows were published one after the other, but with ``wake=True`` (what
a backtest's swarm sets; the default is off) the bus honours the queues' wake conditions
(:mod:`core.wake`): it finds the next row some consumer must really receive, lets every consumer
apply the quiet rows before it in one exact bulk step, and builds payloads and envelopes only for the
rows it delivers. With ``wake=False`` (all-awake) every row is built and delivered, which is what the
wake conditions are proven equal to.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.columns import Column
from core.errors import BusClosed, MessageRejected, UnroutableMessage
from core.messages.base import Envelope
from core.messages.codec import JsonCodec
from core.ports import DeadLetter, Handler, QueueSpec
from core.routing import DEFAULT_DELIVERY_LIMIT, routing_key, topic_matches
from core.wake import Derive, LatestPerKey, WakeOn

SyncHandler = Callable[[Envelope], Any]
"""A handler's plain-function twin: returns None, or an awaitable to finish with."""


class _Row:
    """Row ``index`` of ``column`` in flight: built only if some consumer must receive it."""

    __slots__ = ("column", "index")

    def __init__(self, column: Column, index: int) -> None:
        self.column = column
        self.index = index


_Item = Envelope | _Row | None
_Pending = tuple["_Queue", _Item, str, bytes | None, str | None]
"""(queue, envelope / row / None when undecodable, routing key, raw body, rejection reason)."""


@dataclass(slots=True)
class _Queue:
    spec: QueueSpec
    delivery_limit: int
    handlers: list[Handler] = field(default_factory=list)
    fast: list[SyncHandler | None] = field(default_factory=list)
    next_handler: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    delivered: int = 0
    skipped: int = 0
    backlog: deque[_Pending] = field(default_factory=deque)
    ahead: tuple[Column, int, bool] | None = None
    """(column, row, deliver): a wake row already decided for this queue's consumer: applied as quiet
    with the run before it (``deliver`` False), or known to need the delivery (True)."""
    """Messages that arrived while the queue had no consumer (delivered first to the next one)."""

    def pick(self) -> int:
        """Round-robin over competing consumers of this queue (deterministic); the first consumer
        only on a single-active-consumer queue."""
        handlers = self.handlers
        if len(handlers) == 1 or self.spec.single_active_consumer:
            return 0
        index = self.next_handler % len(handlers)
        self.next_handler += 1
        return index


@dataclass(frozen=True, slots=True)
class BusStats:
    """Counters of an in-memory bus (all queues together)."""

    published: int
    delivered: int
    failed_attempts: int
    dead_lettered: int
    skipped: int = 0
    """Deliveries a wake condition made unnecessary (applied by a bulk step or held)."""
    ahead: int = 0
    """Of those, rows a consumer's wake condition decided quiet together with the run before them
    (see :meth:`InMemoryBus.publish_column`)."""


class ColumnObserver(Protocol):
    """Who publishes a column and keeps per-row books (the backtest's replay: clock, equity samples)."""

    def before(self, i: int) -> None:
        """Row ``i`` is about to be delivered."""

    def after(self, i: int) -> None:
        """Row ``i`` and everything it caused were delivered."""

    def quiet(self, start: int, stop: int) -> None:
        """Rows ``[start, stop)`` changed nothing anywhere (``before`` + ``after`` of each, in bulk)."""


class Timer(Protocol):
    """Collects time per component (the bench's breakdown mode)."""

    def clock(self) -> float:
        """The clock it measures with (seconds)."""
        ...

    def add(self, label: str, seconds: float) -> None:
        """Add ``seconds`` to ``label``."""


class InMemoryBus:
    """A :class:`core.ports.Bus` that lives in one process. See the module docstring."""

    AHEAD = True
    """Let the last consumer asked decide the wake row together with the run before it (see
    :meth:`publish_column`); off only to prove it changes nothing (``tests/kernel``)."""

    def __init__(
        self,
        codec: JsonCodec | None = None,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        *,
        wake: bool = False,
        timer: Timer | None = None,
    ) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be >= 1")
        self._codec = codec or JsonCodec()
        self._delivery_limit = delivery_limit
        self.wake = wake
        """Honour wake conditions (the backtest's swarm turns it on). Off (the default: tests, tools),
        every message is delivered as it is published, exactly like RabbitMQ."""
        self._timer = timer
        self.timer = timer
        """The component timer (breakdown mode) or None."""
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
        self._held: dict[str, dict[tuple[str, str], tuple[_Queue, Envelope | _Row, str]]] = {}
        """Per consumer group: the newest message per (queue, routing key) of its latest-per-key queues."""
        self._derived: dict[tuple[int, int], Column] = {}
        """During :meth:`publish_column`: (queue, column) -> the column that queue's consumer derives."""
        self._derived_routes: dict[int, list[tuple[_Queue, ...]]] = {}
        self._current: tuple[Column, int] | None = None
        """The column row whose cascade is being delivered (:meth:`publish_column`)."""
        self._ahead_rows = 0

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
                wake=queue.spec.wake,
                group=queue.spec.group,
            )
        fast: SyncHandler | None = getattr(handler, "sync", None)
        if self._timer is not None:
            fast = _timed_sync(self._timer, spec.name, fast, handler)
        queue.handlers.append(handler)
        queue.fast.append(fast)
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
        kept = [(h, f) for h, f in zip(found.handlers, found.fast, strict=True) if h not in removed]
        found.handlers[:] = [h for h, _ in kept]
        found.fast[:] = [f for _, f in kept]
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

    async def publish_column(self, column: Column, observer: ColumnObserver | None = None) -> None:
        """Publish every row of ``column`` in order, as if each were published on its own (each row's
        consequences complete before the next row); see the module docstring. Not from a handler.

        **Decided ahead.** A consumer whose delivery of a row would be its agent's first of the row's
        cascade (no latest-per-key queue in its group, no other queue of its agent earlier in the row's
        routes) sees the row in the state the quiet run before it left: everything the cascade
        publishes is queued behind that delivery. So when its answer already lies beyond the wake row
        (or, for the last consumer asked — the costliest question, risk's replay of its marks — when
        asked about the wake row too, it is quiet there), it applies the row with the run and the drain
        skips it, instead of asking again about the row alone; when its answer is the wake row itself,
        the drain delivers it without asking again. Proven equal to all-awake and to not doing it
        (``tests/kernel``).
        """
        self._ensure_open()
        if self._draining:
            raise RuntimeError("publish_column is for feeds, not for handlers")
        n = column.n
        if n == 0:
            return
        table = column.table
        routes = [self._route_or_raise(info.routing_key) for info in table]
        series = column.series.tolist()
        if not self.wake:
            for i in range(n):
                if observer is not None:
                    observer.before(i)
                if column.has(i):
                    s = series[i]
                    await self.publish(column.envelope(i), table[s].routing_key)
                    column.release(i)
                if observer is not None:
                    observer.after(i)
            return
        columns: list[Column] = [column]
        self._derived.clear()
        self._derived_routes.clear()
        participants = self._participants(column, routes, columns)
        pending = self._pending
        p = 0
        use_ahead = self.AHEAD
        last = participants[-1] if participants else None
        answers: list[int] = [0] * len(participants)
        task = asyncio.current_task()
        while p < n:
            w = n
            asked = 0
            for participant in participants:
                if participant is last and participant.ahead and w < n and use_ahead:
                    # the last one asked may decide the wake row with the run (see the docstring); one
                    # that takes wake rows gets the wake row delivered when it is the only row asked
                    r = p if w == p and participant.take else participant.next_wake(p, w + 1)
                    answers[asked] = r
                    w = min(w, r)
                else:
                    w = answers[asked] = participant.next_wake(p, w)
                asked += 1
                if w <= p:
                    break
            ahead: list[_Policy] = []
            woken: list[_Policy] = []
            if w < n and use_ahead:
                sw = series[w]
                for k in range(asked):
                    participant = participants[k]
                    if participant.ahead and sw in participant.sids:
                        assert isinstance(participant, _Policy)
                        # quiet on the wake row, or already known to need it
                        (ahead if answers[k] > w else woken).append(participant)
            if w > p or ahead:
                for participant in participants:
                    participant.skip(p, w + 1 if participant in ahead else w)
                if observer is not None and w > p:
                    observer.quiet(p, w)
            if w >= n:
                break
            for participant in ahead:
                participant.queue.ahead = (column, w, False)
            for participant in woken:
                participant.queue.ahead = (column, w, True)
            self._ahead_rows += len(ahead)
            if observer is not None:
                observer.before(w)
            s = series[w]
            key = table[s].routing_key
            self._published += 1
            row = _Row(column, w)
            for queue in routes[s]:
                pending.append((queue, row, key, None, None))
            self._current = (column, w)
            await self._drain(task)
            self._current = None
            for participant in ahead:
                participant.queue.ahead = None
            for participant in woken:
                participant.queue.ahead = None
            for c in columns:
                c.release(w)
            if observer is not None:
                observer.after(w)
            p = w + 1
        self._derived.clear()
        self._derived_routes.clear()

    async def dead_letters(self, queue: str) -> Sequence[DeadLetter]:
        """The dead letters of ``queue`` (empty for an unknown queue)."""
        found = self._queues.get(queue)
        return tuple(found.dead) if found else ()

    async def flush_held(self) -> None:
        """Hand every held latest-per-key message over now (the end of a replay)."""
        for group in list(self._held):
            await self._flush(group)
        if self._pending and not self._draining:
            await self._drain()

    async def close(self) -> None:
        """Wait until every pending message has been handled (held ones included), then refuse use."""
        if self._closed:
            return
        if self._draining:
            await self._idle.wait()
        elif self._pending:
            await self._drain()
        if not self._draining:
            await self.flush_held()
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
            skipped=sum(q.skipped for q in self._queues.values()),
            ahead=self._ahead_rows,
        )

    def queue_stats(self) -> dict[str, tuple[int, int]]:
        """Per queue: (deliveries made, deliveries skipped by its wake condition)."""
        return {name: (q.delivered, q.skipped) for name, q in sorted(self._queues.items())}

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

    def _route_or_raise(self, key: str) -> tuple[_Queue, ...]:
        queues = self._route_cache.get(key)
        if queues is None:
            queues = self._route(key)
        if not queues:
            raise UnroutableMessage(key)
        return queues

    def _participants(
        self, column: Column, routes: list[tuple[_Queue, ...]], columns: list[Column]
    ) -> list[_Participant]:
        """Every queue that receives rows of ``column`` (and of the columns derived from it), with
        what it needs: cheapest questions first."""
        by_queue: dict[str, tuple[_Queue, list[int]]] = {}
        for s, queues in enumerate(routes):
            for queue in queues:
                by_queue.setdefault(queue.spec.name, (queue, []))[1].append(s)
        out: list[_Participant] = []
        timer = self._timer
        for queue, sids in by_queue.values():
            policy = queue.spec.wake
            name = queue.spec.name
            if isinstance(policy, LatestPerKey) and queue.handlers:
                out.append(_Hold(self, queue, column, sids))
            elif isinstance(policy, WakeOn) and queue.handlers:
                out.append(_Policy(queue, column, sids, policy, timer))
            elif isinstance(policy, Derive) and queue.handlers:
                started = timer.clock() if timer is not None else 0.0
                derived = policy.derive(column, sids)
                if timer is not None:
                    timer.add(f"{name} (derive)", timer.clock() - started)
                if derived is None:
                    continue
                columns.append(derived)
                self._derived[(id(queue), id(column))] = derived
                routes2: list[tuple[_Queue, ...]] = []
                for info in derived.table:
                    cached = self._route_cache.get(info.routing_key)
                    routes2.append(cached if cached is not None else self._route(info.routing_key))
                self._derived_routes[id(derived)] = routes2
                out.extend(self._participants(derived, routes2, columns))
            else:
                out.append(_Every(queue, column, sids))
        out.sort(key=lambda part: part.cost)
        if column is columns[0]:
            for part in out:
                if isinstance(part, _Policy) and part.column is column:
                    part.ahead = self._first_of_group(part.queue, [routes[s] for s in part.sids])
        return out

    def _first_of_group(self, queue: _Queue, routes: list[tuple[_Queue, ...]]) -> bool:
        """Whether ``queue``'s delivery of a row is its agent's first delivery of the row's cascade:
        no held message could be handed to the agent before it (no latest-per-key queue in its
        group) and no other queue of the agent comes before it in the row's routes."""
        group = queue.spec.group or queue.spec.name
        for other in self._queues.values():
            if (other.spec.group or other.spec.name) == group and isinstance(other.spec.wake, LatestPerKey):
                return False
        for queues in routes:
            for other in queues:
                if other is queue:
                    break
                if (other.spec.group or other.spec.name) == group:
                    return False
        return True

    def _publish_derived(self, queue: _Queue, row: _Row) -> None:
        """A derived-column consumer (technical analysis) handles row ``row``: publish its output row."""
        derived = self._derived.get((id(queue), id(row.column)))
        if derived is None:
            return
        i = row.index
        if not derived.has(i):
            return
        s = int(derived.series[i])
        routes = self._derived_routes[id(derived)][s]
        if not routes:
            return  # nobody consumes it: the producer's publish would be unroutable (it logs and goes on)
        self._published += 1
        key = derived.table[s].routing_key
        out = _Row(derived, i)
        pending = self._pending
        for target in routes:
            pending.append((target, out, key, None, None))

    def _hold(self, queue: _Queue, envelope: Envelope | _Row, key: str) -> None:
        group = queue.spec.group or queue.spec.name
        held = self._held.setdefault(group, {})
        slot = (queue.spec.name, key)
        held.pop(slot, None)  # the newest goes last: held messages are handed over in arrival order
        held[slot] = (queue, envelope, key)
        queue.skipped += 1

    async def _flush(self, group: str) -> None:
        held = self._held.pop(group, None)
        if not held:
            return
        current = self._current
        for queue, item, key in held.values():
            queue.skipped -= 1
            if type(item) is _Row:
                column, i = item.column, item.index
                envelope = column.envelope(i)
                await self._deliver(queue, envelope, key, None)
                if current is None or column is not current[0] or i != current[1]:
                    column.release(i)  # its own row's cascade is over: built for this consumer only
                continue
            assert isinstance(item, Envelope)
            await self._deliver(queue, item, key, None)

    async def _drain(self, task: asyncio.Task[object] | None = None) -> None:
        """Deliver every pending message; ``task`` is the calling task when the caller knows it (a
        column's feed asks once, not per row)."""
        self._draining = True
        self._drainer = task if task is not None else asyncio.current_task()
        self._idle.clear()
        pending = self._pending
        popleft = pending.popleft
        wake = self.wake
        held = self._held
        timer = self._timer
        try:
            while pending:
                queue, item, key, body, reason = popleft()
                if item is None:
                    self._dead_letter(queue, key, body or b"", reason or "rejected")
                    continue
                handlers = queue.handlers
                if wake and handlers:
                    policy = queue.spec.wake
                    if policy is not None:
                        kind = type(policy)
                        if kind is LatestPerKey:
                            if type(item) is _Row:  # the envelope others got, if any (one per candle)
                                item = item.column.built_envelope(item.index) or item
                            self._hold(queue, item, key)
                            continue
                        if type(item) is _Row:
                            if kind is Derive:
                                self._publish_derived(queue, item)
                                queue.skipped += 1
                                continue
                            if kind is WakeOn:
                                column, i = item.column, item.index
                                ahead = queue.ahead
                                if ahead is not None and ahead[0] is column and ahead[1] == i:
                                    if not ahead[2]:
                                        continue  # applied with the run before it (counted there)
                                elif not policy.take_wake_rows:  # type: ignore[attr-defined]  # ask about this row alone
                                    sid = (int(column.series[i]),)
                                    started = timer.clock() if timer is not None else 0.0
                                    quiet = policy.next_wake(column, sid, i, i + 1) > i  # type: ignore[attr-defined]
                                    if quiet:
                                        policy.skip(column, sid, i, i + 1)  # type: ignore[attr-defined]
                                    if timer is not None:
                                        timer.add(f"{queue.spec.name} (bulk)", timer.clock() - started)
                                    if quiet:
                                        queue.skipped += 1
                                        continue
                    if held:
                        group = queue.spec.group
                        if group is not None and group in held:
                            await self._flush(group)
                envelope: Envelope = item.column.envelope(item.index) if type(item) is _Row else item  # type: ignore[assignment]
                if not handlers:
                    queue.backlog.append((queue, envelope, key, body, None))
                    continue
                # the delivery, inlined (no coroutine per delivery for plain-function handlers)
                index = 0 if len(handlers) == 1 else queue.pick()
                handler = handlers[index]
                fast = queue.fast[index]
                self._in_hand = handler
                try:
                    if fast is not None:
                        result = fast(envelope)
                        if result is not None:
                            await result
                    else:
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

    async def _deliver(self, queue: _Queue, envelope: Envelope, key: str, body: bytes | None) -> None:
        handlers = queue.handlers
        if not handlers:
            queue.backlog.append((queue, envelope, key, body, None))
            return
        index = 0 if len(handlers) == 1 else queue.pick()
        handler = handlers[index]
        fast = queue.fast[index]
        self._in_hand = handler
        try:
            if fast is not None:
                result = fast(envelope)
                if result is not None:
                    await result
            else:
                await handler(envelope)
        except MessageRejected as exc:
            self._dead_letter(queue, key, body or self._encode(envelope), exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            if not await self._retry(queue, handler, envelope, key, body, exc):
                return
        finally:
            self._in_hand = None
            if self._handed is not None:
                self._handed.set()
        queue.delivered += 1

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


class _Participant:
    """A queue that receives rows of a column during :meth:`InMemoryBus.publish_column`."""

    cost = 0
    sids: list[int] = []  # noqa: RUF012 - overridden per instance
    ahead = False
    take = False
    """Takes the delivery of a row delivered to others anyway (:attr:`core.wake.WakeOn.take_wake_rows`)."""
    """May decide the wake row together with the run before it (see :meth:`InMemoryBus.publish_column`)."""

    def next_wake(self, start: int, stop: int) -> int:
        """The first row in ``[start, stop)`` it must receive (``stop`` if none)."""
        return stop

    def skip(self, start: int, stop: int) -> None:
        """Apply the quiet rows ``[start, stop)``."""


class _Every(_Participant):
    """A consumer without a wake condition: every row of its series is delivered."""

    def __init__(self, queue: _Queue, column: Column, sids: list[int]) -> None:
        self.column = column
        self.sids = sids

    def next_wake(self, start: int, stop: int) -> int:
        column = self.column
        for s in self.sids:
            rows = column.rows_between(s, start, stop)
            if rows.shape[0]:
                stop = int(rows[0])
        return stop


class _Hold(_Participant):
    """A latest-per-key consumer: the newest row of each series in a quiet run is held for it."""

    def __init__(self, bus: InMemoryBus, queue: _Queue, column: Column, sids: list[int]) -> None:
        self.bus = bus
        self.queue = queue
        self.column = column
        self.sids = sids

    def skip(self, start: int, stop: int) -> None:
        column = self.column
        last: list[tuple[int, int]] = []
        for s in self.sids:
            rows = column.rows_between(s, start, stop)
            n = rows.shape[0]
            if n:
                self.queue.skipped += n - 1
                last.append((int(rows[-1]), s))
        for i, s in sorted(last):  # arrival order; built only if handed over
            self.bus._hold(self.queue, _Row(column, i), column.table[s].routing_key)


class _Policy(_Participant):
    """A consumer with a :class:`~core.wake.WakeOn` condition."""

    def __init__(self, queue: _Queue, column: Column, sids: list[int], policy: WakeOn, timer: Timer | None) -> None:
        self.queue = queue
        self.column = column
        self.sids = sids
        self.cost = policy.cost
        self.take = policy.take_wake_rows
        self._next = policy.next_wake
        self._skip = policy.skip
        if timer is not None:
            label = f"{queue.spec.name} (bulk)"
            self._next = _timed(timer, label, self._next)
            self._skip = _timed(timer, label, self._skip)

    def next_wake(self, start: int, stop: int) -> int:
        return self._next(self.column, self.sids, start, stop)

    def skip(self, start: int, stop: int) -> None:
        column = self.column
        count = 0
        for s in self.sids:
            count += column.rows_between(s, start, stop).shape[0]
        if count:
            self.queue.skipped += count
            self._skip(column, self.sids, start, stop)


def _timed(timer: Timer, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    clock = timer.clock

    def timed(*args: Any) -> Any:
        started = clock()
        try:
            return fn(*args)
        finally:
            timer.add(label, clock() - started)

    return timed


def _timed_sync(timer: Timer, label: str, fast: SyncHandler | None, handler: Handler) -> SyncHandler:
    """A plain-function handler that times the delivery (the handler's own coroutine included)."""
    clock = timer.clock
    call: Callable[[Envelope], Any] = fast if fast is not None else handler

    async def finish(result: Any, started: float) -> None:
        try:
            await result
        finally:
            timer.add(label, clock() - started)

    def timed(envelope: Envelope) -> Any:
        started = clock()
        result = call(envelope)
        if result is None:
            timer.add(label, clock() - started)
            return None
        return finish(result, started)

    return timed


def _routing_key(envelope: Envelope) -> str:
    return routing_key(envelope.payload)
