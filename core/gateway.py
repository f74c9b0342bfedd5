"""Market-data and venue ports: the :class:`ExchangeGateway`, candle sources and the tick store.

Pure types only. The ccxt implementation lives in ``infrastructure.gateway`` (the only code that
imports ccxt), the InfluxDB tick store in ``infrastructure.database.influx``, the replay and
synthetic candle sources in ``infrastructure.feeds``.

Errors: gateway methods raise :class:`~core.errors.TemporaryError` subclasses for failures that a
retry may fix (after the adapter's own retries are exhausted) and :class:`~core.errors.PermanentError`
subclasses for the rest (bad symbol, rejected credentials, invalid order). See
:class:`VenueUnavailable`, :class:`RateLimited`, :class:`UnknownSymbol`, :class:`VenueRejected`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from core.domain import OrderStatus, OrderType, Side, TimeInForce
from core.errors import PermanentError, TemporaryError
from core.messages.market import BookTop, Candle, Trade

# --- error taxonomy of venues ------------------------------------------------------------------


class VenueUnavailable(TemporaryError):
    """The venue could not be reached or answered with a server error / timeout."""


class RateLimited(TemporaryError):
    """The venue throttled us (HTTP 429/418). ``retry_after`` is the venue's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownSymbol(PermanentError):
    """A symbol the venue does not list; ``suggestions`` holds the closest listed symbols."""

    def __init__(self, venue: str, symbol: str, suggestions: Sequence[str] = ()) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"{venue} has no market {symbol!r}{hint}")
        self.venue = venue
        self.symbol = symbol
        self.suggestions = tuple(suggestions)


class UnsupportedTimeframe(PermanentError):
    """A timeframe the venue does not offer."""


class VenueAuthError(PermanentError):
    """The venue rejected our credentials or their permissions."""


class VenueRejected(PermanentError):
    """The venue rejected the request itself (bad request, invalid order, unsupported call)."""


# --- venue data types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """What a venue says about one market: ids, precision and limits (``None`` when unknown)."""

    symbol: str
    venue_id: str
    base: str
    quote: str
    active: bool = True
    price_increment: Decimal | None = None
    amount_increment: Decimal | None = None
    min_amount: Decimal | None = None
    min_notional: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue reports it (unified). ``client_order_id`` is ours (from ``intent_id``)."""

    venue: str
    symbol: str
    order_id: str
    client_order_id: str | None
    side: Side
    order_type: OrderType
    status: OrderStatus
    amount: Decimal
    filled: Decimal
    price: Decimal | None = None
    average: Decimal | None = None
    fee: Decimal | None = None
    fee_currency: str | None = None
    ts: datetime | None = None
    raw: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)


@runtime_checkable
class ExchangeGateway(Protocol):
    """One venue behind ccxt: market data (streams and history) and, for live mode, orders.

    Every method maps the venue's failures to :class:`~core.errors.TemporaryError` (already retried
    with backoff by the adapter) or :class:`~core.errors.PermanentError` (raised at once).
    """

    venue: str
    """The venue id (a ccxt exchange id such as ``binance``)."""

    async def load_markets(self, reload: bool = False) -> Mapping[str, MarketInfo]:
        """Load (once, unless ``reload``) and return the venue's markets by unified symbol."""
        ...

    async def validate_symbol(self, symbol: str) -> MarketInfo:
        """The market of ``symbol``; raise :class:`UnknownSymbol` listing close matches if unlisted."""
        ...

    async def validate_timeframe(self, timeframe: str) -> str:
        """``timeframe`` if the venue offers it, else raise :class:`UnsupportedTimeframe`."""
        ...

    async def fetch_candles(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
    ) -> list[Candle]:
        """Every CLOSED candle with ``since <= open_time < until`` (``until`` defaults to now),
        paginating as needed, in ascending order, without duplicates."""
        ...

    def iter_candle_pages(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
    ) -> AsyncIterator[list[Candle]]:
        """Like :meth:`fetch_candles`, page by page (for progress bars and bounded memory)."""
        ...

    def stream_candles(self, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        """CLOSED candles as they close (never the forming one), with ``sequence`` 0.

        Reconnects by itself on temporary failures; after a reconnect candles may be missing or
        repeated: consumers use :class:`core.candles.CandleGuard` to restore a gap-free stream.
        """
        ...

    def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        """Public trades as they happen (reconnects by itself on temporary failures)."""
        ...

    def stream_book_top(self, symbol: str) -> AsyncIterator[BookTop]:
        """Best bid/ask updates (ticker / book ticker; reconnects by itself)."""
        ...

    async def fetch_book_top(self, symbol: str) -> BookTop | None:
        """One snapshot of the top of book (``None`` when the venue gives no bid/ask)."""
        ...

    async def reset_streams(self) -> None:
        """Drop live connections so every stream resubscribes from scratch (stale feed)."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    # --- orders (live mode; implemented by the execution side, see docs/agents/data_collection.md)

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
        """Place an order tagged with our ``client_order_id`` (never retried blindly: on a
        temporary error the caller must first :meth:`fetch_order_by_client_id`)."""
        ...

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The venue's view of our order, or ``None`` if the venue never received it."""
        ...

    async def cancel_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel our order; returns its state after the cancel."""
        ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Open orders (for reconciliation on start)."""
        ...

    def watch_orders(self, symbol: str | None = None) -> AsyncIterator[VenueOrder]:
        """Order updates of our account as they happen."""
        ...


@runtime_checkable
class MarketDataSource(Protocol):
    """What the data-collection agent reads: the live :class:`ExchangeGateway`, or an offline
    replay / synthetic source (``infrastructure.feeds``). Every :class:`ExchangeGateway` is one."""

    def stream_candles(self, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        """Closed candles in ascending ``open_time`` order."""
        ...

    async def fetch_candles(
        self, symbol: str, timeframe: str, since: datetime, until: datetime | None = None
    ) -> list[Candle]:
        """Closed candles with ``since <= open_time < until`` (backfill, warm-up)."""
        ...

    def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        """Public trades (offline sources yield none)."""
        ...

    def stream_book_top(self, symbol: str) -> AsyncIterator[BookTop]:
        """Best bid/ask updates (offline sources yield none)."""
        ...

    async def reset_streams(self) -> None:
        """Drop live connections so every stream resubscribes from scratch (stale feed)."""
        ...

    async def close(self) -> None:
        """Release resources. Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class CandleKey:
    """A candle stream's identity: (venue, symbol, timeframe)."""

    venue: str
    symbol: str
    timeframe: str


@runtime_checkable
class TickStore(Protocol):
    """Time-series storage of candles and trades (InfluxDB).

    Writes are idempotent: a candle is identified by (venue, symbol, timeframe, open_time) and a
    trade by (venue, symbol, trade id or timestamp), so writing the same data twice stores it once.
    """

    async def start(self) -> None:
        """Connect (and create the database/bucket when allowed). Idempotent."""
        ...

    async def write_candles(self, candles: Sequence[Candle]) -> None:
        """Store candles (batched; retried on temporary failures)."""
        ...

    async def write_trades(self, trades: Sequence[Trade]) -> None:
        """Store trades (batched; retried on temporary failures)."""
        ...

    async def query_candles(
        self, key: CandleKey, start: datetime, end: datetime | None = None, limit: int | None = None
    ) -> list[Candle]:
        """Candles of ``key`` with ``start <= open_time < end``, ascending (warm-up)."""
        ...

    async def last_candle(self, key: CandleKey) -> Candle | None:
        """The newest stored candle of ``key`` (to resume after a restart)."""
        ...

    async def close(self) -> None:
        """Flush pending writes and disconnect. Idempotent."""
        ...
