"""The live venue adapter + execution engine over a scripted exchange gateway.

The real ccxt order path (gateway order methods + fake venue order endpoints) is not built yet;
this checks the adapter's contract with the engine: timeouts after acceptance are looked up, not
re-sent; aggregate partial fills become fills once each, also across a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from agents.execution.engine import ExecutionEngine
from core.clock import SimulatedClock
from core.domain import OrderStatus, OrderType, Side, TimeInForce
from core.errors import TemporaryError
from core.gateway import MarketInfo
from core.gateway import VenueOrder as GatewayOrder
from core.ids import client_order_id, content_id
from core.messages import BookTop, Fill, OrderRequest
from core.trading.stores import InMemoryExecutionStore
from infrastructure.venues.live import LiveVenue

T0 = datetime(2024, 9, 16, 12, tzinfo=UTC)


class ScriptedGateway:
    """An exchange that accepts orders, fills them when told, and can time out after accepting."""

    venue = "binance"

    def __init__(self) -> None:
        self.orders: dict[str, GatewayOrder] = {}
        self.creates = 0
        self.timeout_after_accept = 0

    async def validate_symbol(self, symbol: str) -> MarketInfo:
        base, quote = symbol.split("/")
        return MarketInfo(symbol, symbol.replace("/", ""), base, quote)

    async def create_order(
        self,
        symbol: str,
        side: Side,
        order_type: OrderType,
        amount: D,
        client_order_id: str,
        price: D | None = None,
        stop_price: D | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
    ) -> GatewayOrder:
        self.creates += 1
        order = GatewayOrder(
            venue="binance",
            symbol=symbol,
            order_id=f"X{self.creates}",
            client_order_id=client_order_id,
            side=side,
            order_type=order_type,
            status=OrderStatus.ACCEPTED,
            amount=amount,
            filled=D(0),
        )
        self.orders[client_order_id] = order
        if self.timeout_after_accept:
            self.timeout_after_accept -= 1
            raise TemporaryError("request timed out")
        return order

    def fill(self, coid: str, filled: D, average: D, fee: D, fee_currency: str | None = None) -> None:
        o = self.orders[coid]
        status = OrderStatus.FILLED if filled == o.amount else OrderStatus.PARTIALLY_FILLED
        self.orders[coid] = GatewayOrder(
            venue=o.venue,
            symbol=o.symbol,
            order_id=o.order_id,
            client_order_id=coid,
            side=o.side,
            order_type=o.order_type,
            status=status,
            amount=o.amount,
            filled=filled,
            average=average,
            fee=fee,
            fee_currency=fee_currency,
        )

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> GatewayOrder | None:
        return self.orders.get(client_order_id)

    async def cancel_order_by_client_id(self, symbol: str, client_order_id: str) -> GatewayOrder:
        raise NotImplementedError

    async def fetch_open_orders(self, symbol: str | None = None) -> list[GatewayOrder]:
        return [o for o in self.orders.values() if o.status.is_open]

    async def watch_orders(self, symbol: str | None = None) -> AsyncIterator[GatewayOrder]:
        for order in list[GatewayOrder]():
            yield order

    async def fetch_book_top(self, symbol: str) -> BookTop | None:
        """The book the fee conversion reads: BNB/USDT at a mid of 1 (keeps the fee sums readable)."""
        if symbol != "BNB/USDT":
            return None
        return BookTop(
            venue="binance", symbol=symbol, ts=T0, bid=D("0.99"), bid_size=D(1), ask=D("1.01"), ask_size=D(1)
        )

    async def close(self) -> None:
        return None


def request() -> OrderRequest:
    intent_id = content_id("live-test", 1)
    return OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D("0.3"),
        reference_price=D(60_000),
        expires_at=T0 + timedelta(hours=1),
    )


async def test_timeout_after_accept_is_looked_up_and_partial_fills_are_counted_once():
    gw = ScriptedGateway()
    gw.timeout_after_accept = 1
    clock = SimulatedClock(T0)
    store = InMemoryExecutionStore()
    engine = ExecutionEngine(LiveVenue(gw), store, clock, initial_cash=D(100_000))  # type: ignore[arg-type]
    await engine.start()
    req = request()
    await engine.handle_order(req)
    assert gw.creates == 1
    assert store.orders[req.client_order_id].status is OrderStatus.ACCEPTED

    gw.fill(req.client_order_id, D("0.1"), D(60_010), D("6.001"))
    await engine._reconcile(store.orders[req.client_order_id])
    gw.fill(req.client_order_id, D("0.3"), D(60_020), D("18.006"), fee_currency="BNB")
    events = await engine._reconcile(store.orders[req.client_order_id])
    fills = [f for _, f in store.fill_log.values()]
    # the fee currency is filled: the quote currency when the venue names none, else the venue's
    # (the amount converted to quote at the BNB/USDT mid)
    assert [f.fee_currency for f in fills] == ["USDT", "BNB"]
    assert [f.quantity for f in fills] == [D("0.1"), D("0.2")]
    assert sum((f.price * f.quantity for f in fills), D(0)) == D(60_020) * D("0.3")
    assert sum((f.fee for f in fills), D(0)) == D("18.006")
    assert any(isinstance(e, Fill) for e in events)
    assert store.orders[req.client_order_id].status is OrderStatus.FILLED

    restarted = ExecutionEngine(LiveVenue(gw), store, clock, initial_cash=D(100_000))  # type: ignore[arg-type]
    await restarted.start()
    await restarted.handle_order(req)
    assert gw.creates == 1
    assert len(store.fill_log) == 2
    assert restarted.portfolio.position("binance", "BTC/USDT").quantity == D("0.3")
