"""Order placement through ccxt (live mode): the order methods of the gateway port.

``CcxtOrderGateway`` is the market-data :class:`CcxtGateway` plus ``create_order``,
``fetch_order_by_client_id``, ``cancel_order_by_client_id``, ``fetch_open_orders`` and
``watch_orders``, all keyed by OUR client order id (``newClientOrderId`` / ``origClientOrderId`` on
Binance; ccxt's unified ``clientOrderId`` param elsewhere). ``create_order`` is never retried here:
after a temporary failure the caller must look the order up first.

Quantities and prices go to ccxt as decimal strings (``"0.00123"``), never floats: a float such as
``0.1 + 0.2`` is not the Decimal that was conformed to the market's lot step and tick size
(:mod:`core.trading.market_rules`). The fee keeps the currency the venue charged it in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt

from core.clock import utc_from_ms
from core.domain import OrderStatus, OrderType, Side, TimeInForce
from core.gateway import VenueOrder, VenueRejected
from infrastructure.gateway.ccxt_gateway import CcxtGateway

_STATUS = {
    "open": OrderStatus.ACCEPTED,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_TYPES = {OrderType.MARKET: "market", OrderType.LIMIT: "limit", OrderType.STOP_MARKET: "stop_market"}


def _dec(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def decimal_text(value: Decimal) -> str:
    """A Decimal as the plain decimal string ccxt takes for amounts and prices (no exponent)."""
    return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")


def parse_order(venue: str, raw: Mapping[str, Any]) -> VenueOrder:
    """A ccxt unified order as the gateway port's :class:`VenueOrder`."""
    amount = _dec(raw.get("amount")) or Decimal(0)
    filled = _dec(raw.get("filled")) or Decimal(0)
    status = _STATUS.get(str(raw.get("status")), OrderStatus.ACCEPTED)
    if status is OrderStatus.ACCEPTED and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    if status is OrderStatus.FILLED and filled < amount:
        filled = amount if filled == 0 else filled
        status = OrderStatus.FILLED if filled == amount else OrderStatus.PARTIALLY_FILLED
    fee = raw.get("fee") or {}
    ts = raw.get("timestamp")
    when: datetime | None = utc_from_ms(int(ts)) if ts else None
    order_type = OrderType.LIMIT if raw.get("type") == "limit" else OrderType.MARKET
    return VenueOrder(
        venue=venue,
        symbol=str(raw.get("symbol")),
        order_id=str(raw.get("id")),
        client_order_id=raw.get("clientOrderId"),
        side=Side.SELL if raw.get("side") == "sell" else Side.BUY,
        order_type=order_type,
        status=status,
        amount=amount,
        filled=filled,
        price=_dec(raw.get("price")),
        average=_dec(raw.get("average")),
        fee=_dec(fee.get("cost")) if isinstance(fee, Mapping) else None,
        fee_currency=fee.get("currency") if isinstance(fee, Mapping) else None,
        ts=when,
        raw=dict(raw),
    )


class CcxtOrderGateway(CcxtGateway):
    """The ccxt gateway with order placement (see the module docstring)."""

    def _client_id_params(self, client_order_id: str, *, new: bool) -> dict[str, str]:
        if self.venue == "binance":
            return {"newClientOrderId" if new else "origClientOrderId": client_order_id}
        return {"clientOrderId": client_order_id}

    async def create_order(
        self,
        symbol: str,
        side: Side,
        order_type: OrderType,
        amount: Decimal,
        client_order_id: str,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
    ) -> VenueOrder:
        """Place an order tagged with our client order id (one attempt, never retried here)."""
        await self.load_markets()
        params: dict[str, Any] = self._client_id_params(client_order_id, new=True)
        if order_type is OrderType.LIMIT:
            params["timeInForce"] = time_in_force.value.upper()
        if stop_price is not None:
            params["stopPrice"] = decimal_text(stop_price)
        raw = await self.call(
            "create_order",
            symbol,
            _TYPES[order_type],
            side.value,
            decimal_text(amount),
            decimal_text(price) if price is not None else None,
            params,
            retry=False,
        )
        return parse_order(self.venue, raw)

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The venue's state of our order, ``None`` when the venue never received it."""
        await self.load_markets()
        try:
            raw = await self.call("fetch_order", None, symbol, self._client_id_params(client_order_id, new=False))
        except VenueRejected as exc:
            if isinstance(exc.__cause__, ccxt.OrderNotFound):
                return None
            raise
        return parse_order(self.venue, raw)

    async def cancel_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel our order; returns its state afterwards."""
        await self.load_markets()
        raw = await self.call("cancel_order", None, symbol, self._client_id_params(client_order_id, new=False))
        return parse_order(self.venue, raw)

    async def withdrawal_enabled(self) -> bool | None:
        """Whether the API key may withdraw funds: ``True``/``False`` as the venue reports it,
        ``None`` when this venue offers no way to tell (the caller decides what that means)."""
        if self.venue == "binance":
            restrictions = await self.call("sapi_get_account_apirestrictions")
            return bool(restrictions.get("enableWithdrawals", True))
        return None

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Open orders of the account."""
        await self.load_markets()
        raws = await self.call("fetch_open_orders", symbol)
        return [parse_order(self.venue, r) for r in raws]

    async def watch_orders(self, symbol: str | None = None) -> AsyncIterator[VenueOrder]:
        """Order updates: ccxt.pro ``watch_orders`` when available, else polling open orders."""
        if self.streams_via_websocket and hasattr(self.exchange, "watch_orders"):
            while True:
                for raw in await self.call("watch_orders", symbol):
                    yield parse_order(self.venue, raw)
        while True:
            for order in await self.fetch_open_orders(symbol):
                yield order
            await asyncio.sleep(self.poll_interval_s)
