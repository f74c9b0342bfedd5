"""Execution engine + paper venue: idempotency, timeouts, reconciliation, next-candle fills."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_FLOOR
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.execution.engine import ExecutionEngine
from core.clock import SimulatedClock
from core.domain import OrderStatus, OrderType, Side
from core.errors import TemporaryError
from core.ids import client_order_id, content_id
from core.messages import Fill, OrderRequest, OrderUpdate
from core.trading.fillmodel import FillModel
from core.trading.stores import InMemoryExecutionStore
from core.trading.venue import VenueOrder, VenueTimeout
from infrastructure.venues.paper import PaperVenue
from tests.orderpath.helpers import candles
from tests.orderpath.helpers import order_request as order

C = candles(60)


class CountingVenue(PaperVenue):
    """A paper venue that counts submissions and can time out after accepting."""

    def __init__(self, *a, timeout_after_accept: int = 0, **kw) -> None:
        super().__init__(*a, **kw)
        self.submits = 0
        self.timeouts_left = timeout_after_accept
        self.lookups = 0

    async def submit(self, order: OrderRequest) -> VenueOrder:
        self.submits += 1
        result = await super().submit(order)
        if self.timeouts_left:
            self.timeouts_left -= 1
            raise VenueTimeout("no answer in time (but the order was accepted)")
        return result

    async def lookup(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        self.lookups += 1
        return await super().lookup(client_order_id, symbol)


async def make(model: FillModel | None = None, **venue_kw):
    clock = SimulatedClock(C[4].close_time)
    venue = CountingVenue(clock, model or FillModel(taker_fee_bps=D(10)), **venue_kw)
    store = InMemoryExecutionStore()
    engine = ExecutionEngine(venue, store, clock, initial_cash=D(100_000))
    await engine.start()
    return clock, venue, store, engine


async def test_redelivered_order_creates_no_second_order():
    clock, venue, store, engine = await make()
    req = order()
    first = await engine.handle_order(req)
    again = await engine.handle_order(req)
    assert venue.submits == 1
    assert again == []
    assert [u.status for u in first if isinstance(u, OrderUpdate)] == [OrderStatus.PENDING_NEW, OrderStatus.ACCEPTED]
    # also after a restart of the engine on the same store and venue
    engine2 = ExecutionEngine(venue, store, clock, initial_cash=D(100_000))
    await engine2.start()
    assert await engine2.handle_order(req) == []
    assert venue.submits == 1
    assert len(store.orders) == 1


async def test_submission_timeout_after_accept_is_looked_up_not_resent():
    _clock, venue, _store, engine = await make(timeout_after_accept=1)
    events = await engine.handle_order(order())
    assert venue.submits == 1
    assert venue.lookups == 1
    assert [u.status for u in events if isinstance(u, OrderUpdate)][-1] is OrderStatus.ACCEPTED


async def test_timeout_before_the_venue_knows_retries_after_lookup():
    _clock, venue, store, engine = await make()

    async def lost(order: OrderRequest) -> VenueOrder:
        venue.submits += 1
        raise VenueTimeout("lost on the way")

    real_submit = venue.submit
    venue.submit = lost
    with pytest.raises(TemporaryError):
        await engine.handle_order(order())
    assert store.orders[order().client_order_id].status is OrderStatus.PENDING_NEW
    venue.submit = real_submit
    venue.lookups = 0
    events = await engine.handle_order(order())  # the bus redelivers: looked up first, then sent
    assert venue.lookups >= 1
    assert any(isinstance(e, OrderUpdate) and e.status is OrderStatus.ACCEPTED for e in events)


async def test_restart_reconciles_fills_the_engine_never_stored():
    clock, venue, store, engine = await make()
    await engine.handle_order(order())
    clock.advance_to(C[5].close_time)
    await venue.on_candle(C[5])  # the venue fills, but this engine "dies" before hearing of it
    engine2 = ExecutionEngine(venue, store, clock, initial_cash=D(100_000))
    events = await engine2.start()
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 1
    assert fills[0].price == C[5].open * 1
    assert store.orders[order().client_order_id].status is OrderStatus.FILLED
    assert engine2.portfolio.position("binance", "BTC/USDT").quantity == D("0.1")
    engine3 = ExecutionEngine(venue, store, clock, initial_cash=D(100_000))
    assert [e for e in await engine3.start() if isinstance(e, Fill)] == []
    assert engine3.portfolio.position("binance", "BTC/USDT").quantity == D("0.1")


async def test_partial_fills_from_volume_participation():
    clock, _venue, store, engine = await make(FillModel(participation=D("0.00002")))
    big = order(qty=D("0.1"))
    await engine.handle_order(big)
    for c in C[5:12]:
        clock.advance_to(c.close_time)
        await engine.on_candle(c)
    rec = store.orders[big.client_order_id]
    # the order expires at C[10]'s close; each fill is on the lot grid (1e-8 here): no dust
    caps = [(c.volume * D("0.00002")).quantize(D("1e-8"), rounding=ROUND_FLOOR) for c in C[5:11]]
    assert rec.filled_quantity == sum(caps) < D("0.1")
    assert all(f.quantity == f.quantity.quantize(D("1e-8")) for _, f in store.fill_log.values())
    assert rec.status is OrderStatus.CANCELED  # the unfilled rest is cancelled at expiry
    assert len(store.fill_log) >= 2
    assert engine.portfolio.position("binance", "BTC/USDT").quantity == rec.filled_quantity


async def test_protective_stop_fires_after_the_entry_candle_with_next_bar():
    """The optimistic policy (``intrabar=next_bar``); the default is tested in test_intrabar.py."""
    clock, _venue, store, engine = await make(FillModel(), intrabar="next_bar")
    req = order(stop_loss=C[4].close * D("0.999"), take_profit=C[4].close * D("1.5"))
    await engine.handle_order(req)
    events = []
    for c in C[5:40]:
        clock.advance_to(c.close_time)
        events += await engine.on_candle(c)
        if engine.portfolio.position("binance", "BTC/USDT").quantity == 0 and len(store.fill_log) == 2:
            break
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 2
    assert fills[1].side is Side.SELL
    stop = req.stop_loss
    assert stop is not None
    exit_candle = next(c for c in C[6:40] if c.open_time == fills[1].ts)
    assert fills[1].price == (exit_candle.open if exit_candle.open <= stop else stop)
    assert engine.portfolio.position("binance", "BTC/USDT").quantity == 0


async def test_kill_switch_refuses_and_cancels():
    _clock, venue, _store, engine = await make()
    await engine.handle_order(order(1))
    events = await engine.halt()
    assert any(isinstance(e, OrderUpdate) and e.status is OrderStatus.CANCELED for e in events)
    out = await engine.handle_order(order(2))
    assert [u.status for u in out if isinstance(u, OrderUpdate)][-1] is OrderStatus.REJECTED
    assert venue.submits == 1


@settings(max_examples=60, deadline=None)
@given(
    decision_index=st.integers(min_value=0, max_value=50),
    wild=st.decimals(min_value=D("0.5"), max_value=D("5"), places=3),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    limit=st.booleans(),
)
async def test_paper_fills_never_use_the_decision_candle(decision_index, wild, side, limit):
    """Whatever the decision candle looks like, the fill comes from the next candle's data."""
    decision = C[decision_index]
    nxt = C[decision_index + 1]
    # make the decision candle absurd: if its data leaked into the fill, the price would show it
    absurd = decision.model_copy(
        update={
            "open": decision.open * wild,
            "high": max(decision.high * wild, decision.open * wild, decision.close),
            "low": min(decision.low / wild, decision.open * wild, decision.close),
        }
    )
    clock = SimulatedClock(decision.open_time)
    venue = PaperVenue(clock, FillModel(taker_fee_bps=D(0), maker_fee_bps=D(0)))
    engine = ExecutionEngine(venue, InMemoryExecutionStore(), clock, initial_cash=D(10**9))
    await engine.start()
    clock.advance_to(absurd.close_time)
    await engine.on_candle(absurd)
    intent_id = content_id("hyp", decision_index, str(wild), side.value, limit)
    req = OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=side,
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        quantity=D("0.01"),
        limit_price=(nxt.high if side is Side.BUY else nxt.low) if limit else None,
        reference_price=decision.close,
        expires_at=decision.close_time + timedelta(hours=3),
    )
    events = await engine.handle_order(req)
    events += await engine.on_candle(absurd)  # a redelivered decision candle must not fill either
    assert not any(isinstance(e, Fill) for e in events)
    clock.advance_to(nxt.close_time)
    fills = [e for e in await engine.on_candle(nxt) if isinstance(e, Fill)]
    assert len(fills) == 1
    assert fills[0].ts == nxt.open_time
    assert nxt.low <= fills[0].price <= nxt.high
    if not limit:
        assert fills[0].price == nxt.open


async def test_live_paper_fills_on_the_forming_candle_never_on_a_late_decision_candle():
    """Wall-clock paper trading: the order arrives just after the decision candle closed; the
    decision candle's message arrives after the order (queues race); the fill is the open of the
    candle that was forming when the order arrived."""
    decision, forming = C[10], C[11]
    clock = SimulatedClock(decision.close_time + timedelta(milliseconds=500))
    venue = PaperVenue(clock, FillModel(taker_fee_bps=D(0)), latency=timedelta(milliseconds=100))
    engine = ExecutionEngine(venue, InMemoryExecutionStore(), clock, initial_cash=D(10**6))
    await engine.start()
    await engine.handle_order(order(42).model_copy(update={"expires_at": forming.close_time + timedelta(hours=1)}))
    assert [e for e in await engine.on_candle(decision) if isinstance(e, Fill)] == []
    clock.advance_to(forming.close_time + timedelta(milliseconds=300))
    fills = [e for e in await engine.on_candle(forming) if isinstance(e, Fill)]
    assert len(fills) == 1
    assert fills[0].price == forming.open


async def test_a_reduce_only_exit_never_opens_or_flips_a_position():
    """Across processes an exit can be decided on a stale position: execution's book decides."""
    clock, venue, store, engine = await make(FillModel())
    flat_exit = order(20, qty=D("0.1"), side=Side.SELL, reduce_only=True)
    out = await engine.handle_order(flat_exit)
    assert [u.status for u in out if isinstance(u, OrderUpdate)][-1] is OrderStatus.REJECTED
    assert store.orders[flat_exit.client_order_id].reason == "reduce_only_nothing_to_reduce"
    assert venue.submits == 0

    await engine.handle_order(order(21, qty=D("0.1")))
    clock.advance_to(C[5].close_time)
    await engine.on_candle(C[5])  # the entry fills at C[5]'s open
    assert engine.portfolio.position("binance", "BTC/USDT").quantity == D("0.1")

    too_big = order(22, qty=D("0.3"), side=Side.SELL, reduce_only=True)
    await engine.handle_order(too_big)
    assert store.orders[too_big.client_order_id].request.quantity == D("0.1")  # capped to the position
    second = order(23, qty=D("0.1"), side=Side.SELL, reduce_only=True)
    await engine.handle_order(second)  # the first exit already covers the whole position
    assert store.orders[second.client_order_id].reason == "reduce_only_nothing_to_reduce"
    clock.advance_to(C[6].close_time)
    await engine.on_candle(C[6])
    assert engine.portfolio.position("binance", "BTC/USDT").quantity == 0  # flat, never short


async def test_an_event_nobody_consumes_is_reported_once_per_type():
    """A stack without a portfolio consumer must not log a warning for every snapshot."""
    from structlog.testing import capture_logs

    from agents.execution.agent import ExecutionAgent, paper_venue
    from agents.execution.settings import ExecutionSettings
    from core.messages import Envelope
    from infrastructure.messaging.memory import InMemoryBus
    from tests.orderpath.helpers import context

    bus = InMemoryBus()
    await bus.start()
    c = candles(4)
    clock = SimulatedClock(c[0].open_time)
    es = ExecutionSettings(store="memory", snapshot_interval_s=1, settle_marks=False)
    agent = ExecutionAgent(context(bus, clock, "execution-1"), paper_venue(es, clock), InMemoryExecutionStore(), es)
    await agent.start()
    with capture_logs() as logs:
        for candle in c:
            clock.advance_to(candle.close_time)
            await bus.publish(Envelope.wrap(candle, source="test", clock=clock))
    unrouted = [e for e in logs if e["event"].startswith("no consumer bound")]
    assert [e["log_level"] for e in unrouted] == ["warning"] + ["debug"] * (len(unrouted) - 1)
    assert len(unrouted) == len(c)  # one portfolio snapshot per candle, none of them routed
    assert {e["message_type"] for e in unrouted} == {"portfolio_snapshot"}
    await agent.stop()
    await bus.close()
