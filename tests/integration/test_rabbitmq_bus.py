"""RabbitMQ-only behaviour of :class:`RabbitMQBus` on the real local broker (each test in its own vhost).

What the shared contract suite (``tests/contract``) cannot show because the in-memory bus has no
broker: the declared topology, the dead-letter headers, surviving a broker restart, a consumer
killed mid-message, a dropped connection, a graceful close.

``test_confirmed_messages_survive_broker_restart`` restarts a private RabbitMQ node of its own
(``tests.stackkit.private_broker``): the shared broker on 5672 is never stopped by a test, so a
test killed mid-way cannot leave it down for everything that runs after it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from core import routing
from core.errors import BusClosed, MessageRejected, UnroutableMessage
from core.messages import Candle, Envelope
from core.ports import QueueSpec
from core.routing import CANDLES
from infrastructure.messaging.rabbitmq import RabbitMQBus
from infrastructure.observability import metrics
from tests.conftest import rabbitmqctl
from tests.factories import candle_envelope, eventually, eventually_async
from tests.stackkit import PrivateBroker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = "market.candle.binance.BTC-USDT.1h"


def _queue(purpose: str) -> str:
    return routing.queue_name("itest", f"{purpose}-{uuid.uuid4().hex[:6]}")


class Recorder:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)

    def ids(self) -> list[uuid.UUID]:
        return [e.message_id for e in self.seen]


@pytest.fixture
async def make_bus(rabbit_url: str) -> AsyncIterator[object]:
    """Makes started buses on the test's vhost and closes them all afterwards."""
    made: list[RabbitMQBus] = []

    async def make(**kwargs: object) -> RabbitMQBus:
        kwargs.setdefault("connection_name", f"itest-{len(made)}")
        bus = RabbitMQBus(rabbit_url, **kwargs)  # type: ignore[arg-type]
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in reversed(made):
        await asyncio.wait_for(bus.close(), timeout=60)


def _vhost(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _queue_rows(vhost: str) -> dict[str, list[str]]:
    out = rabbitmqctl("list_queues", "-q", "--no-table-headers", "-p", vhost, "name", "type", "messages", "arguments")
    rows: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4:
            rows[parts[0]] = parts[1:]
    return rows


async def _raw_dead_letters(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Read a DLQ with plain aio-pika (get + requeue), to look at headers the port does not expose."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        dlq = await channel.declare_queue(routing.dead_letter_queue(queue), passive=True)
        got = []
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            got.append(message)
        if got:
            await got[-1].nack(multiple=True, requeue=True)
        return got
    finally:
        await connection.close()


# --------------------------------------------------------------------------------- publishing


async def test_unroutable_publish_raises_on_every_path(make_bus) -> None:
    bus = await make_bus()
    with pytest.raises(UnroutableMessage) as info:
        await bus.publish(candle_envelope(0))  # nothing is bound at all in a fresh vhost
    assert info.value.routing_key == KEY
    with pytest.raises(UnroutableMessage):
        await bus.publish_raw("nobody.listens.here", b"{}")

    rec = Recorder()
    await bus.subscribe(QueueSpec(_queue("eth"), (CANDLES.pattern(symbol="ETH/USDT"),)), rec)
    routed, lost = candle_envelope(1, symbol="ETH/USDT"), candle_envelope(2, symbol="SOL/USDT")
    with pytest.raises(UnroutableMessage):
        await bus.publish_many([routed, lost])  # the routable one is still published and confirmed
    await eventually(lambda: len(rec.seen) == 1)
    assert rec.ids() == [routed.message_id]
    # the channel is still usable after a basic.return
    await bus.publish(candle_envelope(3, symbol="ETH/USDT"))
    await eventually(lambda: len(rec.seen) == 2)


async def test_published_properties_and_persistence(make_bus, rabbit_url: str) -> None:
    bus = await make_bus(connection_name="props-agent")
    queue = _queue("props")
    await bus.declare(QueueSpec(queue, (CANDLES.all(),)))
    env = candle_envelope(4)
    await bus.publish(env)
    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel()
        got = await (await channel.declare_queue(queue, passive=True)).get(no_ack=True)
    finally:
        await connection.close()
    assert got.message_id == str(env.message_id)
    assert got.correlation_id == str(env.correlation_id)
    assert got.type == "candle"
    assert got.content_type == "application/json"
    assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert got.app_id == "props-agent"
    assert got.user_id == "guest"  # the broker checks user_id against the authenticated user
    assert got.timestamp is not None
    assert got.body == env.model_dump_json().encode()


async def test_declared_topology_uses_quorum_queues_with_dlq(make_bus, rabbit_url: str) -> None:
    bus = await make_bus()
    queue = _queue("topology")
    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), delivery_limit=7, single_active_consumer=True), Recorder())
    default_queue = _queue("default-limit")
    await bus.declare(QueueSpec(default_queue, (CANDLES.all(),)))
    rows = _queue_rows(_vhost(rabbit_url))
    qtype, _, arguments = rows[queue]
    assert qtype == "quorum"
    assert '{"x-delivery-limit",7}' in arguments
    assert f'{{"x-dead-letter-exchange","{routing.DEAD_LETTER_EXCHANGE}"}}' in arguments
    assert f'{{"x-dead-letter-routing-key","{queue}"}}' in arguments
    assert '{"x-single-active-consumer",true}' in arguments
    assert rows[routing.dead_letter_queue(queue)][0] == "quorum"
    assert f'{{"x-delivery-limit",{routing.DEFAULT_DELIVERY_LIMIT}}}' in rows[default_queue][2]
    assert "x-single-active-consumer" not in rows[default_queue][2]
    bindings = rabbitmqctl(
        "list_bindings",
        "-q",
        "--no-table-headers",
        "-p",
        _vhost(rabbit_url),
        "source_name",
        "destination_name",
        "routing_key",
    ).stdout
    assert f"{routing.EXCHANGE}\t{queue}\t{CANDLES.all()}" in bindings
    assert f"{routing.DEAD_LETTER_EXCHANGE}\t{routing.dead_letter_queue(queue)}\t{queue}" in bindings


async def test_single_active_consumer_keeps_one_consumer_and_fails_over(make_bus) -> None:
    """Partition queues for per-symbol order: only one consumer of the queue is active at a time."""
    first_bus, second_bus = await make_bus(), await make_bus()
    spec = QueueSpec(_queue("partition-p0"), (CANDLES.all(),), single_active_consumer=True)
    first, second = Recorder(), Recorder()
    await first_bus.subscribe(spec, first)
    await second_bus.subscribe(spec, second)
    batch = [candle_envelope(i) for i in range(30)]
    await second_bus.publish_many(batch)
    await eventually(lambda: len(first.seen) == 30)
    assert first.ids() == [e.message_id for e in batch]  # all of them, in order, to the active one
    assert second.seen == []
    await first_bus.close()
    after = [candle_envelope(i) for i in range(30, 40)]
    await second_bus.publish_many(after)
    await eventually(lambda: len(second.seen) == 10)
    assert second.ids() == [e.message_id for e in after]


# --------------------------------------------------------------------------------- dead letters


async def test_validation_failure_lands_in_dlq_with_reason_headers(make_bus, rabbit_url: str) -> None:
    bus = await make_bus()
    rec = Recorder()
    queue = _queue("invalid")
    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),)), rec)
    await bus.publish_raw(KEY, b'{"type": "candle", "schema_version": 1, "payload": {"venue": "binance"}}')
    await bus.publish(candle_envelope(0))
    await eventually(lambda: len(rec.seen) == 1)

    async def one_dead() -> bool:
        return len(await bus.dead_letters(queue)) == 1

    await eventually_async(one_dead)
    raw = await _raw_dead_letters(rabbit_url, queue)
    assert len(raw) == 1
    headers = raw[0].headers
    assert "invalid candle" in str(headers[routing.REASON_HEADER])
    assert headers[routing.ORIGINAL_QUEUE_HEADER] == queue
    assert headers[routing.ORIGINAL_ROUTING_KEY_HEADER] == KEY
    # reading the DLQ twice (through the port too) loses nothing
    assert len(await bus.dead_letters(queue)) == 1
    assert len(await bus.dead_letters(queue)) == 1
    assert await bus.dead_letters(_queue("never-declared")) == []


async def test_handler_exception_retried_to_the_limit_then_dead_lettered(make_bus) -> None:
    bus = await make_bus(agent_kind="itest")
    queue = _queue("poison")
    calls: list[int] = []

    async def always_fails(env: Envelope) -> None:
        assert isinstance(env.payload, Candle)
        calls.append(env.payload.sequence)
        raise ValueError(f"cannot handle candle {env.payload.sequence}")

    before = metrics.MESSAGES_DEAD_LETTERED.labels(agent="itest", queue=queue)._value.get()
    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), delivery_limit=4), always_fails)
    env = candle_envelope(42)
    await bus.publish(env)

    async def dead() -> bool:
        return bool(await bus.dead_letters(queue))

    await eventually_async(dead)
    [letter] = await bus.dead_letters(queue)
    assert calls == [42, 42, 42, 42]  # exactly the delivery limit, then no more
    assert "ValueError: cannot handle candle 42" in letter.reason
    assert letter.routing_key == KEY
    assert letter.body == env.model_dump_json().encode()
    assert metrics.MESSAGES_DEAD_LETTERED.labels(agent="itest", queue=queue)._value.get() == before + 1


async def test_handler_cancelled_inside_is_a_failure_not_the_end_of_the_consumer(make_bus) -> None:
    bus = await make_bus()
    queue = _queue("cancelled")
    handled: list[int] = []

    async def handler(env: Envelope) -> None:
        assert isinstance(env.payload, Candle)
        if env.payload.sequence == 0:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()
            await future  # e.g. a client library cancelled the request it awaited
        handled.append(env.payload.sequence)

    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), delivery_limit=2), handler)
    await bus.publish(candle_envelope(0))
    await bus.publish(candle_envelope(1))

    async def settled() -> bool:
        return handled == [1] and bool(await bus.dead_letters(queue))

    await eventually_async(settled)
    [letter] = await bus.dead_letters(queue)
    assert "cancelled" in letter.reason
    await bus.publish(candle_envelope(2))  # the consumer is still alive
    await eventually(lambda: handled == [1, 2])


async def test_handler_rejection_is_dead_lettered_without_retry(make_bus, rabbit_url: str) -> None:
    bus = await make_bus()
    queue = _queue("rejecting")
    calls: list[uuid.UUID] = []

    async def reject(env: Envelope) -> None:
        calls.append(env.message_id)
        raise MessageRejected("stale intent: past its ttl")

    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),)), reject)
    await bus.publish(candle_envelope(1))

    async def dead() -> bool:
        return bool(await bus.dead_letters(queue))

    await eventually_async(dead)
    assert len(calls) == 1
    raw = await _raw_dead_letters(rabbit_url, queue)
    assert raw[0].headers[routing.REASON_HEADER] == "stale intent: past its ttl"
    assert raw[0].message_id == str(calls[0])


async def test_processed_plus_dead_lettered_equals_published_with_batches(make_bus) -> None:
    bus = await make_bus()
    queue = _queue("accounting")
    processed: list[int] = []

    async def handler(env: Envelope) -> None:
        assert isinstance(env.payload, Candle)
        if env.payload.sequence % 5 == 0:
            raise RuntimeError("boom")
        if env.payload.sequence % 11 == 0:
            raise MessageRejected("rejected by the handler")
        processed.append(env.payload.sequence)

    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), delivery_limit=2, prefetch=8), handler)
    await bus.publish_many([candle_envelope(i) for i in range(100)])
    for _ in range(4):
        await bus.publish_raw(KEY, b"\x00 definitely not json")
    published = 104

    async def all_accounted() -> bool:
        return len(processed) + len(await bus.dead_letters(queue)) == published

    await eventually_async(all_accounted, timeout=60)
    assert sorted(processed) == [i for i in range(100) if i % 5 and i % 11]
    reasons = [d.reason for d in await bus.dead_letters(queue)]
    assert sum("RuntimeError: boom" in r for r in reasons) == 20
    assert sum(r == "rejected by the handler" for r in reasons) == 8  # 11, 22, 33, 44, 66, 77, 88, 99
    assert sum("not valid JSON" in r for r in reasons) == 4


# --------------------------------------------------------------------------------- failures


@pytest.mark.slow
async def test_confirmed_messages_survive_broker_restart(private_broker: PrivateBroker) -> None:
    """Stops a private broker's application and starts it again. Also: a publish during the
    outage waits."""
    made: list[RabbitMQBus] = []

    async def make(**kwargs: object) -> RabbitMQBus:
        bus = RabbitMQBus(private_broker.url(), connection_name=f"restart-{len(made)}", **kwargs)  # type: ignore[arg-type]
        await bus.start()
        made.append(bus)
        return bus

    try:
        publisher = await make(publish_timeout_s=120.0)
        queue = _queue("durable")
        spec = QueueSpec(queue, (CANDLES.all(),))
        await publisher.declare(spec)
        sent = [candle_envelope(i) for i in range(50)]
        await publisher.publish_many(sent[:40])
        for env in sent[40:49]:
            await publisher.publish(env)
        during_outage = sent[49]
        private_broker.ctl("stop_app")
        try:
            task = asyncio.create_task(publisher.publish(during_outage))
            await asyncio.sleep(1.0)
            assert not task.done(), "a publish during an outage must wait for the broker, not fail"
        finally:
            private_broker.ctl("start_app")
            private_broker.ctl("await_startup", "--timeout", "90")
        await asyncio.wait_for(task, timeout=120)
        await eventually(lambda: publisher.reconnects >= 1, timeout=30)  # counted after channels are restored

        consumer = await make()
        rec = Recorder()
        await consumer.subscribe(spec, rec)
        await eventually(lambda: len(rec.seen) >= 50, timeout=60)
        assert sorted(rec.ids()) == sorted(e.message_id for e in sent)
    finally:
        for bus in reversed(made):
            await asyncio.wait_for(bus.close(), timeout=60)


CONSUMER_SCRIPT = """
import asyncio, sys
from core.ports import QueueSpec
from infrastructure.messaging.rabbitmq import RabbitMQBus

async def main(url, queue, pattern):
    bus = RabbitMQBus(url, connection_name="doomed-consumer")
    await bus.start()

    async def handler(envelope):
        print(f"HANDLING {envelope.message_id}", flush=True)
        await asyncio.Event().wait()  # blocks mid-message until SIGKILL

    await bus.subscribe(QueueSpec(queue, (pattern,), prefetch=1), handler)
    print("READY", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


async def _read_until(stream: asyncio.StreamReader, prefix: str, timeout: float = 60.0) -> str:
    async def read() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"consumer process exited before printing {prefix!r}")
            if line.startswith(prefix):
                return line.strip()

    return await asyncio.wait_for(read(), timeout)


async def test_consumer_killed_mid_message_gets_it_redelivered(make_bus, rabbit_url: str) -> None:
    queue = _queue("killed")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CONSUMER_SCRIPT,
        rabbit_url,
        queue,
        CANDLES.all(),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        await _read_until(proc.stdout, "READY")
        bus = await make_bus()
        env = candle_envelope(7)
        await bus.publish(env)
        line = await _read_until(proc.stdout, "HANDLING")
        assert line == f"HANDLING {env.message_id}"
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    rec = Recorder()
    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),)), rec)
    await eventually(lambda: len(rec.seen) == 1, timeout=60)
    assert rec.ids() == [env.message_id]
    assert await bus.dead_letters(queue) == []


async def test_broker_delivery_limit_is_the_backstop_when_consumers_keep_dying(make_bus, rabbit_url: str) -> None:
    """A consumer that dies mid-message never gets to dead-letter it: the broker's x-delivery-limit does."""
    bus = await make_bus()
    queue = _queue("backstop")
    await bus.declare(QueueSpec(queue, (CANDLES.all(),), delivery_limit=2))
    env = candle_envelope(9)
    await bus.publish(env)
    connection = await aio_pika.connect(rabbit_url)
    try:
        deliveries = 0
        for _ in range(5):  # each "consumer" takes the message and dies (channel closed, no ack)
            channel = await connection.channel()
            message = await (await channel.declare_queue(queue, passive=True)).get(no_ack=False, fail=False)
            await channel.close()
            if message is None:
                break
            deliveries += 1
    finally:
        await connection.close()
    assert deliveries == 3  # RabbitMQ 3.10 dead-letters once the delivery count exceeds the limit
    [letter] = await bus.dead_letters(queue)
    assert letter.reason == "broker dead-lettered it: delivery_limit"
    assert letter.routing_key == KEY
    assert letter.body == env.model_dump_json().encode()


async def test_dropped_connection_reconnects_and_consumption_resumes(make_bus, rabbit_url: str) -> None:
    bus = await make_bus(agent_kind="itest-reconnect")
    seen: list[int] = []

    async def slowish(env: Envelope) -> None:
        assert isinstance(env.payload, Candle)
        await asyncio.sleep(0.01)  # so that messages are in flight and prefetched when the drop comes
        seen.append(env.payload.sequence)

    await bus.subscribe(QueueSpec(_queue("resume"), (CANDLES.all(),), prefetch=32), slowish)
    await bus.publish(candle_envelope(0))
    await eventually(lambda: seen == [0])
    before = metrics.BUS_RECONNECTS.labels(agent="itest-reconnect")._value.get()
    await bus.publish_many([candle_envelope(i) for i in range(1, 301)])

    vhost = _vhost(rabbit_url)
    listing = rabbitmqctl("list_connections", "-q", "--no-table-headers", "pid", "vhost").stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if line.endswith(f"\t{vhost}")]
    assert pids, listing
    for pid in pids:
        rabbitmqctl("close_connection", pid, "itest: simulated network drop")
    # published while the client is (or is about to notice it is) disconnected: it must wait and retry
    await bus.publish(candle_envelope(301))
    await eventually(lambda: bus.reconnects >= 1, timeout=60)
    await bus.publish(candle_envelope(302))
    # at-least-once: every message is handled after the reconnect (some possibly twice), none lost
    await eventually(lambda: set(seen) == set(range(303)), timeout=60)
    assert metrics.BUS_RECONNECTS.labels(agent="itest-reconnect")._value.get() >= before + 1
    assert bus.connected


async def test_close_finishes_message_in_hand_then_refuses_use(make_bus, rabbit_url: str) -> None:
    bus = await make_bus(shutdown_grace_s=30.0)
    queue = _queue("graceful")
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[uuid.UUID] = []

    async def slow(env: Envelope) -> None:
        started.set()
        await release.wait()
        finished.append(env.message_id)

    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), prefetch=1), slow)
    env = candle_envelope(0)
    await bus.publish(env)
    await asyncio.wait_for(started.wait(), timeout=30)
    closing = asyncio.create_task(bus.close())
    await asyncio.sleep(0.2)
    assert not closing.done(), "close() must wait for the message in hand"
    release.set()
    await asyncio.wait_for(closing, timeout=30)
    assert finished == [env.message_id]
    await bus.close()  # idempotent
    with pytest.raises(BusClosed):
        await bus.publish(candle_envelope(1))
    # the message was acked before the connection closed: nothing is left in the queue
    assert _queue_rows(_vhost(rabbit_url))[queue][1] == "0"


async def test_publish_before_start_raises_bus_closed(rabbit_url: str) -> None:
    bus = RabbitMQBus(rabbit_url)
    with pytest.raises(BusClosed):
        await bus.publish(candle_envelope(0))
    with pytest.raises(BusClosed):
        await bus.subscribe(QueueSpec(_queue("early"), (CANDLES.all(),)), Recorder())
    await bus.close()  # closing a never-started bus is harmless
    with pytest.raises(BusClosed):
        await bus.start()


async def test_start_fails_fast_on_bad_credentials_and_bounded_when_unreachable(rabbit_url: str) -> None:
    bad_login = rabbit_url.replace("guest:guest@", "guest:not-the-password@")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionError):
        await RabbitMQBus(bad_login, startup_timeout_s=60.0).start()
    assert loop.time() - started < 30.0, "wrong credentials must not be retried for the whole startup timeout"
    with pytest.raises(ConnectionError):
        await RabbitMQBus("amqp://guest:guest@127.0.0.1:1/", startup_timeout_s=1.0).start()


async def test_from_settings_uses_the_configured_limits(rabbit_url: str) -> None:
    from core.settings import load_settings

    settings = load_settings(rabbitmq_url=rabbit_url, rabbitmq_delivery_limit=3)
    bus = RabbitMQBus.from_settings(settings, agent_id="risk-test", agent_kind="risk")
    await bus.start()
    try:
        queue = _queue("settings")
        calls: list[int] = []

        async def failing(env: Envelope) -> None:
            calls.append(1)
            raise RuntimeError("always")

        await bus.subscribe(QueueSpec(queue, (CANDLES.all(),)), failing)
        await bus.publish(candle_envelope(0))

        async def dead() -> bool:
            return bool(await bus.dead_letters(queue))

        await eventually_async(dead)
        assert len(calls) == 3  # the settings' delivery limit, not the default 5
        assert bus.connected
    finally:
        await bus.close()
    assert not bus.connected
