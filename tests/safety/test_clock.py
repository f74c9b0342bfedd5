"""Clock poisoning (issue #19): only an accepted message moves an agent's market clock, and a message
stamped implausibly far from the clock is refused with a reason — on the market-time host
(``backtesting.replay_host.MarketTimeBus``) and, for the wall clock, in the RabbitMQ bus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backtesting.replay_host import MarketTimeBus
from core.clock import SimulatedClock, WallClock
from core.errors import MessageRejected
from core.messages import Envelope, Heartbeat
from core.ports import QueueSpec
from infrastructure.messaging.memory import InMemoryBus
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.control.data import approved_order
from tests.factories import T0, candle

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(payload, ts: datetime) -> Envelope:
    return Envelope.wrap(payload, source="test", clock=SimulatedClock(ts), ts_event=ts)


async def market_bus(handler, max_jump: timedelta | None = timedelta(days=7)):
    clock = SimulatedClock()
    inner = InMemoryBus()
    bus = MarketTimeBus(inner, clock, max_jump=max_jump)
    await bus.start()
    await bus.subscribe(QueueSpec("execution.test", ("#",)), handler)
    return bus, inner, clock


async def test_a_refused_message_leaves_the_clock_where_it_was() -> None:
    seen: list[datetime] = []
    clock_ref: list[SimulatedClock] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(clock_ref[0].now())
        if envelope.type == "order_request":
            raise MessageRejected("approved order sent by broker user 'guest', not by a trusted sender")

    bus, inner, clock = await market_bus(handler)
    clock_ref.append(clock)
    first = candle(0)
    await inner.publish(at(first, first.close_time))
    assert clock.now() == first.close_time  # an accepted candle moved it
    forged_ts = first.close_time + timedelta(days=1)  # plausible, but refused by the handler
    await inner.publish(at(approved_order(1), forged_ts))
    assert seen[-1] == forged_ts  # the handler ran at the message's market time...
    assert clock.now() == first.close_time  # ...and the refusal took the move back
    (letter,) = await inner.dead_letters("execution.test")
    assert letter.reason.startswith("approved order sent")
    later = candle(1)
    await inner.publish(at(later, later.close_time))
    assert clock.now() == later.close_time  # the next accepted message moves it on
    await bus.close()


async def test_a_handler_failure_also_takes_the_move_back() -> None:
    async def handler(envelope: Envelope) -> None:
        raise RuntimeError("database down")

    bus, inner, clock = await market_bus(handler)
    c = candle(0)
    await inner.publish(at(c, c.close_time))
    assert clock.now() == EPOCH  # failed (retried, then dead-lettered): never accepted
    await bus.close()


async def test_an_implausible_jump_is_dead_lettered_with_a_reason() -> None:
    handled: list[str] = []

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.type)

    bus, inner, clock = await market_bus(handler)
    first = candle(0)
    await inner.publish(at(first, first.close_time))  # the first message moves the clock from the epoch
    await inner.publish(at(approved_order(2), datetime(2027, 1, 1, tzinfo=UTC)))
    assert clock.now() == first.close_time
    assert handled == ["candle"]  # the handler never saw it
    (letter,) = await inner.dead_letters("execution.test")
    assert "ahead of this agent's market clock" in letter.reason
    assert "refused as implausible" in letter.reason
    # within the limit is fine (a gap in the exchange's history)
    gap = first.close_time + timedelta(days=6)
    await inner.publish(
        at(candle(5).model_copy(update={"open_time": gap - timedelta(hours=1), "close_time": gap}), gap)
    )
    assert clock.now() == gap
    await bus.close()


async def test_control_plane_messages_never_move_the_clock() -> None:
    async def handler(envelope: Envelope) -> None:
        pass

    bus, inner, clock = await market_bus(handler, max_jump=None)
    beat = Heartbeat(
        agent_id="risk-1", agent_kind="risk", version="1", host="h", pid=1, started_at=T0, processed=0, failed=0,
        dead_lettered=0, ready=True,
    )  # fmt: skip
    await inner.publish(at(beat, datetime(2030, 1, 1, tzinfo=UTC)))
    assert clock.now() == EPOCH
    await bus.close()


async def test_concurrent_messages_keep_the_latest_accepted_time() -> None:
    """A refusal takes its own move back only: a later message accepted meanwhile keeps the clock."""
    release = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        if envelope.type == "order_request":
            await release.wait()
            raise MessageRejected("refused")

    clock = SimulatedClock()
    inner = InMemoryBus()
    bus = MarketTimeBus(inner, clock)
    await bus.start()
    await bus.subscribe(QueueSpec("execution.orders", ("order.#",)), handler)
    await bus.subscribe(QueueSpec("execution.market", ("market.#",)), handler)
    c0, c3 = candle(0), candle(3)
    await inner.publish(at(c0, c0.close_time))
    refused = asyncio.create_task(inner.publish(at(approved_order(3), c0.close_time + timedelta(hours=1))))
    await asyncio.sleep(0.01)
    await inner.publish(at(c3, c3.close_time))  # accepted while the order is in hand
    release.set()
    await refused
    assert clock.now() == c3.close_time
    await bus.close()


@pytest.mark.integration
async def test_the_rabbitmq_bus_dead_letters_a_message_from_the_future(rabbit_url: str) -> None:
    """Wall-clock hosts: a message stamped beyond the host's clock + TRADESWARM_MAX_CLOCK_SKEW_S."""
    handled: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope)

    consumer = RabbitMQBus(rabbit_url, connection_name="skew-consumer", max_clock_skew_s=300)
    publisher = RabbitMQBus(rabbit_url, connection_name="skew-publisher")
    await consumer.start()
    await publisher.start()
    try:
        await consumer.subscribe(QueueSpec("execution.skew", ("market.#",)), handler)
        now = WallClock().now()
        c = candle(0).model_copy(update={"close": Decimal("59970.01")})
        await publisher.publish(at(c, datetime(2099, 1, 1, tzinfo=UTC)))
        await publisher.publish(at(c, now + timedelta(seconds=60)))  # within the skew: accepted
        await publisher.publish(at(c, now - timedelta(days=3000)))  # history: accepted
        for _ in range(200):
            if len(handled) == 2:
                break
            await asyncio.sleep(0.05)
        letters = await consumer.dead_letters("execution.skew")
        assert len(handled) == 2
        assert len(letters) == 1
        assert "in the future of this host's clock" in letters[0].reason
        assert "refused as implausible" in letters[0].reason
    finally:
        await consumer.close()
        await publisher.close()
