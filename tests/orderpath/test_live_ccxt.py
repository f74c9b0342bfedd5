"""The live order path through REAL ccxt code: execution engine -> LiveVenue -> CcxtOrderGateway ->
ccxt binance -> the local fake venue's order endpoints (tests/fakevenue/orders.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from agents.execution.engine import ExecutionEngine
from core.clock import SimulatedClock
from core.domain import OrderStatus, OrderType, Side
from core.errors import ConfigurationError
from core.ids import client_order_id, content_id
from core.messages import Fill, OrderRequest, OrderUpdate
from core.trading.stores import InMemoryExecutionStore
from infrastructure.gateway.ccxt_orders import CcxtOrderGateway
from infrastructure.venues.live import LiveVenue, refuse_withdrawal_keys
from tests.fakevenue import FakeBinance
from tests.fakevenue.orders import OrderDesk

T0 = datetime(2024, 9, 16, 12, tzinfo=UTC)


def request(n: int, qty: D = D("0.01")) -> OrderRequest:
    intent_id = content_id("ccxt-live", n)
    return OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=qty,
        reference_price=D(60_000),
        expires_at=T0 + timedelta(hours=1),
    )


async def setup(venue: FakeBinance):
    gateway = CcxtOrderGateway(
        "binance",
        clock=venue.clock,
        urls=venue.ccxt_urls(),
        use_websocket=False,
        exchange_config={
            "apiKey": "test-key",
            "secret": "test-secret",
            "timeout": 1000,
            "options": {"fetchMargins": False},
        },
        max_attempts=2,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )
    store = InMemoryExecutionStore()
    engine = ExecutionEngine(LiveVenue(gateway, submit_timeout_s=5), store, SimulatedClock(T0), initial_cash=D(100_000))
    await engine.start()
    return gateway, store, engine


def statuses(events) -> list[OrderStatus]:
    return [e.status for e in events if isinstance(e, OrderUpdate)]


async def test_accept_partial_fill_fill_and_cancel_through_ccxt():
    desk = OrderDesk()
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, store, engine = await setup(venue)
        try:
            req = request(1, D("0.03"))
            assert statuses(await engine.handle_order(req)) == [OrderStatus.PENDING_NEW, OrderStatus.ACCEPTED]
            assert desk.orders[req.client_order_id].orig_qty == D("0.03")  # ccxt sent OUR client order id
            desk.fill(req.client_order_id, D("0.01"), D(60_000))
            events = await engine._reconcile(store.orders[req.client_order_id])
            assert statuses(events) == [OrderStatus.PARTIALLY_FILLED]
            desk.fill(req.client_order_id, D("0.02"), D(60_030))
            events = await engine._reconcile(store.orders[req.client_order_id])
            fills = [f for _, f in store.fill_log.values()]
            assert [f.quantity for f in fills] == [D("0.01"), D("0.02")]
            assert fills[1].price == D(60_030)
            assert statuses(events) == [OrderStatus.FILLED]
            assert engine.portfolio.position("binance", "BTC/USDT").quantity == D("0.03")
            assert any(isinstance(e, Fill) for e in events)

            other = request(2)
            await engine.handle_order(other)
            await engine.halt()  # kill switch cancels open orders at the venue
            assert desk.orders[other.client_order_id].status == "CANCELED"
            assert store.orders[other.client_order_id].status is OrderStatus.CANCELED
        finally:
            await gateway.close()


async def test_reject_and_immediate_fill():
    desk = OrderDesk(next_action="reject")
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, store, engine = await setup(venue)
        try:
            rejected = request(3)
            assert statuses(await engine.handle_order(rejected))[-1] is OrderStatus.REJECTED
            assert "insufficient balance" in store.orders[rejected.client_order_id].reason
            desk.next_action = "fill"
            filled = request(4)
            assert statuses(await engine.handle_order(filled))[-1] is OrderStatus.FILLED
            assert engine.portfolio.position("binance", "BTC/USDT").quantity == D("0.01")
        finally:
            await gateway.close()


async def test_submission_timing_out_after_acceptance_is_looked_up_not_resent():
    desk = OrderDesk(next_action="timeout", delay_s=3.0)
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, _store, engine = await setup(venue)
        try:
            req = request(5)
            events = await engine.handle_order(req)
            assert desk.new_requests == 1  # never re-sent
            assert venue.count("/api/v3/order") >= 2  # the POST, then the lookup (GET)
            assert statuses(events)[-1] is OrderStatus.ACCEPTED
            assert await engine.handle_order(req) == []  # a redelivery changes nothing
            assert desk.new_requests == 1
        finally:
            await gateway.close()


class _NoPermissionInfo:
    """A venue adapter that cannot report key permissions (what ccxt gives for most venues)."""

    async def withdrawal_enabled(self) -> None:
        return None


async def test_a_key_that_can_withdraw_is_refused_through_real_ccxt():
    desk = OrderDesk()
    async with FakeBinance(extra_routes=[desk.routes]) as venue:
        gateway, _store, _engine = await setup(venue)
        try:
            await refuse_withdrawal_keys(gateway)  # trading-only key: accepted
            desk.withdrawals_enabled = True
            with pytest.raises(ConfigurationError, match="WITHDRAWAL"):
                await refuse_withdrawal_keys(gateway)
            assert desk.new_requests == 0  # refused before any order was placed
        finally:
            await gateway.close()


async def test_an_unverifiable_key_is_refused_unless_explicitly_allowed():
    with pytest.raises(ConfigurationError, match="cannot verify"):
        await refuse_withdrawal_keys(_NoPermissionInfo())
    await refuse_withdrawal_keys(_NoPermissionInfo(), allow_unverified=True)
