"""The ccxt / ccxt.pro implementation of :class:`core.gateway.ExchangeGateway` (market data).

* Any ccxt exchange id works; ccxt.pro is used when it has the venue, with REST polling as the
  fallback for what the venue cannot stream.
* Every REST call goes through the venue's process-wide :class:`VenueRateLimiter`, is mapped to our
  error taxonomy (:mod:`.errors`) and, when temporary, retried with exponential backoff and jitter
  (tenacity), honouring ``Retry-After`` on 429 (the whole venue pauses).
* :meth:`CcxtGateway.stream_candles` publishes only CLOSED candles: ccxt.pro's ``watch_ohlcv``
  repeats the forming candle, and :class:`core.candles.CandleCloser` holds it back until a later
  candle starts or its close time passed on the injected clock.

Order methods (live mode) are declared by the port and implemented by the execution side: subclass
:class:`CcxtGateway` (or fill in the methods below) and use :meth:`CcxtGateway.call` with
``retry=False`` for non-idempotent calls such as ``create_order``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from core.candles import CandleCloser, OhlcvValue, candle_from_ohlcv, timeframe_ms, to_decimal
from core.clock import Clock, WallClock, ms_from_utc, utc_from_ms
from core.domain import OrderType, Side, TimeInForce
from core.errors import TemporaryError
from core.gateway import (
    MarketInfo,
    RateLimited,
    UnknownSymbol,
    UnsupportedTimeframe,
    VenueOrder,
    VenueRejected,
)
from core.messages.market import BookTop, Candle, Trade
from infrastructure.gateway.errors import map_ccxt_error
from infrastructure.gateway.ratelimit import VenueRateLimiter, shared_limiter
from infrastructure.observability.metrics import GATEWAY_ERRORS, GATEWAY_REQUESTS

T = TypeVar("T")

DEFAULT_PAGE_LIMIT = {"binance": 1000, "kraken": 720, "coinbase": 300, "bybit": 1000, "okx": 300}


class _Reconnected:
    """Marker: the stream failed and is being resubscribed."""


RECONNECTED = _Reconnected()
_log = structlog.get_logger(__name__)


class CcxtGateway:
    """Market data from one ccxt venue. See the module docstring.

    ``exchange_config`` is passed to the ccxt constructor (keys, options); ``urls`` overrides
    entries of ``exchange.urls['api']`` (tests point it at the fake venue). ``clock`` decides when
    a forming candle has closed. ``rate_per_s`` defaults to the venue's ccxt ``rateLimit``.
    """

    def __init__(
        self,
        venue: str = "binance",
        *,
        clock: Clock | None = None,
        exchange_config: Mapping[str, Any] | None = None,
        urls: Mapping[str, Any] | None = None,
        rate_per_s: float | None = None,
        max_attempts: int = 6,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        page_limit: int | None = None,
        poll_interval_s: float = 5.0,
        due_check_s: float = 1.0,
        close_grace_ms: int = 0,
        use_websocket: bool = True,
    ) -> None:
        self.venue = venue
        self.clock: Clock = clock or WallClock()
        config: dict[str, Any] = {"enableRateLimit": False, **(exchange_config or {})}
        if venue == "binance":
            options = dict(config.get("options", {}))
            options.setdefault("fetchMarkets", {"types": ["spot"]})
            options.setdefault("fetchCurrencies", False)
            config["options"] = options
        pro_class = getattr(ccxt_pro, venue, None)
        rest_class = getattr(ccxt_async, venue, None)
        if pro_class is None and rest_class is None:
            close = difflib.get_close_matches(venue, ccxt.exchanges, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise VenueRejected(f"ccxt knows no exchange {venue!r}{hint}")
        chosen: Any = pro_class if (pro_class is not None and use_websocket) else rest_class
        self.exchange: Any = chosen(config)
        self.streams_via_websocket = pro_class is not None and use_websocket
        if urls:
            api = dict(self.exchange.urls.get("api", {}))
            for name, value in urls.items():
                if isinstance(value, Mapping) and isinstance(api.get(name), Mapping):
                    api[name] = {**api[name], **value}
                else:
                    api[name] = value
            self.exchange.urls["api"] = api
        default_rate = 1000.0 / float(self.exchange.rateLimit or 100)
        self.limiter: VenueRateLimiter = shared_limiter(venue, rate_per_s or default_rate)
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self.page_limit = page_limit or DEFAULT_PAGE_LIMIT.get(venue, 500)
        self.poll_interval_s = poll_interval_s
        self.due_check_s = due_check_s
        self.close_grace_ms = close_grace_ms
        self._markets: dict[str, MarketInfo] | None = None

    # --- calls: rate limit, error mapping, retry ------------------------------------------------

    async def call(self, method: str, *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        """Call ``exchange.<method>(*args, **kwargs)`` through the venue's rate limiter, mapping
        errors; temporary ones are retried with backoff unless ``retry`` is false."""
        fn: Callable[..., Awaitable[Any]] = getattr(self.exchange, method)
        return await self._guarded(method, lambda: fn(*args, **kwargs), retry=retry)

    async def _guarded(
        self, method: str, make: Callable[[], Awaitable[T]], *, retry: bool = True, limited: bool = True
    ) -> T:
        async def once() -> T:
            if limited:
                await self.limiter.acquire()
            GATEWAY_REQUESTS.labels(self.venue, method).inc()
            try:
                return await make()
            except (ccxt.BaseError, TimeoutError, OSError) as exc:
                headers = getattr(self.exchange, "last_response_headers", None)
                mapped = map_ccxt_error(self.venue, exc, headers if isinstance(exc, ccxt.BaseError) else None)
                kind = (
                    "rate_limited"
                    if isinstance(mapped, RateLimited)
                    else ("temporary" if isinstance(mapped, TemporaryError) else "permanent")
                )
                GATEWAY_ERRORS.labels(self.venue, method, kind).inc()
                if isinstance(mapped, RateLimited) and mapped.retry_after:
                    self.limiter.pause(mapped.retry_after)
                raise mapped from exc

        if not retry:
            return await once()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TemporaryError),
            wait=self._wait,
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        ):
            with attempt:
                return await once()
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(multiplier=self._backoff_base_s, max=self._backoff_max_s)(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return max(exc.retry_after, min(backoff, exc.retry_after * 2))
        return float(backoff)

    # --- markets --------------------------------------------------------------------------------

    async def load_markets(self, reload: bool = False) -> Mapping[str, MarketInfo]:
        """The venue's markets by unified symbol (loaded once, unless ``reload``)."""
        if self._markets is None or reload:
            raw: dict[str, Any] = await self.call("load_markets", reload)
            mode = getattr(self.exchange, "precisionMode", ccxt.TICK_SIZE)
            self._markets = {symbol: _market_info(m, mode) for symbol, m in raw.items()}
        return self._markets

    async def validate_symbol(self, symbol: str) -> MarketInfo:
        """The market of ``symbol``, or :class:`UnknownSymbol` with the closest listed symbols."""
        markets = await self.load_markets()
        info = markets.get(symbol)
        if info is not None:
            return info
        listed = list(markets)
        guesses = difflib.get_close_matches(symbol.upper().replace("-", "/").replace("_", "/"), listed, n=3, cutoff=0.6)
        if not guesses:
            compact = symbol.upper().replace("/", "").replace("-", "").replace("_", "")
            guesses = [s for s in listed if s.replace("/", "").split(":")[0] == compact][:3]
        raise UnknownSymbol(self.venue, symbol, guesses)

    async def validate_timeframe(self, timeframe: str) -> str:
        """``timeframe`` if the venue offers it."""
        offered = dict(getattr(self.exchange, "timeframes", None) or {})
        if offered and timeframe not in offered:
            raise UnsupportedTimeframe(f"{self.venue} has no timeframe {timeframe!r}; it offers {', '.join(offered)}")
        return timeframe

    # --- history --------------------------------------------------------------------------------

    async def iter_candle_pages(
        self, symbol: str, timeframe: str, since: datetime, until: datetime | None = None
    ) -> AsyncIterator[list[Candle]]:
        """Closed candles with ``since <= open_time < until``, page by page, ascending, no repeats."""
        await self.validate_symbol(symbol)
        await self.validate_timeframe(timeframe)
        tf = timeframe_ms(timeframe)
        now_ms = ms_from_utc(self.clock.now())
        end_ms = min(ms_from_utc(until), now_ms) if until is not None else now_ms
        cursor = ms_from_utc(since)
        last_open: int | None = None
        while cursor < end_ms:
            rows: list[list[OhlcvValue]] = await self.call("fetch_ohlcv", symbol, timeframe, cursor, self.page_limit)
            page: list[Candle] = []
            for row in rows:
                open_ms = int(row[0])  # type: ignore[arg-type]
                if open_ms < cursor or (last_open is not None and open_ms <= last_open):
                    continue
                if open_ms >= end_ms or open_ms + tf > now_ms:
                    continue  # outside the range, or still forming
                page.append(candle_from_ohlcv(self.venue, symbol, timeframe, row))
                last_open = open_ms
            if not page:
                break
            yield page
            cursor = (last_open or cursor) + tf

    async def fetch_candles(
        self, symbol: str, timeframe: str, since: datetime, until: datetime | None = None
    ) -> list[Candle]:
        """Every closed candle with ``since <= open_time < until`` (paginated)."""
        out: list[Candle] = []
        async for page in self.iter_candle_pages(symbol, timeframe, since, until):
            out.extend(page)
        return out

    # --- streams --------------------------------------------------------------------------------

    async def stream_candles(self, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        """Closed candles as they close (ccxt.pro ``watch_ohlcv``, or REST polling)."""
        await self.validate_symbol(symbol)
        await self.validate_timeframe(timeframe)
        closer = CandleCloser(timeframe, grace_ms=self.close_grace_ms)
        use_ws = self.streams_via_websocket and bool(self.exchange.has.get("watchOHLCV"))

        async def fetch() -> list[list[OhlcvValue]]:
            if use_ws:
                rows: list[list[OhlcvValue]] = await self._guarded(
                    "watch_ohlcv", lambda: self.exchange.watch_ohlcv(symbol, timeframe), retry=False, limited=False
                )
                return rows
            await asyncio.sleep(self.poll_interval_s)
            polled: list[list[OhlcvValue]] = await self.call("fetch_ohlcv", symbol, timeframe, None, 3)
            return polled

        async for rows in self._pump(fetch):
            if isinstance(rows, _Reconnected):
                # updates may have been missed while away: the forming candle's values are not
                # trustworthy any more; it is dropped here and comes back through REST backfill
                closer.discard_forming()
                continue
            closed = closer.due(self.clock.now()) if rows is None else closer.update(rows)
            for row in closed:
                yield candle_from_ohlcv(self.venue, symbol, timeframe, row)

    async def _pump(self, fetch: Callable[[], Awaitable[T]]) -> AsyncIterator[T | _Reconnected | None]:
        """Run ``fetch`` in a background task, yielding its results; yield ``None`` every
        ``due_check_s`` without data (so callers can close candles by the clock). Temporary
        errors are retried forever with backoff (the watch resubscribes) and reported once as
        :data:`RECONNECTED`; permanent ones raise."""
        queue: asyncio.Queue[T | BaseException | _Reconnected] = asyncio.Queue()

        async def producer() -> None:
            failures = 0
            while True:
                try:
                    result = await fetch()
                    failures = 0
                except TemporaryError as exc:
                    if failures == 0:
                        await queue.put(RECONNECTED)
                    failures += 1
                    delay = min(self._backoff_max_s, self._backoff_base_s * 2 ** min(failures - 1, 10))
                    if isinstance(exc, RateLimited) and exc.retry_after:
                        delay = max(delay, exc.retry_after)
                    await asyncio.sleep(delay)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - permanent, or a bug: surface it to the consumer
                    await queue.put(exc)
                    return
                await queue.put(result)

        task = asyncio.create_task(producer())
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=self.due_check_s)
                except TimeoutError:
                    yield None
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        """Public trades (ccxt.pro ``watch_trades``, or REST polling), without repeats."""
        await self.validate_symbol(symbol)
        use_ws = self.streams_via_websocket and bool(self.exchange.has.get("watchTrades"))
        seen: dict[str, None] = {}
        last_ms = 0

        async def fetch() -> list[dict[str, Any]]:
            if use_ws:
                got: list[dict[str, Any]] = await self._guarded(
                    "watch_trades", lambda: self.exchange.watch_trades(symbol), retry=False, limited=False
                )
                return got
            await asyncio.sleep(self.poll_interval_s)
            polled: list[dict[str, Any]] = await self.call("fetch_trades", symbol, last_ms or None)
            return polled

        async for trades in self._pump(fetch):
            if trades is None or isinstance(trades, _Reconnected):
                continue
            for raw in trades:
                trade = self._trade(symbol, raw)
                if trade is None:
                    continue
                key = trade.trade_id or f"{trade.ts.isoformat()}:{trade.price}:{trade.amount}"
                if key in seen:
                    continue
                seen[key] = None
                if len(seen) > 10_000:
                    seen.pop(next(iter(seen)))
                last_ms = max(last_ms, ms_from_utc(trade.ts))
                yield trade

    def _trade(self, symbol: str, raw: Mapping[str, Any]) -> Trade | None:
        if raw.get("timestamp") is None or not raw.get("price") or not raw.get("amount"):
            return None
        side = raw.get("side")
        return Trade(
            venue=self.venue,
            symbol=symbol,
            ts=utc_from_ms(int(raw["timestamp"])),
            price=to_decimal(raw["price"]),
            amount=to_decimal(raw["amount"]),
            side=Side(side) if side in ("buy", "sell") else None,
            trade_id=str(raw["id"])[:64] if raw.get("id") is not None else None,
        )

    async def stream_book_top(self, symbol: str) -> AsyncIterator[BookTop]:
        """Best bid/ask: ccxt.pro ``watch_bids_asks`` (book ticker) when the venue has it, else
        ``watch_ticker``, else REST ``fetch_ticker`` polling."""
        await self.validate_symbol(symbol)
        has = self.exchange.has
        use_bids_asks = self.streams_via_websocket and bool(has.get("watchBidsAsks"))
        use_ws = self.streams_via_websocket and bool(has.get("watchTicker"))

        async def fetch() -> dict[str, Any]:
            if use_bids_asks:
                tickers: dict[str, Any] = await self._guarded(
                    "watch_bids_asks", lambda: self.exchange.watch_bids_asks([symbol]), retry=False, limited=False
                )
                return dict(tickers.get(symbol) or {})
            if use_ws:
                got: dict[str, Any] = await self._guarded(
                    "watch_ticker", lambda: self.exchange.watch_ticker(symbol), retry=False, limited=False
                )
                return got
            await asyncio.sleep(self.poll_interval_s)
            polled: dict[str, Any] = await self.call("fetch_ticker", symbol)
            return polled

        refusing = False
        async for ticker in self._pump(fetch):
            if ticker is None or isinstance(ticker, _Reconnected):
                continue
            try:
                top = self.book_top(symbol, ticker)
            except ValueError as exc:  # a ticker the BookTop model refuses (a crossed book): skip the frame
                if not refusing:  # once per run of refused frames, not per frame
                    _log.warning("invalid top of book skipped", venue=self.venue, symbol=symbol, error=str(exc)[:300])
                refusing = True
                continue
            refusing = False
            if top is not None:
                yield top

    def book_top(self, symbol: str, ticker: Mapping[str, Any]) -> BookTop | None:
        """A :class:`BookTop` from a ccxt ticker (``None`` when the venue gave no bid/ask)."""
        bid, ask = ticker.get("bid"), ticker.get("ask")
        if not bid or not ask:
            return None
        ts = ticker.get("timestamp")
        return BookTop(
            venue=self.venue,
            symbol=symbol,
            ts=utc_from_ms(int(ts)) if ts else self.clock.now(),
            bid=to_decimal(bid),
            bid_size=to_decimal(ticker.get("bidVolume") or 0),
            ask=to_decimal(ask),
            ask_size=to_decimal(ticker.get("askVolume") or 0),
            last=to_decimal(ticker["last"]) if ticker.get("last") else None,
        )

    async def fetch_book_top(self, symbol: str) -> BookTop | None:
        """One REST snapshot of the top of book."""
        await self.validate_symbol(symbol)
        return self.book_top(symbol, await self.call("fetch_ticker", symbol))

    async def reset_streams(self) -> None:
        """Close every websocket of the venue: pending watches fail and resubscribe on a fresh
        connection (used when a feed went stale: a silent connection is not trusted)."""
        clients = list(getattr(self.exchange, "clients", {}).values())
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()

    async def close(self) -> None:
        """Close the ccxt client (REST session and websockets). Idempotent."""
        with contextlib.suppress(Exception):
            await self.exchange.close()

    async def __aenter__(self) -> CcxtGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- orders (live mode): implemented by the execution side ----------------------------------

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
        """Place an order (see :class:`core.gateway.ExchangeGateway`)."""
        raise NotImplementedError("order placement is provided by the execution gateway (live mode)")

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """Look our order up (see the port)."""
        raise NotImplementedError("order lookup is provided by the execution gateway (live mode)")

    async def cancel_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel our order (see the port)."""
        raise NotImplementedError("order cancel is provided by the execution gateway (live mode)")

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Open orders (see the port)."""
        raise NotImplementedError("open orders are provided by the execution gateway (live mode)")

    def watch_orders(self, symbol: str | None = None) -> AsyncIterator[VenueOrder]:
        """Order updates (see the port)."""
        raise NotImplementedError("order updates are provided by the execution gateway (live mode)")


def _dec(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return to_decimal(value)  # type: ignore[arg-type]
    except (ArithmeticError, ValueError, TypeError):
        return None


def _increment(value: object, mode: object) -> Decimal | None:
    """A ccxt precision as a step: a tick size as is; a number of decimal places ``n`` as ``10**-n``;
    significant digits give no fixed step (``None``)."""
    number = _dec(value)
    if number is None or mode == ccxt.TICK_SIZE:
        return number
    if mode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(number))
    return None


def _market_info(market: Mapping[str, Any], mode: object = None) -> MarketInfo:
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    mode = ccxt.TICK_SIZE if mode is None else mode
    return MarketInfo(
        symbol=str(market["symbol"]),
        venue_id=str(market.get("id", "")),
        base=str(market.get("base", "")),
        quote=str(market.get("quote", "")),
        active=market.get("active") is not False,
        price_increment=_increment(precision.get("price"), mode),
        amount_increment=_increment(precision.get("amount"), mode),
        min_amount=_dec((limits.get("amount") or {}).get("min")),
        min_notional=_dec((limits.get("cost") or {}).get("min")),
    )
