"""Ports: the Protocols agents depend on. Adapters in ``infrastructure`` implement them.

Agents get a :class:`Bus` (and the :class:`~core.clock.Clock`) injected and never know whether it is
RabbitMQ or the in-memory twin: one code path for backtest, paper and live.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from core.messages.base import Envelope
from core.messages.market import Candle
from core.wake import WakePolicy

Handler = Callable[[Envelope], Awaitable[None]]
"""An async message handler. Returning normally acks; raising retries (then dead-letters). The
in-memory bus calls a handler's plain-function twin (``handler.sync``) when it has one."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be processed, with why and where it came from."""

    queue: str
    routing_key: str
    body: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A durable queue: its name, binding patterns, prefetch and delivery limit.

    ``single_active_consumer``: the broker delivers to one consumer at a time (the others stand by
    and take over, in order, when it leaves): what keeps a partition's messages in order across
    replicas. ``patterns`` may be empty (a partition queue with no symbol: it exists, binds nothing).

    ``wake`` is the consumer's wake condition (:mod:`core.wake`) and ``group`` the consumer (an agent
    id) its queues belong to: the in-memory bus of a backtest uses them to skip deliveries that change
    nothing; RabbitMQ ignores them and delivers everything.
    """

    name: str
    patterns: tuple[str, ...]
    prefetch: int = 64
    delivery_limit: int | None = None
    single_active_consumer: bool = False
    arguments: dict[str, object] = field(default_factory=dict)
    max_length: int | None = None
    """Messages the queue holds at most (``x-max-length``); None: the bus's default. Past it the
    oldest message is dead-lettered."""
    wake: WakePolicy | None = None
    group: str | None = None


@runtime_checkable
class Bus(Protocol):
    """The message bus port: topic publish, queue subscribe, graceful close.

    Semantics shared by every adapter (checked by ``tests/contract``):

    * topic routing: ``*`` matches exactly one word, ``#`` zero or more words;
    * ``publish`` of a message that matches no queue raises
      :class:`~core.errors.UnroutableMessage` (mandatory publishing), it is never dropped;
    * a queue delivers its messages in publish order to its handler;
    * a message that fails decoding/validation goes to the queue's dead-letter queue with a reason;
    * a handler exception retries the message up to the delivery limit, then dead-letters it;
    * a message is acknowledged only after its handler returned.
    """

    async def start(self) -> None:
        """Connect and declare the shared topology. Idempotent."""
        ...

    async def publish(self, envelope: Envelope, routing_key: str | None = None) -> None:
        """Publish one message (routing key derived from the payload when not given); returns once
        the message is safely accepted (broker confirm for RabbitMQ)."""
        ...

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish already-encoded bytes as they are (bridges, replays, tests of bad input)."""
        ...

    async def subscribe(self, spec: QueueSpec, handler: Handler) -> None:
        """Declare ``spec``'s queue (with its dead-letter queue), bind its patterns, and start
        delivering its messages to ``handler``."""
        ...

    async def declare(self, spec: QueueSpec) -> None:
        """Declare ``spec``'s queue (with its dead-letter queue) and bind its patterns without
        consuming: its messages wait for a consumer (partition queues a replica does not own yet)."""
        ...

    async def unsubscribe(self, queue: str, handler: Handler | None = None) -> None:
        """Stop consuming ``queue`` (only ``handler``'s consumer when given; every consumer of this
        bus otherwise). The message in hand finishes and is acknowledged; deliveries not started go
        back to the queue, in order, for its next consumer. The queue, its bindings and its messages
        stay. Unknown queues are ignored."""
        ...

    async def dead_letters(self, queue: str) -> Sequence[DeadLetter]:
        """Read (without removing) the dead letters of ``queue``: for operators and tests."""
        ...

    async def close(self) -> None:
        """Stop consuming, let in-flight handlers finish and ack, then disconnect. Idempotent."""
        ...


@runtime_checkable
class HistoryProvider(Protocol):
    """Recent closed candles of one series, for warming up indicators before going live.

    Implemented over the tick store (InfluxDB) or the exchange gateway; tests and backtests pass a
    replay of real candles. Returns at most ``limit`` CLOSED candles, oldest first, all ending at
    or before ``end`` when it is given (so a replayed history never overlaps the live feed).
    """

    async def recent_candles(
        self, venue: str, symbol: str, timeframe: str, limit: int, end: datetime | None = None
    ) -> Sequence[Candle]:
        """Up to ``limit`` most recent closed candles, oldest first."""
        ...
