"""The bus contract: the same tests, unchanged, against the in-memory bus and real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from core.errors import MessageRejected, UnroutableMessage
from core.messages import Candle, Envelope
from core.ports import QueueSpec
from core.routing import CANDLES
from tests.conftest import BusFactory
from tests.factories import candle_envelope, eventually, eventually_async

pytestmark = pytest.mark.integration


def _queue(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"


class Recorder:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)


async def test_topic_routing_star_and_hash(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    exact, hash_zero, hash_many, star, other = Recorder(), Recorder(), Recorder(), Recorder(), Recorder()
    key = "market.candle.binance.BTC-USDT.1h"
    await bus.subscribe(QueueSpec(_queue("exact"), (key,)), exact)
    await bus.subscribe(QueueSpec(_queue("hash0"), (f"{key}.#",)), hash_zero)  # '#' matches zero words
    await bus.subscribe(QueueSpec(_queue("hashn"), ("market.#",)), hash_many)
    await bus.subscribe(QueueSpec(_queue("star"), ("market.candle.*.*.1h",)), star)
    await bus.subscribe(QueueSpec(_queue("other"), ("market.candle.*.1h", "market.trade.#")), other)
    await bus.publish(candle_envelope(0))
    await eventually(lambda: all(len(r.seen) == 1 for r in (exact, hash_zero, hash_many, star)))
    await bus.publish(candle_envelope(1, timeframe="4h"))
    await eventually(lambda: len(hash_many.seen) == 2)
    assert len(star.seen) == 1  # '*' needs exactly one word: 4h does not match 1h
    assert len(exact.seen) == 1
    assert other.seen == []  # '*' never matches two words


async def test_routing_key_derived_from_payload(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    rec = Recorder()
    await bus.subscribe(QueueSpec(_queue("derived"), (CANDLES.pattern(symbol="ETH/USDT"),)), rec)
    await bus.publish(candle_envelope(3, symbol="ETH/USDT"))
    await eventually(lambda: len(rec.seen) == 1)
    assert isinstance(rec.seen[0].payload, Candle)
    assert rec.seen[0].payload.symbol == "ETH/USDT"


async def test_unroutable_publish_raises(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    with pytest.raises(UnroutableMessage):
        await bus.publish(candle_envelope(0), routing_key="nobody.listens.here")


async def test_per_queue_order_is_preserved(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    rec = Recorder()
    await bus.subscribe(QueueSpec(_queue("order"), (CANDLES.all(),), prefetch=16), rec)
    sent = [candle_envelope(i) for i in range(200)]
    for env in sent:
        await bus.publish(env)
    await eventually(lambda: len(rec.seen) == 200)
    assert [e.message_id for e in rec.seen] == [e.message_id for e in sent]
    assert [e.payload for e in rec.seen] == [e.payload for e in sent]


async def test_invalid_message_goes_to_dlq_with_reason(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    rec = Recorder()
    queue = _queue("invalid")
    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),)), rec)
    good = candle_envelope(0)
    raw = orjson.loads(good.model_dump_json())
    raw["payload"]["high"] = "1"  # high below low: the OHLC check must reject it
    key = "market.candle.binance.BTC-USDT.1h"
    await bus.publish_raw(key, orjson.dumps(raw))
    await bus.publish_raw(key, b"{not json")
    await bus.publish(good)
    await eventually(lambda: len(rec.seen) == 1)

    async def two_dead() -> bool:
        return len(await bus.dead_letters(queue)) == 2

    await eventually_async(two_dead)
    dead = await bus.dead_letters(queue)
    assert len(dead) == 2
    reasons = sorted(d.reason for d in dead)
    assert any("high" in r for r in reasons), reasons
    assert any("JSON" in r for r in reasons), reasons
    assert all(d.queue == queue and d.routing_key == key for d in dead)
    assert rec.seen[0].message_id == good.message_id  # the bad ones were never half-processed


async def test_handler_exception_retried_then_dead_lettered(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    attempts: dict[uuid.UUID, int] = {}
    queue = _queue("retry")

    async def flaky(env: Envelope) -> None:
        attempts[env.message_id] = attempts.get(env.message_id, 0) + 1
        assert isinstance(env.payload, Candle)
        if env.payload.sequence == 0:
            raise RuntimeError("database unavailable")
        if env.payload.sequence == 1 and attempts[env.message_id] < 2:
            raise RuntimeError("transient")

    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), delivery_limit=3), flaky)
    poison, transient = candle_envelope(0), candle_envelope(1)
    await bus.publish(poison)
    await bus.publish(transient)

    async def settled() -> bool:
        return bool(await bus.dead_letters(queue)) and attempts.get(transient.message_id) == 2

    await eventually_async(settled)
    assert attempts[poison.message_id] == 3  # exactly the delivery limit
    assert attempts[transient.message_id] == 2  # failed once, then succeeded
    letters = await bus.dead_letters(queue)
    assert len(letters) == 1
    assert "database unavailable" in letters[0].reason


async def test_handler_rejection_dead_letters_at_once(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    calls: list[int] = []
    queue = _queue("reject")

    async def reject(env: Envelope) -> None:
        calls.append(1)
        raise MessageRejected("no handler for this message type")

    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), delivery_limit=5), reject)
    await bus.publish(candle_envelope(0))

    async def dead_lettered() -> bool:
        return bool(await bus.dead_letters(queue))

    await eventually_async(dead_lettered)
    letters = await bus.dead_letters(queue)
    assert [d.reason for d in letters] == ["no handler for this message type"]
    assert calls == [1]


async def test_processed_plus_dead_lettered_equals_published(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    queue = _queue("accounting")
    processed: list[int] = []

    async def handler(env: Envelope) -> None:
        assert isinstance(env.payload, Candle)
        if env.payload.sequence % 7 == 0:
            raise RuntimeError("boom")
        processed.append(env.payload.sequence)

    await bus.subscribe(QueueSpec(queue, (CANDLES.all(),), delivery_limit=2), handler)
    published = 0
    for i in range(60):
        await bus.publish(candle_envelope(i))
        published += 1
        if i % 10 == 5:
            await bus.publish_raw("market.candle.binance.BTC-USDT.1h", b'{"type": "candle"}')
            published += 1

    async def all_accounted() -> bool:
        return len(processed) + len(await bus.dead_letters(queue)) == published

    await eventually_async(all_accounted, timeout=60)
    assert len(processed) == len(set(processed))  # nothing processed twice
    assert len(await bus.dead_letters(queue)) == 9 + 6  # every 7th of 60 (0..56) + 6 malformed


class SlowRecorder(Recorder):
    """A recorder that takes a little time per message (so deliveries are in flight)."""

    async def __call__(self, envelope: Envelope) -> None:
        await asyncio.sleep(0.002)
        self.seen.append(envelope)


def _indexes(*recorders: Recorder) -> list[int]:
    return [int(e.payload.open_time.timestamp()) for r in recorders for e in r.seen]  # type: ignore[attr-defined]


async def test_single_active_consumer_then_unsubscribe_hands_over_in_order(bus_factory: BusFactory) -> None:
    """Two consumers of a single-active-consumer queue: only the first gets messages; when it
    unsubscribes mid-stream the other takes over with the rest, in order, none lost or repeated."""
    first_bus, second_bus = await bus_factory(), await bus_factory()
    spec = QueueSpec(_queue("sac"), (CANDLES.all(),), prefetch=16, single_active_consumer=True)
    first, second = SlowRecorder(), SlowRecorder()
    await first_bus.subscribe(spec, first)
    await second_bus.subscribe(spec, second)
    envelopes = [candle_envelope(i) for i in range(120)]

    async def produce() -> None:
        for envelope in envelopes:
            await first_bus.publish(envelope)

    producer = asyncio.create_task(produce())
    await eventually(lambda: len(first.seen) >= 30)
    assert second.seen == []  # standby while the first is active
    await first_bus.unsubscribe(spec.name, first)
    handed_over_at = len(first.seen)
    await producer
    await eventually(lambda: len(first.seen) + len(second.seen) == len(envelopes))
    assert len(first.seen) == handed_over_at  # nothing after the unsubscribe
    expected = [int(e.payload.open_time.timestamp()) for e in envelopes]  # type: ignore[attr-defined]
    assert _indexes(first, second) == expected
    await asyncio.sleep(0.2)
    assert len(first.seen) + len(second.seen) == len(envelopes)  # no redelivery


async def test_messages_wait_for_a_consumer_after_unsubscribe(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    spec = QueueSpec(_queue("wait"), (CANDLES.all(),), single_active_consumer=True)
    before, after = Recorder(), Recorder()
    await bus.subscribe(spec, before)
    await bus.publish(candle_envelope(0))
    await eventually(lambda: len(before.seen) == 1)
    await bus.unsubscribe(spec.name)
    await bus.unsubscribe("test.no-such-queue")  # unknown queues are ignored
    for i in range(1, 4):
        await bus.publish(candle_envelope(i))  # still routed: the queue and its binding stay
    await asyncio.sleep(0.2)
    assert len(before.seen) == 1
    await bus.subscribe(spec, after)
    await eventually(lambda: len(after.seen) == 3)
    assert _indexes(after) == [int(candle_envelope(i).payload.open_time.timestamp()) for i in range(1, 4)]  # type: ignore[attr-defined]
