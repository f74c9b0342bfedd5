"""The live venue: :class:`~core.trading.venue.VenuePort` over the exchange gateway port
(:class:`core.gateway.ExchangeGateway`, implemented with ccxt in ``infrastructure.gateway``).

Only built when ``TRADESWARM_MODE=live`` (which core settings accept only with API keys and
``TRADESWARM_LIVE_TRADING_CONFIRMED=true``) and ``TRADESWARM_EXECUTION_VENUE=live``. The gateway
reports orders in aggregate (filled amount and average price), so this adapter returns no per-trade
fills: the execution engine turns each increase of the filled amount into one fill whose id is
derived from the cumulative amount, which makes a re-reported state idempotent.

HALT (:meth:`LiveVenue.halt`) cancels every open order of the configured symbols at the exchange —
whoever placed it, protective stop / take-profit orders included — and checks that none is left.
This adapter places no protective orders of its own, so :meth:`LiveVenue.resume` has nothing to
re-arm.

Market rules (lot step, tick size, minimum quantity and notional) come from the venue's markets
(:meth:`LiveVenue.market_rules`); execution conforms every order to them before sending it. A fee
the venue charged in another currency than the market's quote (the base, or a discount token such as
BNB) keeps its currency on the fill and is converted to quote: a base-currency fee at the fill's
average price, any other at the mid of ``<fee currency>/<quote>`` (not convertible: counted as 0 with
an error in the log, the currency still on the fill).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import structlog

from core.domain import OrderStatus
from core.errors import ConfigurationError, PermanentError, TemporaryError
from core.gateway import ExchangeGateway
from core.gateway import VenueOrder as GatewayOrder
from core.messages.market import BookTop, Candle
from core.messages.orders import OrderRequest
from core.settings import Settings
from core.trading.market_rules import MarketRules
from core.trading.venue import DuplicateClientOrderId, VenueOrder, VenueTimeout

log = structlog.get_logger("venue.live")


def to_venue_order(order: GatewayOrder, client_order_id: str, fee: Decimal | None = None) -> VenueOrder:
    """The gateway's unified order as the execution engine's :class:`VenueOrder` (``fee``: the fee in
    quote when the venue charged another currency; the currency is kept)."""
    return VenueOrder(
        client_order_id=order.client_order_id or client_order_id,
        venue_order_id=order.order_id,
        symbol=order.symbol,
        status=order.status,
        quantity=order.amount,
        filled_quantity=order.filled,
        average_price=order.average if order.filled > Decimal(0) else None,
        fills=(),
        fee=fee if fee is not None else order.fee,
        fee_currency=order.fee_currency or "",
    )


class LiveVenue:
    """A real exchange through the gateway port (see the module docstring)."""

    def __init__(
        self, gateway: ExchangeGateway, *, submit_timeout_s: float = 10.0, symbols: Sequence[str] = ()
    ) -> None:
        self.gateway = gateway
        self.name = gateway.venue
        self.submit_timeout_s = submit_timeout_s
        self.symbols = tuple(symbols)
        """The symbols traded: HALT cancels every open order of these and of every symbol this
        adapter placed, looked up or cancelled an order on (all symbols when there is none)."""
        self._seen: set[str] = set()
        self._updates: asyncio.Queue[VenueOrder] = asyncio.Queue()
        self._watcher: asyncio.Task[None] | None = None

    async def submit(self, order: OrderRequest) -> VenueOrder:
        """``create_order`` with our client order id; a timeout or temporary failure -> VenueTimeout."""
        self._seen.add(order.symbol)
        try:
            placed = await asyncio.wait_for(
                self.gateway.create_order(
                    order.symbol,
                    order.side,
                    order.order_type,
                    order.quantity,
                    order.client_order_id,
                    price=order.limit_price,
                    stop_price=order.stop_price,
                    time_in_force=order.time_in_force,
                ),
                timeout=self.submit_timeout_s,
            )
        except (TimeoutError, TemporaryError) as exc:
            raise VenueTimeout(f"create_order {order.client_order_id}: {exc}") from exc
        except PermanentError as exc:
            if "duplicate" in str(exc).lower():
                raise DuplicateClientOrderId(order.client_order_id) from exc
            return VenueOrder(
                client_order_id=order.client_order_id,
                venue_order_id=None,
                symbol=order.symbol,
                status=OrderStatus.REJECTED,
                quantity=order.quantity,
                filled_quantity=Decimal(0),
                average_price=None,
                reason=str(exc)[:500],
            )
        return await self._venue_order(placed, order.client_order_id)

    async def market_rules(self, symbol: str) -> MarketRules:
        """The market's lot step, tick size and minimums as the venue lists them."""
        info = await self.gateway.validate_symbol(symbol)
        return MarketRules(
            amount_step=info.amount_increment,
            price_step=info.price_increment,
            min_quantity=info.min_amount,
            min_notional=info.min_notional,
        )

    async def _venue_order(self, order: GatewayOrder, client_order_id: str) -> VenueOrder:
        """:func:`to_venue_order` with the fee converted to the quote currency (module docstring)."""
        return to_venue_order(order, client_order_id, await self._fee_in_quote(order))

    async def _fee_in_quote(self, order: GatewayOrder) -> Decimal | None:
        fee, currency = order.fee, (order.fee_currency or "").upper()
        if fee is None or not fee or not currency:
            return fee
        base, _, rest = order.symbol.partition("/")
        quote = rest.split(":")[0]
        if currency == quote.upper():
            return fee
        if currency == base.upper():
            price = order.average or order.price
            if price is not None and price > 0:
                return fee * price
        else:
            try:
                book = await self.gateway.fetch_book_top(f"{currency}/{quote}")
            except (PermanentError, TemporaryError) as exc:
                book = None
                log.warning("fee_conversion_failed", currency=currency, quote=quote, error=str(exc))
            if book is not None:
                return fee * (book.bid + book.ask) / 2
        log.error("fee_not_convertible", client_order_id=order.client_order_id, fee=str(fee), currency=currency)
        return Decimal(0)

    async def lookup(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """``fetch_order`` by client order id."""
        self._seen.add(symbol)
        found = await self.gateway.fetch_order_by_client_id(symbol, client_order_id)
        return await self._venue_order(found, client_order_id) if found is not None else None

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """``cancel_order`` by client order id (``None`` when the venue does not know it)."""
        try:
            order = await self.gateway.cancel_order_by_client_id(symbol, client_order_id)
        except PermanentError:
            return await self.lookup(client_order_id, symbol)
        return await self._venue_order(order, client_order_id)

    async def halt(self) -> Sequence[VenueOrder]:
        """Cancel every open order of the configured symbols at the exchange (protective orders
        included), then check that none is left; raises :class:`TemporaryError` when one is, so the
        caller retries (and does not acknowledge the halt)."""
        changed: list[VenueOrder] = []
        left: list[str] = []
        symbols: tuple[str | None, ...] = tuple(dict.fromkeys([*self.symbols, *sorted(self._seen)]))
        for symbol in symbols or (None,):
            for order in await self.gateway.fetch_open_orders(symbol):
                if not order.client_order_id:
                    log.error("open_order_without_client_order_id", venue_order_id=order.order_id)
                    left.append(order.order_id)
                    continue
                cancelled = await self.cancel(order.client_order_id, order.symbol)
                if cancelled is not None:
                    changed.append(cancelled)
            still_open = [o.client_order_id or o.order_id for o in await self.gateway.fetch_open_orders(symbol)]
            left += [o for o in still_open if o not in left]
        if left:
            raise TemporaryError(f"orders still open at the venue after the halt: {sorted(left)}")
        return changed

    async def resume(self) -> Sequence[VenueOrder]:
        """Nothing to re-arm: this adapter places no protective orders itself."""
        return ()

    async def on_candle(self, candle: Candle) -> Sequence[VenueOrder]:
        """A real venue fills on its own: nothing to do."""
        return ()

    async def on_book(self, book: BookTop) -> None:
        """Nothing to do."""

    async def own_orders(self) -> Sequence[VenueOrder]:
        """None: this adapter places no order on its own (protective exits are execution's orders)."""
        return ()

    async def poll(self) -> Sequence[VenueOrder]:
        """Order updates from ``watch_orders`` (waits for the first one, then drains the queue)."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="watch-orders")
        first = await self._updates.get()
        out = [first]
        while not self._updates.empty():
            out.append(self._updates.get_nowait())
        return out

    async def _watch(self) -> None:
        async for order in self.gateway.watch_orders():
            if order.client_order_id:
                await self._updates.put(await self._venue_order(order, order.client_order_id))

    async def close(self) -> None:
        """Stop watching; close the gateway."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
        await self.gateway.close()


async def refuse_withdrawal_keys(gateway: Any, *, allow_unverified: bool = False) -> None:
    """Refuse to trade with an API key that can withdraw funds (DESIGN: security).

    ``gateway.withdrawal_enabled()`` answers ``True``/``False``, or ``None`` when the venue cannot
    tell; an unverifiable key is refused too unless ``allow_unverified`` is set explicitly.
    """
    enabled = await gateway.withdrawal_enabled()
    if enabled:
        raise ConfigurationError(
            "refusing to trade: the exchange API key has WITHDRAWAL permission; "
            "create a key with trading permission only"
        )
    if enabled is None and not allow_unverified:
        raise ConfigurationError(
            "cannot verify that the exchange API key lacks withdrawal permission on this venue; "
            "set TRADESWARM_EXECUTION_ALLOW_UNVERIFIED_KEY_PERMISSIONS=true only after checking it yourself"
        )


async def live_venue(
    settings: Settings, *, submit_timeout_s: float = 10.0, allow_unverified_key_permissions: bool = False
) -> LiveVenue:
    """The live venue for ``settings`` (the ccxt gateway with the account's keys).

    Only a confirmed live process gets keys (:meth:`Settings.require_exchange_keys`), and a key that
    can withdraw is refused before any order is placed.
    """
    from infrastructure.gateway.ccxt_orders import CcxtOrderGateway

    key, secret = settings.require_exchange_keys()
    gateway = CcxtOrderGateway(settings.exchange, exchange_config={"apiKey": key, "secret": secret})
    try:
        await refuse_withdrawal_keys(gateway, allow_unverified=allow_unverified_key_permissions)
    except BaseException:
        await gateway.close()
        raise
    return LiveVenue(gateway, submit_timeout_s=submit_timeout_s, symbols=settings.symbols)
