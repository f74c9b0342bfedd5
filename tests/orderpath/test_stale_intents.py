"""A stale intent never fills: when the data has a gap, the first candle an order could fill on may
open after its intent expired; the paper venue (backtest and paper) then ends it ``expired`` unfilled,
agreeing with execution's own expiry rule. Through the execution agent: messages in, messages out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal as D

import pytest

from agents.execution.agent import ExecutionAgent, paper_venue
from agents.execution.settings import ExecutionSettings
from core.clock import SimulatedClock
from core.domain import OrderStatus
from core.messages import Candle, Envelope, Fill, OrderUpdate, Payload
from core.routing import FILLS, ORDER_UPDATES
from core.trading.stores import InMemoryExecutionStore
from infrastructure.messaging.memory import InMemoryBus
from tests.factories import eventually
from tests.orderpath.helpers import candles, context, order_request
from tests.orderpath.probe import Probe

C = candles(12)


class Desk:
    def __init__(self, bus: InMemoryBus, clock: SimulatedClock, agent: ExecutionAgent, probe: Probe) -> None:
        self.bus, self.clock, self.agent, self.probe = bus, clock, agent, probe

    async def send(self, payload: Payload) -> None:
        await self.bus.publish(Envelope.wrap(payload, source="test", clock=self.clock))

    async def candle(self, c: Candle) -> None:
        self.clock.advance_to(c.close_time)
        await self.send(c)
        await self.bus.wait_idle()

    def updates(self, coid: str) -> list[OrderUpdate]:
        return [u for u in self.probe.of(OrderUpdate) if u.client_order_id == coid]


@pytest.fixture
async def desk() -> AsyncIterator[Desk]:
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(C[0].open_time)
    es = ExecutionSettings(store="memory", snapshot_interval_s=3600)
    agent = ExecutionAgent(context(bus, clock, "execution-1"), paper_venue(es, clock), InMemoryExecutionStore(), es)
    probe = await Probe().attach(bus, [FILLS.all(), ORDER_UPDATES.all()])
    await agent.start()
    d = Desk(bus, clock, agent, probe)
    for c in C[:5]:
        await d.candle(c)
    yield d
    await agent.stop()
    await bus.close()


def gap_after(c: Candle, hours: int) -> Candle:
    """The candle after ``c``, ``hours`` hours later than it should be (a gap in the data)."""
    t = c.close_time + timedelta(hours=hours)
    nxt = C[C.index(c) + 1]
    return nxt.model_copy(update={"open_time": t, "close_time": t + timedelta(hours=1)})


async def test_an_order_whose_next_candle_opens_after_its_expiry_never_fills(desk: Desk) -> None:
    req = order_request(1, D("0.1"), expires_at=C[4].close_time + timedelta(minutes=30))
    await desk.send(req)
    await eventually(lambda: any(u.status is OrderStatus.ACCEPTED for u in desk.updates(req.client_order_id)))
    await desk.candle(gap_after(C[4], 5))  # the next candle opens 5 h later: the intent is long stale
    await eventually(lambda: desk.updates(req.client_order_id)[-1].status.is_terminal)
    last = desk.updates(req.client_order_id)[-1]
    assert last.status is OrderStatus.EXPIRED
    assert "intent_expired" in last.reason
    assert not desk.probe.of(Fill)
    assert desk.agent.engine.portfolio.position("binance", "BTC/USDT").quantity == 0


async def test_an_order_still_valid_at_the_next_open_fills(desk: Desk) -> None:
    req = order_request(2, D("0.1"), expires_at=C[4].close_time + timedelta(minutes=30))
    await desk.send(req)
    await eventually(lambda: any(u.status is OrderStatus.ACCEPTED for u in desk.updates(req.client_order_id)))
    await desk.candle(C[5])  # opens at the decision candle's close: before the expiry
    await eventually(lambda: bool(desk.probe.of(Fill)))
    assert desk.updates(req.client_order_id)[-1].status is OrderStatus.FILLED


async def test_a_live_order_is_cancelled_when_its_intent_expires_not_at_the_next_candle() -> None:
    """Live (real ccxt against the fake venue): a resting order is cancelled by the expiry check the
    agent runs every second, without waiting for a candle; it can no longer fill."""
    from core.domain import OrderType
    from tests.fakevenue import FakeBinance
    from tests.fakevenue.orders import OrderDesk
    from tests.orderpath.test_live_ccxt import request, setup

    desk = OrderDesk()
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, _store, engine = await setup(venue)
        try:
            resting = request(9, D("0.01")).model_copy(
                update={"order_type": OrderType.LIMIT, "limit_price": D("50000.00")}
            )
            await engine.handle_order(resting)
            assert await engine.expire() == []  # still valid
            assert isinstance(engine.clock, SimulatedClock)
            engine.clock.advance_to(resting.expires_at)
            events = await engine.expire()
            assert [u.status for u in events if isinstance(u, OrderUpdate)] == [OrderStatus.CANCELED]
            assert desk.orders[resting.client_order_id].status == "CANCELED"
        finally:
            await gateway.close()
