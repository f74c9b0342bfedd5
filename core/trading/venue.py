"""The venue port: what execution needs from a place that fills orders (paper or live).

Venue answers are :class:`VenueOrder` values: the whole current state of one order as the venue
sees it, with every fill so far. Execution reconciles its own records against them, so an answer
seen twice (a retry, a replayed candle, a restart) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from core.domain import OrderStatus
from core.errors import PermanentError, TemporaryError
from core.messages.market import BookTop, Candle
from core.messages.orders import OrderRequest
from core.trading.market_rules import MarketRules


class VenueTimeout(TemporaryError):
    """A request got no answer in time: the venue may or may not have acted on it."""


class VenueUnavailable(TemporaryError):
    """The venue could not be reached (network, maintenance, rate limit)."""


class DuplicateClientOrderId(PermanentError):
    """The venue already has an order with this client order id."""


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One execution as the venue reported it."""

    fill_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's view of one order.

    ``request`` is set for orders the venue created itself (protective stop/take-profit exits),
    which execution has no record of yet. A venue that reports only aggregates leaves ``fills``
    empty; execution then derives one fill per increase of ``filled_quantity``.
    """

    client_order_id: str
    venue_order_id: str | None
    symbol: str
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    fills: tuple[VenueFill, ...] = ()
    reason: str = ""
    request: OrderRequest | None = None
    fee: Decimal | None = None
    """Cumulative fee in the quote currency, for venues that report no per-trade ``fills`` (then
    ``fills`` is empty)."""
    fee_currency: str = ""
    """The currency the venue charged the fee in (``""``: the quote currency)."""


@runtime_checkable
class VenuePort(Protocol):
    """Places, looks up and cancels orders; reports what happened to them."""

    name: str

    async def submit(self, order: OrderRequest) -> VenueOrder:
        """Send a new order. Raises :class:`VenueTimeout` when the outcome is unknown."""
        ...

    async def lookup(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's state of an order by client order id, ``None`` if it never arrived."""
        ...

    async def market_rules(self, symbol: str) -> MarketRules:
        """The market's lot step, tick size and minimums (:mod:`core.trading.market_rules`)."""
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """Cancel an open order; returns its state afterwards (``None`` if unknown)."""
        ...

    async def on_candle(self, candle: Candle) -> Sequence[VenueOrder]:
        """Market data for simulated venues: orders changed by it (live venues return nothing)."""
        ...

    async def on_book(self, book: BookTop) -> None:
        """Top of book for simulated venues (spread-aware slippage)."""
        ...

    async def poll(self) -> Sequence[VenueOrder]:
        """Order changes the venue reported since the last call (live: ``watch_orders``)."""
        ...

    async def own_orders(self) -> Sequence[VenueOrder]:
        """The orders the venue created on its own (protective exits it fired) and still holds.
        Execution records at start any it does not know: a process killed between the venue's
        saving such an order and execution's storing it must not lose the order or its fills.
        Venues that create no orders themselves return nothing."""
        ...

    async def halt(self) -> Sequence[VenueOrder]:
        """Kill switch at the venue: cancel every open order that could still trade, including the
        ones the venue holds itself (protective stop-loss / take-profit exits), and suspend any
        order the venue would create on its own until :meth:`resume`. Returns the orders it
        changed. Idempotent: calling it again cancels what is still open."""
        ...

    async def resume(self) -> Sequence[VenueOrder]:
        """Lift :meth:`halt`: re-arm the protective exits of positions still open. Returns the orders
        it changed (none for venues that create no orders themselves)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class PrunableVenue(Protocol):
    """A venue that keeps a book of its own and bounds it (the paper venue's retention)."""

    async def prune(self) -> int:
        """Forget the terminal orders past retention (never an open one); return how many. Execution
        calls it at the end of its start, once every order is reconciled, so a restarted process
        finds every order the venue saved before any is forgotten."""
        ...
