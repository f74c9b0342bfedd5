"""Order endpoints for the fake Binance venue (mount with ``FakeBinance(extra_routes=[desk.routes])``).

Binance spot ``/api/v3/order`` (POST new, GET query, DELETE cancel) and ``/api/v3/openOrders``, keyed
by ``newClientOrderId`` / ``origClientOrderId`` as ccxt sends them. Signatures are not checked.
What the next new order does is scripted with :attr:`OrderDesk.next_action`:

* ``accept``: NEW, fills later with :meth:`OrderDesk.fill` (partial or full);
* ``fill``: FILLED at once at :attr:`OrderDesk.fill_price`;
* ``reject``: HTTP 400 ``-2010 Account has insufficient balance`` (nothing stored);
* ``timeout``: the order is accepted (stored), then the answer is delayed by :attr:`delay_s`, so the
  client times out without knowing.

A second order with a used client order id gets ``-2010 Duplicate order sent.``; an unknown one
``-2013 Order does not exist.`` (query) or ``-2011 Unknown order sent.`` (cancel).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web


@dataclass
class FakeOrder:
    """One order on the fake book."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    orig_qty: Decimal
    price: Decimal
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    time_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": str(self.price),
            "origQty": str(self.orig_qty),
            "executedQty": str(self.executed),
            "cummulativeQuoteQty": str(self.quote),
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": self.time_ms,
            "updateTime": self.time_ms,
            "isWorking": True,
            "origQuoteOrderQty": "0.00000000",
            "transactTime": self.time_ms,
        }


def _error(code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=400)


@dataclass
class OrderDesk:
    """The fake venue's order book and its script (see the module docstring)."""

    next_action: str = "accept"
    fill_price: Decimal = Decimal("60000")
    commission: Decimal = Decimal(0)
    """The fee an order filled at once reports, in :attr:`commission_asset`."""
    commission_asset: str = "BNB"
    delay_s: float = 3.0
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    new_requests: int = 0
    sent: list[dict[str, str]] = field(default_factory=list)
    """The parameters of every new order stored, as sent (strings)."""
    withdrawals_enabled: bool = False

    def fill(self, client_order_id: str, quantity: Decimal, price: Decimal) -> None:
        """Execute ``quantity`` more of an order at ``price`` (PARTIALLY_FILLED or FILLED)."""
        o = self.orders[client_order_id]
        o.executed += quantity
        o.quote += quantity * price
        o.status = "FILLED" if o.executed >= o.orig_qty else "PARTIALLY_FILLED"

    def routes(self, routes: web.RouteTableDef, venue: object) -> None:
        """Add the order endpoints (the ``extra_routes`` hook of :class:`FakeBinance`)."""

        async def params(request: web.Request) -> dict[str, str]:
            out = dict(request.query)
            if request.can_read_body:
                out.update({k: str(v) for k, v in (await request.post()).items()})
            return out

        @routes.get("/sapi/v1/account/apiRestrictions")
        async def api_restrictions(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "ipRestrict": False,
                    "createTime": 1_700_000_000_000,
                    "enableReading": True,
                    "enableSpotAndMarginTrading": True,
                    "enableWithdrawals": self.withdrawals_enabled,
                    "enableInternalTransfer": False,
                    "enableMargin": False,
                    "enableFutures": False,
                    "permitsUniversalTransfer": False,
                }
            )

        @routes.post("/api/v3/order")
        async def new_order(request: web.Request) -> web.Response:
            p = await params(request)
            self.new_requests += 1
            coid = p.get("newClientOrderId", f"auto{self.new_requests}")
            if coid in self.orders:
                return _error(-2010, "Duplicate order sent.")
            action, self.next_action = self.next_action, "accept"
            if action == "reject":
                return _error(-2010, "Account has insufficient balance for requested action.")
            order = FakeOrder(
                len(self.orders) + 1,
                coid,
                p["symbol"],
                p["side"],
                p["type"],
                Decimal(p["quantity"]),
                Decimal(p.get("price", "0")),
            )
            self.sent.append(p)
            self.orders[coid] = order
            if action == "fill":
                self.fill(coid, order.orig_qty, self.fill_price)
            if action == "timeout":
                await asyncio.sleep(self.delay_s)
            body = order.json()
            body["fills"] = (
                [
                    {
                        "price": str(self.fill_price),
                        "qty": str(order.executed),
                        "commission": str(self.commission),
                        "commissionAsset": self.commission_asset,
                    }
                ]
                if order.executed
                else []
            )
            return web.json_response(body)

        @routes.get("/api/v3/order")
        async def query_order(request: web.Request) -> web.Response:
            p = await params(request)
            order = self.orders.get(p.get("origClientOrderId", ""))
            if order is None:
                return _error(-2013, "Order does not exist.")
            return web.json_response(order.json())

        @routes.delete("/api/v3/order")
        async def cancel_order(request: web.Request) -> web.Response:
            p = await params(request)
            order = self.orders.get(p.get("origClientOrderId", ""))
            if order is None or order.status in ("FILLED", "CANCELED"):
                return _error(-2011, "Unknown order sent.")
            order.status = "CANCELED"
            return web.json_response(order.json())

        @routes.get("/api/v3/openOrders")
        async def open_orders(request: web.Request) -> web.Response:
            return web.json_response(
                [o.json() for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]
            )
