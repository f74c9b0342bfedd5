"""Venue rules are enforced before an order reaches the venue: the lot step and tick size from the
venue's markets (quantity rounded down, prices toward safety, in Decimal), orders below the minimum
quantity or notional refused with a reason; the fee keeps the currency the venue charged it in and is
converted to quote. Live: execution engine -> LiveVenue -> real ccxt -> the local fake Binance (its
real exchangeInfo: BTC/USDT lot step 0.00001, tick 0.01, minimum notional 10). Paper: the same rules
from the execution settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal as D

from agents.execution.agent import paper_venue
from agents.execution.engine import ExecutionEngine
from agents.execution.settings import ExecutionSettings
from core.clock import SimulatedClock
from core.domain import OrderStatus, OrderType, Severity, Side
from core.messages import Fill, OrderUpdate, RiskAlert
from core.trading.stores import InMemoryExecutionStore
from tests.fakevenue import FakeBinance
from tests.fakevenue.orders import OrderDesk
from tests.orderpath.helpers import candles
from tests.orderpath.helpers import order_request as paper_order
from tests.orderpath.test_live_ccxt import request, setup

C = candles(12)


def last_status(events: Sequence[object]) -> OrderUpdate:
    return [e for e in events if isinstance(e, OrderUpdate)][-1]


async def test_quantity_and_limit_price_are_put_on_the_venue_grid_toward_safety() -> None:
    desk = OrderDesk()
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, _store, engine = await setup(venue)
        try:
            buy = request(1, D("0.0123456")).model_copy(
                update={"order_type": OrderType.LIMIT, "limit_price": D("60000.009")}
            )
            assert last_status(await engine.handle_order(buy)).status is OrderStatus.ACCEPTED
            sell = request(2, D("0.0123456")).model_copy(
                update={"order_type": OrderType.LIMIT, "limit_price": D("60000.001"), "side": Side.SELL}
            )
            assert last_status(await engine.handle_order(sell)).status is OrderStatus.ACCEPTED
            sent_buy, sent_sell = desk.sent
            assert sent_buy["quantity"] == sent_sell["quantity"] == "0.01234"  # down to the lot step
            assert D(sent_buy["price"]) == D("60000.00")  # a buy never pays more than decided
            assert D(sent_sell["price"]) == D("60000.01")  # a sell never receives less
        finally:
            await gateway.close()


async def test_an_order_below_the_minimum_notional_is_refused_before_the_venue() -> None:
    desk = OrderDesk()
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, _store, engine = await setup(venue)
        try:
            tiny = request(3, D("0.0001"))  # 6 USDT at 60,000: under the minimum of 10
            update = last_status(await engine.handle_order(tiny))
            assert update.status is OrderStatus.REJECTED
            assert update.reason.startswith("below_min_notional")
            dust = request(4, D("0.000004"))  # rounds to nothing on the 0.00001 lot step
            update = last_status(await engine.handle_order(dust))
            assert update.status is OrderStatus.REJECTED
            assert update.reason.startswith("below_min_quantity")
            assert desk.new_requests == 0
        finally:
            await gateway.close()


async def test_a_fee_charged_in_base_keeps_its_currency_and_is_converted_to_quote() -> None:
    desk = OrderDesk(next_action="fill", commission=D("0.00001"), commission_asset="BTC")
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, _store, engine = await setup(venue)
        try:
            events = await engine.handle_order(request(5, D("0.01")))
            [fill] = [e for e in events if isinstance(e, Fill)]
            assert fill.fee_currency == "BTC"
            assert fill.fee == D("0.00001") * D(60_000)  # 0.6 USDT, not 0.00001
            assert engine.portfolio.position("binance", "BTC/USDT").fees == fill.fee
        finally:
            await gateway.close()


async def test_paper_rules_from_the_settings_refuse_and_round_like_a_venue() -> None:
    clock = SimulatedClock(C[4].close_time)
    es = ExecutionSettings(
        store="memory", paper_amount_step=D("0.001"), paper_price_step=D("0.1"), paper_min_notional=D(10)
    )
    engine = ExecutionEngine(paper_venue(es, clock), InMemoryExecutionStore(), clock, initial_cash=D(100_000))
    await engine.start()
    refused = last_status(await engine.handle_order(paper_order(1, D("0.0001"))))
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason.startswith("below_min_quantity")
    dust_exit = paper_order(3, D("0.0001"), Side.SELL, reduce_only=True)
    engine.portfolio.apply_fill("dust-0", "binance", "BTC/USDT", Side.BUY, D("0.0001"), C[4].close, D(0))  # dust held
    events = await engine.handle_order(dust_exit)
    [alert] = [e for e in events if isinstance(e, RiskAlert)]  # a refused exit is an alert, not a log line
    assert (alert.severity, alert.code) == (Severity.CRITICAL, "exit_refused")
    await engine.handle_order(paper_order(2, D("0.0567"), expires_at=C[4].close_time + timedelta(hours=2)))
    clock.advance_to(C[5].close_time)
    fills = [e for e in await engine.on_candle(C[5]) if isinstance(e, Fill)]
    assert sum(f.quantity for f in fills) == D("0.056")
