"""The RabbitMQ adapter of the :class:`~core.ports.Bus` port, on aio-pika 10.

Guarantees (details and the topology in ``docs/messaging.md``):

* **Publishing** is persistent, ``mandatory`` and confirmed: ``publish`` returns only after the
  broker's ``basic.ack``; a message no queue is bound for raises :class:`UnroutableMessage`, a
  ``basic.nack`` (or no confirm within ``publish_timeout_s``) raises :class:`PublishNotConfirmed`.
  While the connection is down a publish waits and retries (tenacity, bounded by
  ``publish_timeout_s``) until the robust connection is back. A confirm lost with the connection
  means the message MAY have been stored: the retry can duplicate it, which idempotent consumers
  (dedupe by ``message_id``) absorb. Delivery is at-least-once.
* **Consuming**: one channel per subscription with ``basic.qos(prefetch)``; deliveries are handled
  one at a time, in delivery order, by a worker task per subscription. A message is acked only
  after its handler returned. Undecodable/invalid bytes and handler :class:`MessageRejected` go to
  the queue's DLQ at once (confirmed publish to the dead-letter exchange with the reason in
  headers, then ack). Other handler exceptions are retried (``nack(requeue=True)``) until the
  queue's delivery limit; the last allowed delivery is dead-lettered by the bus with the exception
  as reason. The broker's ``x-delivery-limit`` stays as the backstop for consumers that die
  mid-message.
* **Reconnect**: ``connect_robust`` restores channels, exchanges, queues, bindings, QoS and
  consumers after a dropped connection; reconnections are counted in ``BUS_RECONNECTS``.
  Deliveries buffered from a dead channel are dropped (the broker redelivers them).
* **close()** cancels the consumers, lets each subscription finish the message in hand (and ack
  it), returns unstarted prefetched messages to the queue, then closes channels and connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
    ExchangeType,
)
from aiormq.exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
    ProbableAuthenticationError,
    PublishError,
)
from pamqp.commands import Basic
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from core import routing
from core.errors import (
    BusClosed,
    ConfigurationError,
    MessageRejected,
    PublishNotConfirmed,
    UnroutableMessage,
)
from core.logging import get_logger
from core.messages.base import Envelope
from core.messages.codec import CONTENT_TYPE, JsonCodec
from core.ports import DeadLetter, Handler, QueueSpec
from core.settings import Settings
from infrastructure.messaging import rabbitmq_topology as topology
from infrastructure.messaging.sender import CURRENT_DELIVERY, Delivery
from infrastructure.observability import metrics

PERSISTENT = 2
"""AMQP ``delivery_mode`` of a persistent message."""


class _ConnectionLostError(ConnectionError):
    """A publish lost its channel (the confirm future was cancelled when the connection dropped)."""


_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # includes aiormq's AMQPConnectionError and ConnectionClosed
    ChannelInvalidStateError,
    AMQPConnectionError,
    TimeoutError,  # waiting for the robust channel to be restored
)


class _HandlerCancelledError(Exception):
    """A handler raised ``CancelledError`` although its consumer task was not being cancelled."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT_ERRORS)


def _is_retryable_connect_error(exc: BaseException) -> bool:
    """Broker not (yet) reachable: retry. Wrong credentials: fail at once."""
    if isinstance(exc, AuthenticationError | ProbableAuthenticationError):
        return False
    return isinstance(exc, ConnectionError | OSError)


@dataclass(eq=False)
class _Subscription:
    """One consuming queue: its channel, its local delivery buffer and its worker task."""

    spec: QueueSpec
    handler: Handler
    limit: int
    channel: AbstractRobustChannel
    queue: AbstractRobustQueue
    buffer: asyncio.Queue[AbstractIncomingMessage | None] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    consumer_tag: str | None = None
    stopping: bool = False

    async def deliver(self, message: AbstractIncomingMessage) -> None:
        """aio-pika consumer callback: hand the delivery to the worker, in delivery order."""
        self.buffer.put_nowait(message)


class RabbitMQBus:
    """The :class:`~core.ports.Bus` on RabbitMQ: durable topology, confirms, DLQs, reconnect.

    ``connection_name`` (the agent id) names the AMQP connection in the management UI and is the
    ``app_id`` of published messages; ``agent_kind`` labels the metrics (low cardinality; the
    connection name when not given). ``delivery_limit`` is the default for queues whose
    :class:`QueueSpec` sets none. ``publish_timeout_s`` bounds how long a publish waits for its
    confirm and for the broker to come back; ``shutdown_grace_s`` how long :meth:`close` waits for
    the messages in hand.
    """

    def __init__(
        self,
        url: str | SecretStr,
        *,
        connection_name: str = "tradeswarm",
        agent_kind: str | None = None,
        codec: JsonCodec | None = None,
        delivery_limit: int = routing.DEFAULT_DELIVERY_LIMIT,
        max_queue_length: int = routing.DEFAULT_MAX_QUEUE_LENGTH,
        max_clock_skew_s: float | None = None,
        publish_timeout_s: float = 30.0,
        startup_timeout_s: float = 30.0,
        reconnect_interval_s: float = 1.0,
        shutdown_grace_s: float = 20.0,
    ) -> None:
        if delivery_limit < 1 or max_queue_length < 1:
            raise ValueError("delivery_limit and max_queue_length must be >= 1")
        if publish_timeout_s <= 0 or startup_timeout_s <= 0 or shutdown_grace_s <= 0:
            raise ValueError("timeouts must be positive")
        self._url = url.get_secret_value() if isinstance(url, SecretStr) else url
        self._agent_id = connection_name
        self._agent_label = agent_kind or connection_name
        self._codec = codec or JsonCodec()
        self._delivery_limit = delivery_limit
        self._max_queue_length = max_queue_length
        self._max_skew = max_clock_skew_s or None
        self._publish_timeout = publish_timeout_s
        self._startup_timeout = startup_timeout_s
        self._reconnect_interval = reconnect_interval_s
        self._shutdown_grace = shutdown_grace_s
        parts = urlsplit(self._url)
        self._user_id = unquote(parts.username) if parts.username else None
        self._where = f"{parts.hostname}:{parts.port or 5672}/{unquote(parts.path[1:]) or '/'}"
        self._log = get_logger(__name__, component="bus", connection=connection_name)

        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._dead_letter_channel: AbstractRobustChannel | None = None
        self._subscriptions: dict[str, _Subscription] = {}
        self._start_lock = asyncio.Lock()
        self._close_lock = asyncio.Lock()
        self._closing = False
        self._closed = False
        self._reconnects = 0
        self._was_blocked = False

    @classmethod
    def from_settings(cls, settings: Settings, *, agent_id: str, agent_kind: str) -> RabbitMQBus:
        """A bus configured from :class:`core.settings.Settings` (URL, delivery limit, sizes)."""
        return cls(
            settings.rabbitmq_url,
            connection_name=agent_id,
            agent_kind=agent_kind,
            codec=JsonCodec(max_message_bytes=settings.max_message_bytes),
            delivery_limit=settings.rabbitmq_delivery_limit,
            max_queue_length=settings.rabbitmq_max_queue_length,
            max_clock_skew_s=settings.max_clock_skew_s,
            shutdown_grace_s=settings.shutdown_grace_s,
        )

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def connected(self) -> bool:
        """True while the connection is up (for ``/readyz``)."""
        conn = self._connection
        return conn is not None and not self._closed and not conn.is_closed and conn.connected.is_set()

    @property
    def blocked(self) -> bool:
        """True while the broker blocks this connection's publishing (``connection.blocked``: a memory
        or disk alarm). Every publish then waits, so the agent is not ready (``/readyz``)."""
        conn = self._connection
        if conn is None or self._closed:
            return False
        event = _unblocked_event(conn)
        blocked = event is not None and not event.is_set() and self.connected
        if blocked != self._was_blocked:  # reported on the first probe that sees the change
            self._was_blocked = blocked
            metrics.BUS_BLOCKED.labels(agent=self._agent_label).set(1 if blocked else 0)
            log = self._log.error if blocked else self._log.warning
            log("bus_blocked" if blocked else "bus_unblocked", broker=self._where)
        return blocked

    @property
    def reconnects(self) -> int:
        """How many times this bus reconnected after a dropped connection."""
        return self._reconnects

    async def start(self) -> None:
        """Connect (retrying for up to ``startup_timeout_s``) and declare the two exchanges."""
        if self._closing or self._closed:
            raise BusClosed("the bus is closed")
        async with self._start_lock:
            if self._connection is not None:
                return
            connection = await self._connect()
            try:
                publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await publish_channel.declare_exchange(routing.EXCHANGE, ExchangeType.TOPIC, durable=True)
                await publish_channel.declare_exchange(routing.DEAD_LETTER_EXCHANGE, ExchangeType.DIRECT, durable=True)
                dead_letter_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            except BaseException:
                await connection.close()
                raise
            connection.reconnect_callbacks.add(self._on_reconnect)
            connection.close_callbacks.add(self._on_connection_lost)
            self._publish_channel = publish_channel
            self._dead_letter_channel = dead_letter_channel
            self._connection = connection
            self._log.info("bus_connected", broker=self._where, exchange=routing.EXCHANGE)

    async def _connect(self) -> AbstractRobustConnection:
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._startup_timeout),
            wait=wait_exponential(multiplier=0.2, max=3.0),
            retry=retry_if_exception(_is_retryable_connect_error),
            reraise=True,
            before_sleep=lambda state: self._log.warning(
                "bus_connect_retry",
                broker=self._where,
                attempt=state.attempt_number,
                error=repr(state.outcome.exception()) if state.outcome else None,
            ),
        )
        async for attempt in retrying:
            with attempt:
                return await aio_pika.connect_robust(
                    self._url,
                    client_properties={"connection_name": self._agent_id},
                    reconnect_interval=self._reconnect_interval,
                )
        raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises

    def _on_reconnect(self, *_: Any) -> None:
        self._reconnects += 1
        metrics.BUS_RECONNECTS.labels(agent=self._agent_label).inc()
        self._log.warning("bus_reconnected", broker=self._where, reconnects=self._reconnects)

    def _on_connection_lost(self, _sender: Any, exc: BaseException | None = None, *_: Any) -> None:
        if not self._closing:
            self._log.warning("bus_connection_lost", broker=self._where, error=repr(exc))

    async def close(self) -> None:
        """Stop consuming, finish the messages in hand, then disconnect. Idempotent."""
        async with self._close_lock:
            if self._closed:
                return
            self._closing = True
            subscriptions = list(self._subscriptions.values())
            connected = self.connected
            for sub in subscriptions:
                sub.stopping = True
                if sub.consumer_tag is not None and connected:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(sub.queue.cancel(sub.consumer_tag), timeout=5.0)
                sub.buffer.put_nowait(None)
            current = asyncio.current_task()  # close() called from a handler must not wait for itself
            workers = [sub.worker for sub in subscriptions if sub.worker is not None and sub.worker is not current]
            if workers:
                _, pending = await asyncio.wait(workers, timeout=self._shutdown_grace)
                for task in pending:
                    self._log.warning("bus_handler_abandoned", task=task.get_name(), grace_s=self._shutdown_grace)
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            self._closed = True
            channels = [sub.channel for sub in subscriptions]
            channels += [c for c in (self._publish_channel, self._dead_letter_channel) if c is not None]
            for channel in channels:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), timeout=5.0)
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._connection.close(), timeout=5.0)
            self._subscriptions.clear()
            self._log.info("bus_closed", broker=self._where)

    def _require_open(self) -> AbstractRobustChannel:
        channel = self._publish_channel
        if self._closed or channel is None:
            raise BusClosed("the bus is closed" if self._closed else "the bus is not started: call start() first")
        return channel

    # ----------------------------------------------------------------------------- publishing

    async def publish(self, envelope: Envelope, routing_key: str | None = None) -> None:
        """Publish one envelope, persistent and mandatory; return once the broker confirmed it."""
        channel = self._require_open()
        key = routing_key if routing_key is not None else routing.routing_key(envelope.payload)
        body = self._codec.encode(envelope)
        await self._publish(channel, routing.EXCHANGE, key, body, self._properties(envelope))

    async def publish_many(self, envelopes: Iterable[Envelope]) -> None:
        """Publish a batch and await all confirms together (much faster than one at a time).

        Every message gets the guarantees of :meth:`publish`. All are sent before any error is
        raised; the first error (unroutable, not confirmed) is raised once every message settled.
        """
        channel = self._require_open()
        pending = [
            self._publish(
                channel,
                routing.EXCHANGE,
                routing.routing_key(envelope.payload),
                self._codec.encode(envelope),
                self._properties(envelope),
            )
            for envelope in envelopes
        ]
        await _settle_all(pending)

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish bytes as they are (bridges, replays, tests of bad input), same guarantees."""
        channel = self._require_open()
        properties = Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            app_id=self._agent_id,
            user_id=self._user_id,
        )
        await self._publish(channel, routing.EXCHANGE, routing_key, body, properties)

    def _properties(self, envelope: Envelope) -> Basic.Properties:
        return Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_id=str(envelope.message_id),
            correlation_id=str(envelope.correlation_id),
            message_type=envelope.type,
            timestamp=envelope.ts_init,
            app_id=self._agent_id,
            user_id=self._user_id,
        )

    async def _publish(
        self, channel: AbstractRobustChannel, exchange: str, key: str, body: bytes, properties: Basic.Properties
    ) -> None:
        try:
            await self._publish_once(channel, exchange, key, body, properties)
        except _TRANSIENT_ERRORS as exc:
            self._log.warning("bus_publish_retry", routing_key=key, error=repr(exc))
            await self._publish_retrying(channel, exchange, key, body, properties)

    async def _publish_once(
        self, channel: AbstractRobustChannel, exchange: str, key: str, body: bytes, properties: Basic.Properties
    ) -> None:
        connection = self._connection
        if connection is None or not connection.connected.is_set():
            # Do not block on the robust channel here: the retry path waits with a bound.
            raise _ConnectionLostError("not connected to the broker")
        underlay = await channel.get_underlay_channel()
        try:
            await underlay.basic_publish(
                body,
                exchange=exchange,
                routing_key=key,
                properties=properties,
                mandatory=True,
                timeout=self._publish_timeout,
            )
        except PublishError:
            raise UnroutableMessage(key) from None
        except DeliveryError as exc:
            raise PublishNotConfirmed(f"broker did not confirm the message for {key!r}: {exc}") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling() == 0:
                # Our task was not cancelled: the channel died and cancelled the confirm future.
                raise _ConnectionLostError(f"connection lost while publishing to {key!r}") from None
            raise

    async def _publish_retrying(
        self, channel: AbstractRobustChannel, exchange: str, key: str, body: bytes, properties: Basic.Properties
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._publish_timeout),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if self._closed:
                        raise BusClosed("the bus was closed while a publish was waiting for the broker")
                    await asyncio.wait_for(channel.ready(), timeout=max(deadline - loop.time(), 0.05))
                    await self._publish_once(channel, exchange, key, body, properties)
        except _TRANSIENT_ERRORS as exc:
            raise PublishNotConfirmed(
                f"broker unavailable for {self._publish_timeout:g}s, message for {key!r} not confirmed: {exc!r}"
            ) from exc

    # ----------------------------------------------------------------------------- topology

    async def declare(self, spec: QueueSpec) -> None:
        """Declare ``spec``'s quorum queue, its DLQ and its bindings without consuming from it."""
        connection = self._require_connection()
        channel = await connection.channel(publisher_confirms=False)
        try:
            await self._declare(channel, spec)
        finally:
            await channel.close()

    def _require_connection(self) -> AbstractRobustConnection:
        self._require_open()
        assert self._connection is not None
        return self._connection

    async def _declare(self, channel: AbstractRobustChannel, spec: QueueSpec) -> AbstractRobustQueue:
        arguments = topology.queue_arguments(spec, self._delivery_limit, self._max_queue_length)
        dlq_name = routing.dead_letter_queue(spec.name)
        try:
            dlq = await channel.declare_queue(dlq_name, durable=True, arguments=topology.dead_letter_queue_arguments())
            await dlq.bind(routing.DEAD_LETTER_EXCHANGE, routing_key=spec.name)
            queue = await channel.declare_queue(spec.name, durable=True, arguments=arguments)
        except ChannelPreconditionFailed as exc:
            raise ConfigurationError(
                f"queue {spec.name!r} (or its DLQ) already exists with other arguments than {arguments}: {exc}. "
                "Delete it (after draining) or change it with a policy."
            ) from None
        for pattern in spec.patterns:
            await queue.bind(routing.EXCHANGE, routing_key=pattern)
        return queue

    # ----------------------------------------------------------------------------- consuming

    async def subscribe(self, spec: QueueSpec, handler: Handler) -> None:
        """Declare the queue (and DLQ), bind its patterns and start delivering to ``handler``."""
        connection = self._require_connection()
        if self._closing:
            raise BusClosed("the bus is closing")
        if spec.name in self._subscriptions:
            raise ValueError(f"queue {spec.name!r} is already subscribed on this bus")
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=spec.prefetch)
            queue = await self._declare(channel, spec)
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        sub = _Subscription(
            spec=spec,
            handler=handler,
            limit=topology.effective_delivery_limit(spec, self._delivery_limit),
            channel=channel,
            queue=queue,
        )
        self._subscriptions[spec.name] = sub
        sub.worker = asyncio.create_task(self._work(sub), name=f"bus-consumer:{spec.name}")
        sub.consumer_tag = await queue.consume(sub.deliver, no_ack=False)
        self._log.info(
            "bus_subscribed", queue=spec.name, patterns=list(spec.patterns), prefetch=spec.prefetch, limit=sub.limit
        )

    async def unsubscribe(self, queue: str, handler: Handler | None = None) -> None:
        """Stop consuming ``queue`` without breaking its order (the queue and bindings stay).

        The message in hand finishes and is acked; then the subscription's channel is closed
        WITHOUT a ``basic.cancel`` first: closing returns every unstarted delivery to the queue and
        removes the consumer in one step, so on a single-active-consumer queue the next consumer
        is activated with those messages first, in order (a cancel first could activate it while
        this channel still holds earlier messages). ``handler``, when given, must be the one
        subscribed (a bus has one consumer per queue). Unknown queues are ignored.
        """
        sub = self._subscriptions.get(queue)
        if sub is None or (handler is not None and sub.handler is not handler):
            return
        del self._subscriptions[queue]
        sub.stopping = True
        sub.buffer.put_nowait(None)
        worker = sub.worker
        if worker is not None and worker is not asyncio.current_task():
            done, _ = await asyncio.wait([worker], timeout=self._shutdown_grace)
            if not done:
                self._log.warning("bus_handler_abandoned", task=worker.get_name(), grace_s=self._shutdown_grace)
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sub.channel.close(), timeout=5.0)
        self._log.info("bus_unsubscribed", queue=queue)

    async def _work(self, sub: _Subscription) -> None:
        while True:
            message = await sub.buffer.get()
            if message is None or sub.stopping:
                return  # unstarted deliveries go back to the queue when the channel closes
            try:
                await self._process(sub, message)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug here must not kill the consumer
                self._log.exception("bus_process_failed", queue=sub.spec.name, message_id=message.message_id)

    async def _process(self, sub: _Subscription, message: AbstractIncomingMessage) -> None:
        if not _channel_alive(message):
            # Delivered on a channel that died since: acking is impossible, the broker redelivers it.
            return
        try:
            envelope = self._codec.decode(message.body)
        except MessageRejected as exc:
            await self._dead_letter(sub, message, exc.reason)
            return
        if self._max_skew is not None and (ahead := envelope.ts_event.timestamp() - time.time()) > self._max_skew:
            reason = (
                f"{envelope.type} stamped {envelope.ts_event.isoformat()} lies {ahead:.0f} s in the future of this "
                f"host's clock (limit {self._max_skew:.0f} s): refused as implausible"
            )
            await self._dead_letter(sub, message, reason)
            return
        # The broker verified user_id (it must equal the publisher's connection user): expose it.
        CURRENT_DELIVERY.set(Delivery(user_id=message.user_id))
        try:
            try:
                await sub.handler(envelope)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # close() gave up waiting: the unacked message is redelivered later
                # Something the handler awaited was cancelled, not this consumer: a handler failure.
                raise _HandlerCancelledError("the handler was cancelled") from exc
        except MessageRejected as exc:
            await self._dead_letter(sub, message, exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            attempts = topology.delivery_count(message.headers) + 1
            if attempts >= sub.limit:
                await self._dead_letter(sub, message, topology.exception_reason(exc, attempts))
                return
            self._log.warning(
                "bus_handler_failed",
                queue=sub.spec.name,
                message_id=message.message_id,
                attempt=attempts,
                limit=sub.limit,
                error=repr(exc),
            )
            await self._settle(sub, message, requeue=True)
            return
        await self._settle(sub, message)

    async def _settle(
        self, sub: _Subscription, message: AbstractIncomingMessage, *, requeue: bool | None = None
    ) -> None:
        """Ack (``requeue=None``) or nack-requeue a delivery on the channel it arrived on.

        The frame is queued for the socket without waiting for the write to drain (``wait=False``):
        acks are not confirmed by the broker anyway, and waiting would cost one event-loop round
        trip per message on this sequential path. On a dead channel the ack is impossible (never
        sent on another channel: delivery tags are per channel) and the broker redelivers.
        """
        tag = message.delivery_tag
        try:
            channel = message.channel
            if tag is None:
                return
            if requeue is None:
                await channel.basic_ack(delivery_tag=tag, wait=False)
            else:
                await channel.basic_nack(delivery_tag=tag, requeue=requeue, wait=False)
        except (ChannelInvalidStateError, ConnectionError, aiormq.exceptions.AMQPError) as exc:
            self._log.warning("bus_settle_lost", queue=sub.spec.name, message_id=message.message_id, error=repr(exc))

    async def _dead_letter(self, sub: _Subscription, message: AbstractIncomingMessage, reason: str) -> None:
        """Publish the raw body to the DLX (confirmed), then ack the original."""
        channel = self._dead_letter_channel
        assert channel is not None
        queue = sub.spec.name
        properties = Basic.Properties(
            content_type=message.content_type,
            delivery_mode=PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            message_type=message.type,
            timestamp=message.timestamp,
            app_id=message.app_id,
            user_id=self._user_id,
            headers=topology.dead_letter_headers(
                message.headers, reason=reason, queue=queue, routing_key=message.routing_key or ""
            ),
        )
        try:
            await self._publish(channel, routing.DEAD_LETTER_EXCHANGE, queue, message.body, properties)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the message must not be lost
            # Not stored in the DLQ: give it back; the broker's delivery limit dead-letters it at worst.
            self._log.error("bus_dead_letter_failed", queue=queue, message_id=message.message_id, error=repr(exc))
            await self._settle(sub, message, requeue=True)
            return
        metrics.MESSAGES_DEAD_LETTERED.labels(agent=self._agent_label, queue=queue).inc()
        self._log.warning("bus_dead_lettered", queue=queue, message_id=message.message_id, reason=reason)
        await self._settle(sub, message)

    # ----------------------------------------------------------------------------- inspection

    async def dead_letters(self, queue: str, *, limit: int = 10_000) -> Sequence[DeadLetter]:
        """Read up to ``limit`` dead letters of ``queue`` without removing them.

        Every message is fetched with ``basic.get`` (unacked, so none is fetched twice), then all
        are returned at once with one ``nack(multiple=True, requeue=True)``: they stay in the DLQ,
        in their order. A DLQ has no delivery limit, so reading it never drops a message. Returns
        an empty list when the DLQ does not exist (the queue was never declared). Two concurrent
        readers split the messages between them (each sees those the other does not hold).
        """
        connection = self._require_connection()
        channel = await connection.channel(publisher_confirms=False)
        fetched: list[AbstractIncomingMessage] = []
        try:
            try:
                dlq = await channel.declare_queue(routing.dead_letter_queue(queue), passive=True)
            except ChannelNotFoundEntity:
                return []
            while len(fetched) < limit:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                fetched.append(message)
            if fetched:
                await fetched[-1].nack(multiple=True, requeue=True)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        letters = []
        for message in fetched:
            key, reason = topology.describe_dead_letter(message.headers, message.routing_key)
            letters.append(DeadLetter(queue=queue, routing_key=key, body=message.body, reason=reason))
        return letters


def _unblocked_event(connection: AbstractRobustConnection) -> asyncio.Event | None:
    """aiormq's "not blocked" event of the connection (set unless the broker sent ``connection.blocked``).

    aio-pika exposes no blocked state; aiormq keeps it in a private attribute, read here in one place
    (``tests/safety/test_broker_alarm.py`` fails if an upgrade moves it).
    """
    transport = getattr(connection, "transport", None)
    amqp = getattr(transport, "connection", None)
    event = getattr(amqp, "_Connection__connection_unblocked", None)
    return event if isinstance(event, asyncio.Event) else None


def _channel_alive(message: AbstractIncomingMessage) -> bool:
    try:
        _ = message.channel
    except ChannelInvalidStateError:
        return False
    return True


async def _settle_all(pending: Sequence[Awaitable[None]]) -> None:
    if not pending:
        return
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
