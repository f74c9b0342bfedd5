"""A local fake Binance spot venue: aiohttp HTTP + WebSocket on 127.0.0.1 (a free port).

It serves recorded Binance payloads (``tests/data``) and real candles from a CSV file, so the
REAL ccxt / ccxt.pro parsing code runs in the tests. See ``tests/fakevenue/README.md``.

Time: the venue has a simulated "now" (``state.now_ms``) driven by its kline stream: the middle of
the candle being streamed, its last millisecond once its final frame is out, and two intervals past
the last candle's open once the stream is over. With a close grace of one interval in the gateway,
only the last candle is ever closed by the clock; the others close when the next candle starts.
REST klines return only candles that have opened by then (the last one possibly still forming, as on
Binance). :attr:`FakeBinance.clock` is a :class:`core.clock.Clock` reading that time, to inject into
the gateway so "closed by the clock" agrees with the venue.

Stream: once a client subscribes to ``<symbol>@kline_<tf>``, the venue plays the candles from
:attr:`stream_start` on, two frames per candle (a partial update, then the final values), one frame
every ``frame_interval_s``, up to ``stream_end`` (exclusive). Trades (``@trade``) are played from the
recorded trades payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from core.clock import utc_from_ms

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_CANDLES = DATA / "binance_BTC-USDT_1h_first3000.csv"
DEFAULT_EXCHANGE_INFO = DATA / "binance_spot_exchangeInfo_subset.json"

_TF_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


@dataclass
class Faults:
    """Faults to inject. Counters count down as they fire; set them between test steps.

    * ``http_429``: the next N matching REST requests get HTTP 429 with ``Retry-After: retry_after``;
    * ``http_5xx``: the next N matching REST requests get HTTP ``status_5xx``;
    * ``permanent``: the next N matching REST requests get HTTP 400 ``{"code": -1121, "msg": "Invalid symbol."}``;
    * ``paths``: which REST paths the three above apply to (default: klines only);
    * ``ws_drop_after_frames``: close the websocket after sending this many kline frames (once);
    * ``ws_skip_candles_on_drop``: candles the stream moves past while the client is away (a gap);
    * ``ws_duplicate``: send every kline frame twice;
    * ``ws_delay_s``: extra delay before each kline frame.
    """

    http_429: int = 0
    retry_after: str = "0.05"
    http_5xx: int = 0
    status_5xx: int = 503
    permanent: int = 0
    paths: frozenset[str] = frozenset({"/api/v3/klines"})
    ws_drop_after_frames: int | None = None
    ws_skip_candles_on_drop: int = 0
    ws_duplicate: bool = False
    ws_delay_s: float = 0.0


@dataclass
class Candles:
    """The candle rows (strings, as in the CSV) of one symbol and interval."""

    symbol: str
    interval: str
    rows: list[tuple[int, str, str, str, str, str]]

    @classmethod
    def from_csv(cls, path: Path, symbol: str = "BTCUSDT", interval: str = "1h", limit: int | None = None) -> Candles:
        """Read ``timestamp,open,high,low,close,volume`` rows."""
        rows: list[tuple[int, str, str, str, str, str]] = []
        with path.open() as handle:
            next(handle)
            for line in handle:
                if limit is not None and len(rows) >= limit:
                    break
                ts, o, h, low, c, v = line.strip().split(",")[:6]
                rows.append((int(ts), o, h, low, c, v))
        return cls(symbol=symbol, interval=interval, rows=rows)


def _kline_rest(row: tuple[int, str, str, str, str, str], tf_ms: int) -> list[Any]:
    ts, o, h, low, c, v = row
    return [ts, o, h, low, c, v, ts + tf_ms - 1, "0", 0, "0", "0", "0"]


def _kline_frame(
    symbol: str, interval: str, tf_ms: int, row: tuple[int, str, str, str, str, str], final: bool, event_ms: int
) -> dict[str, Any]:
    ts, o, h, low, c, v = row
    if not final:  # an early update of the forming candle: only the open has traded
        h, low, c, v = o, o, o, "0"
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": ts,
            "T": ts + tf_ms - 1,
            "s": symbol,
            "i": interval,
            "f": 0,
            "L": 0,
            "o": o,
            "c": c,
            "h": h,
            "l": low,
            "v": v,
            "n": 1,
            "x": final,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


@dataclass
class FakeBinanceState:
    """Mutable state of the venue (what tests read and steer)."""

    candles: Candles
    exchange_info: dict[str, Any]
    trades: list[dict[str, Any]]
    depth: dict[str, Any]
    book_ticker: dict[str, Any]
    faults: Faults = field(default_factory=Faults)
    stream_start: int = 0
    stream_end: int | None = None
    frame_interval_s: float = 0.002
    position: int = 0
    """Index of the candle the stream is at (the forming one)."""
    now_ms: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    ws_connections: int = 0
    frames_sent: int = 0
    book_frames: int = 20
    """Book ticker frames a ``@bookTicker`` subscription gets (each reads ``book_ticker`` anew)."""


class VenueClock:
    """A :class:`core.clock.Clock` that reads the fake venue's simulated time."""

    def __init__(self, state: FakeBinanceState) -> None:
        self._state = state

    def now(self) -> datetime:
        """The venue's current time."""
        return utc_from_ms(self._state.now_ms)

    def monotonic(self) -> float:
        """Venue time in seconds (never goes back)."""
        return self._state.now_ms / 1000


RouteAdder = Callable[[web.RouteTableDef, "FakeBinance"], None]


class FakeBinance:
    """The fake venue. Use as ``async with FakeBinance() as venue:``; ``venue.url`` is its base URL.

    Extend it with more endpoints (orders...) by passing ``extra_routes``: callables that add
    routes to :attr:`routes` (an ``aiohttp.web.RouteTableDef``) before the app starts, e.g.::

        def order_routes(routes: web.RouteTableDef, venue: FakeBinance) -> None:
            @routes.post("/api/v3/order")
            async def new_order(request: web.Request) -> web.Response: ...

        FakeBinance(extra_routes=[order_routes])
    """

    def __init__(
        self,
        candles: Candles | None = None,
        *,
        exchange_info_path: Path = DEFAULT_EXCHANGE_INFO,
        stream_start: int = 0,
        stream_end: int | None = None,
        frame_interval_s: float = 0.002,
        extra_routes: Iterable[RouteAdder] = (),
    ) -> None:
        candles = candles or Candles.from_csv(DEFAULT_CANDLES)
        info = json.loads(exchange_info_path.read_text())
        self.state = FakeBinanceState(
            candles=candles,
            exchange_info=info.get("response", info),
            trades=json.loads((DATA / "http_spot_market_trades.json").read_text()),
            depth=json.loads((DATA / "http_spot_market_depth.json").read_text()),
            book_ticker=json.loads((DATA / "http_spot_market_book_ticker.json").read_text()),
            stream_start=stream_start,
            stream_end=stream_end,
            frame_interval_s=frame_interval_s,
        )
        self.tf_ms = _TF_MS[candles.interval]
        self.after_end_ms = 2 * self.tf_ms + 1
        """How far past the last candle's open the venue's time is once the stream is over."""
        self.set_position(stream_start)
        self.routes = web.RouteTableDef()
        self._add_market_routes()
        for add in extra_routes:
            add(self.routes, self)
        self.app = web.Application()
        self.app.add_routes(self.routes)
        self.app.middlewares.append(self._faults_middleware)
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on 127.0.0.1 with a free port."""
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close every websocket and stop serving."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The websocket base ccxt.pro appends its stream index to."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def clock(self) -> VenueClock:
        """A clock reading the venue's simulated time."""
        return VenueClock(self.state)

    @property
    def faults(self) -> Faults:
        """The fault settings (mutable)."""
        return self.state.faults

    def ccxt_urls(self) -> dict[str, Any]:
        """The ``urls['api']`` entries to override so ccxt/ccxt.pro talk to this venue."""
        rest = f"{self.url}/api/v3"
        return {
            "public": rest,
            "private": rest,
            "v1": f"{self.url}/api/v1",
            "sapi": f"{self.url}/sapi/v1",
            "ws": {"spot": self.ws_url, "margin": self.ws_url},
        }

    def set_position(self, index: int) -> None:
        """Move the stream to candle ``index`` (forming); the venue's time follows."""
        rows = self.state.candles.rows
        self.state.position = index
        if index < len(rows):
            self.state.now_ms = rows[index][0] + self.tf_ms // 2
        else:
            self.state.now_ms = rows[-1][0] + self.after_end_ms

    def count(self, path: str) -> int:
        """How many REST requests hit ``path``."""
        return sum(1 for p, _ in self.state.requests if p == path)

    # --- REST ------------------------------------------------------------------------------------

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        state = self.state
        if request.path.startswith("/ws"):
            return await handler(request)  # type: ignore[no-any-return,unused-ignore]
        state.requests.append((request.path, dict(request.query)))
        f = state.faults
        if request.path in f.paths:
            if f.http_429 > 0:
                f.http_429 -= 1
                return web.json_response(
                    {"code": -1003, "msg": "Too many requests."}, status=429, headers={"Retry-After": f.retry_after}
                )
            if f.http_5xx > 0:
                f.http_5xx -= 1
                return web.Response(status=f.status_5xx, text="Service Unavailable")
            if f.permanent > 0:
                f.permanent -= 1
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return await handler(request)  # type: ignore[no-any-return,unused-ignore]

    def _add_market_routes(self) -> None:
        routes = self.routes
        state = self.state

        @routes.get("/api/v3/ping")
        async def ping(_: web.Request) -> web.Response:
            return web.json_response({})

        @routes.get("/api/v3/time")
        async def server_time(_: web.Request) -> web.Response:
            return web.json_response({"serverTime": state.now_ms})

        @routes.get("/api/v3/exchangeInfo")
        async def exchange_info(_: web.Request) -> web.Response:
            return web.json_response({**state.exchange_info, "serverTime": state.now_ms})

        @routes.get("/api/v3/klines")
        async def klines(request: web.Request) -> web.Response:
            q = request.query
            candles = state.candles
            if q.get("symbol") != candles.symbol or q.get("interval") != candles.interval:
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
            limit = min(int(q.get("limit", "500")), 1000)
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
            out = []
            for row in candles.rows:
                if row[0] > state.now_ms:
                    break
                if start is not None and row[0] < start:
                    continue
                if end is not None and row[0] > end:
                    break
                out.append(_kline_rest(row, self.tf_ms))
            out = out[:limit] if start is not None else out[-limit:]
            return web.json_response(out)

        @routes.get("/api/v3/depth")
        async def depth(_: web.Request) -> web.Response:
            return web.json_response(state.depth)

        @routes.get("/api/v3/trades")
        async def trades(_: web.Request) -> web.Response:
            return web.json_response(state.trades)

        @routes.get("/api/v3/ticker/bookTicker")
        async def book_ticker(_: web.Request) -> web.Response:
            return web.json_response(state.book_ticker)

        @routes.get("/api/v3/ticker/24hr")
        async def ticker_24hr(request: web.Request) -> web.Response:
            bt = state.book_ticker
            last = state.candles.rows[min(state.position, len(state.candles.rows) - 1)]
            return web.json_response(
                {
                    "symbol": bt["symbol"],
                    "priceChange": "0",
                    "priceChangePercent": "0",
                    "weightedAvgPrice": last[4],
                    "prevClosePrice": last[1],
                    "lastPrice": last[4],
                    "lastQty": "0",
                    "bidPrice": bt["bidPrice"],
                    "bidQty": bt["bidQty"],
                    "askPrice": bt["askPrice"],
                    "askQty": bt["askQty"],
                    "openPrice": last[1],
                    "highPrice": last[2],
                    "lowPrice": last[3],
                    "volume": last[5],
                    "quoteVolume": "0",
                    "openTime": state.now_ms - 86_400_000,
                    "closeTime": state.now_ms,
                    "firstId": 0,
                    "lastId": 0,
                    "count": 0,
                }
            )

        @routes.get("/ws/{stream}")
        async def websocket(request: web.Request) -> web.WebSocketResponse:
            return await self._serve_ws(request)

    # --- WebSocket -------------------------------------------------------------------------------

    async def _serve_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.state.ws_connections += 1
        players: list[asyncio.Task[None]] = []
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                body = json.loads(msg.data)
                if body.get("method") == "SUBSCRIBE":
                    await ws.send_json({"result": None, "id": body.get("id")})
                    for stream in body.get("params", []):
                        if "@kline_" in stream:
                            players.append(asyncio.create_task(self._play_klines(ws)))
                        elif stream.endswith("@trade"):
                            players.append(asyncio.create_task(self._play_trades(ws)))
                        elif stream.endswith("@ticker"):
                            players.append(asyncio.create_task(self._play_tickers(ws)))
                        elif stream.endswith("@bookTicker"):
                            players.append(asyncio.create_task(self._play_book_tickers(ws)))
                elif body.get("method") == "UNSUBSCRIBE":
                    await ws.send_json({"result": None, "id": body.get("id")})
        finally:
            for task in players:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                    await task
            self._sockets.discard(ws)
        return ws

    async def _play_klines(self, ws: web.WebSocketResponse) -> None:
        state = self.state
        candles = state.candles
        end = state.stream_end if state.stream_end is not None else len(candles.rows)
        sent_here = 0
        while state.position < end:
            row = candles.rows[state.position]
            for final in (False, True):
                f = state.faults
                if f.ws_drop_after_frames is not None and sent_here >= f.ws_drop_after_frames:
                    f.ws_drop_after_frames = None
                    skip_to = state.position + 1 + f.ws_skip_candles_on_drop
                    try:
                        await ws.close()  # first drop the client, then let time move on
                    finally:  # (closing cancels this task: move on even then)
                        self.set_position(skip_to)
                    return
                if f.ws_delay_s:
                    await asyncio.sleep(f.ws_delay_s)
                state.now_ms = row[0] + (self.tf_ms // 2 if not final else self.tf_ms - 1)
                frame = _kline_frame(candles.symbol, candles.interval, self.tf_ms, row, final, state.now_ms)
                for _ in range(2 if f.ws_duplicate else 1):
                    await ws.send_json(frame)
                    state.frames_sent += 1
                sent_here += 1
                await asyncio.sleep(state.frame_interval_s)
            self.set_position(state.position + 1)
        # the stream is over: the venue's time moves well past the last candle's close
        state.now_ms = candles.rows[end - 1][0] + self.after_end_ms

    async def _play_trades(self, ws: web.WebSocketResponse) -> None:
        symbol = self.state.candles.symbol
        for t in self.state.trades:
            frame = {
                "e": "trade",
                "E": t["time"],
                "s": symbol,
                "t": t["id"],
                "p": t["price"],
                "q": t["qty"],
                "T": t["time"],
                "m": t["isBuyerMaker"],
                "M": t.get("isBestMatch", True),
            }
            await ws.send_json(frame)
            await asyncio.sleep(self.state.frame_interval_s)

    async def _play_tickers(self, ws: web.WebSocketResponse, frames: int = 20) -> None:
        """24h ticker frames: the recorded best bid/ask, last = the current candle's close."""
        state = self.state
        bt = state.book_ticker
        for _ in range(frames):
            row = state.candles.rows[min(state.position, len(state.candles.rows) - 1)]
            frame = {
                "e": "24hrTicker", "E": state.now_ms, "s": bt["symbol"], "p": "0", "P": "0", "w": row[4],
                "x": row[1], "c": row[4], "Q": "0", "b": bt["bidPrice"], "B": bt["bidQty"], "a": bt["askPrice"],
                "A": bt["askQty"], "o": row[1], "h": row[2], "l": row[3], "v": row[5], "q": "0",
                "O": state.now_ms - 86_400_000, "C": state.now_ms, "F": 0, "L": 0, "n": 0,
            }  # fmt: skip
            await ws.send_json(frame)
            await asyncio.sleep(state.frame_interval_s)

    async def _play_book_tickers(self, ws: web.WebSocketResponse) -> None:
        """Book ticker frames (no event field, as on Binance) with the recorded best bid/ask (or
        whatever a test put in ``state.book_ticker`` meanwhile)."""
        for update_id in range(self.state.book_frames):
            bt = self.state.book_ticker
            frame = {"u": 14527958487 + update_id, "s": bt["symbol"], "b": bt["bidPrice"], "B": bt["bidQty"],
                     "a": bt["askPrice"], "A": bt["askQty"]}  # fmt: skip
            await ws.send_json(frame)
            await asyncio.sleep(self.state.frame_interval_s)
