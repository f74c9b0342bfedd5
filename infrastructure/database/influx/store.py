"""The InfluxDB tick store: one :class:`core.gateway.TickStore` port, two writers.

* :class:`InfluxV1Store` talks HTTP to InfluxDB 1.x (``/write`` + InfluxQL ``/query``) with aiohttp:
  Debian's InfluxDB 1.6.7 here, and any 1.8 (also 2.x's 1.x compatibility API).
* :class:`InfluxV2Store` uses influxdb-client's async API (write API + Flux): the production target
  (InfluxDB 2.x in docker-compose).

Both send the same line protocol (:mod:`.line_protocol`) in batches of ``batch_size`` lines, each
batch retried with exponential backoff and jitter on temporary failures (connection errors,
timeouts, HTTP 5xx/429). HTTP 4xx other than 429 is permanent (:class:`StorageRejected`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from core.clock import ms_from_utc, utc_from_ms
from core.errors import PermanentError, TemporaryError
from core.gateway import CandleKey
from core.messages.market import Candle, Trade
from infrastructure.database.influx.line_protocol import CANDLES, TRADES, candle_line, trade_line
from infrastructure.observability.metrics import TICKSTORE_POINTS, TICKSTORE_WRITE_FAILURES

FIELDS = ("open", "high", "low", "close", "volume", "sequence")


class StorageUnavailable(TemporaryError):
    """The tick store could not be reached or failed on its side (retry later)."""


class StorageRejected(PermanentError):
    """The tick store rejected the request (bad line, unknown database, no permission)."""


def _decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def candle_from_fields(key: CandleKey, open_ms: int, fields: Mapping[str, object]) -> Candle:
    """Rebuild a :class:`Candle` from a stored point."""
    from core.candles import timeframe_ms

    seq = fields.get("sequence")
    return Candle(
        venue=key.venue,
        symbol=key.symbol,
        timeframe=key.timeframe,
        open_time=utc_from_ms(open_ms),
        close_time=utc_from_ms(open_ms + timeframe_ms(key.timeframe)),
        open=_decimal(fields["open"]),
        high=_decimal(fields["high"]),
        low=_decimal(fields["low"]),
        close=_decimal(fields["close"]),
        volume=_decimal(fields["volume"]),
        sequence=int(seq) if isinstance(seq, int | float | Decimal) else 0,
    )


class _InfluxStore:
    """Batching and retry shared by both writers; subclasses send a body and run queries."""

    def __init__(self, batch_size: int = 5000, max_attempts: int = 6, max_backoff_s: float = 10.0) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size
        self._max_attempts = max_attempts
        self._max_backoff_s = max_backoff_s

    async def _send(self, body: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _retrying(self, measurement: str, call: Callable[[], Awaitable[None]]) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TemporaryError),
            wait=wait_random_exponential(multiplier=0.2, max=self._max_backoff_s),
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        ):
            with attempt:
                try:
                    await call()
                except TemporaryError:
                    TICKSTORE_WRITE_FAILURES.labels(measurement).inc()
                    raise

    async def _write_lines(self, measurement: str, lines: Iterable[str]) -> None:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= self.batch_size:
                await self._flush(measurement, batch)
                batch = []
        if batch:
            await self._flush(measurement, batch)

    async def _flush(self, measurement: str, batch: list[str]) -> None:
        body = "\n".join(batch)
        await self._retrying(measurement, lambda: self._send(body))
        TICKSTORE_POINTS.labels(measurement).inc(len(batch))

    async def write_candles(self, candles: Sequence[Candle]) -> None:
        """Store candles (idempotent: same key and open time overwrite)."""
        await self._write_lines(CANDLES, (candle_line(c) for c in candles))

    async def write_trades(self, trades: Sequence[Trade]) -> None:
        """Store trades (idempotent per trade id)."""
        await self._write_lines(TRADES, (trade_line(t) for t in trades))


def _influxql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxV1Store(_InfluxStore):
    """Tick store on InfluxDB 1.x over HTTP (``/write``, ``/query``)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        create_database: bool = True,
        batch_size: int = 5000,
        page_size: int = 10_000,
        timeout_s: float = 30.0,
        max_attempts: int = 6,
    ) -> None:
        super().__init__(batch_size=batch_size, max_attempts=max_attempts)
        self.url = url.rstrip("/")
        self.database = database
        self._auth = aiohttp.BasicAuth(username, password or "") if username else None
        self._create = create_database
        self._page_size = page_size
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session, check ``/ping`` and create the database if allowed."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auth=self._auth)
        await self._retrying("ping", self._ping)
        if self._create:
            await self.execute(f'CREATE DATABASE "{self.database}"')

    async def _ping(self) -> None:
        try:
            async with self._http().get(f"{self.url}/ping") as resp:
                if resp.status != 204:
                    raise StorageUnavailable(f"InfluxDB /ping answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"InfluxDB at {self.url} is not reachable: {exc}") from exc

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise StorageUnavailable("tick store used before start()")
        return self._session

    async def _send(self, body: str) -> None:
        params = {"db": self.database, "precision": "ns"}
        try:
            async with self._http().post(f"{self.url}/write", params=params, data=body.encode()) as resp:
                if resp.status == 204:
                    return
                text = await resp.text()
                _raise_for(resp.status, f"InfluxDB /write: {resp.status} {text[:300]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"InfluxDB /write failed: {exc}") from exc

    async def execute(self, statement: str) -> None:
        """Run an InfluxQL statement that returns no rows (``CREATE``/``DROP DATABASE``...)."""

        async def call() -> None:
            await self._post_query(statement)

        await self._retrying("query", call)

    async def _post_query(self, statement: str) -> list[dict[str, Any]]:
        params = {"q": statement, "db": self.database, "epoch": "ns"}
        try:
            async with self._http().post(f"{self.url}/query", data=params) as resp:
                text = await resp.text()
                if resp.status != 200:
                    _raise_for(resp.status, f"InfluxDB /query: {resp.status} {text[:300]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"InfluxDB /query failed: {exc}") from exc
        payload = json.loads(text, parse_float=Decimal)
        results: list[dict[str, Any]] = payload.get("results", [])
        for result in results:
            if "error" in result:
                raise StorageRejected(f"InfluxQL error: {result['error']}")
        return results

    async def query(self, statement: str) -> list[dict[str, Any]]:
        """Run a read-only InfluxQL statement (retried) and return its series."""
        out: list[dict[str, Any]] = []

        async def call() -> None:
            out.clear()
            for result in await self._post_query(statement):
                out.extend(result.get("series", []))

        await self._retrying("query", call)
        return out

    def _where(self, key: CandleKey) -> str:
        return (
            f"venue={_influxql_string(key.venue)} AND symbol={_influxql_string(key.symbol)} "
            f"AND timeframe={_influxql_string(key.timeframe)}"
        )

    async def query_candles(
        self, key: CandleKey, start: datetime, end: datetime | None = None, limit: int | None = None
    ) -> list[Candle]:
        """Candles of ``key`` with ``start <= open_time < end``, ascending (paged by time)."""
        lower_ns = ms_from_utc(start) * 1_000_000
        upper_ns = ms_from_utc(end) * 1_000_000 if end is not None else None
        candles: list[Candle] = []
        first = True
        while limit is None or len(candles) < limit:
            page = self._page_size if limit is None else min(self._page_size, limit - len(candles))
            op = ">=" if first else ">"
            cond = f"time {op} {lower_ns}" + (f" AND time < {upper_ns}" if upper_ns is not None else "")
            statement = (
                f"SELECT {','.join(FIELDS)} FROM {CANDLES} WHERE {self._where(key)} AND {cond} "  # noqa: S608 - constants + escaped literals
                f"ORDER BY time ASC LIMIT {page}"
            )
            rows = _rows(await self.query(statement))
            candles.extend(candle_from_fields(key, int(r["time"]) // 1_000_000, r) for r in rows)
            if len(rows) < page:
                break
            lower_ns = int(rows[-1]["time"])
            first = False
        return candles

    async def last_candle(self, key: CandleKey) -> Candle | None:
        """The newest stored candle of ``key``."""
        statement = f"SELECT {','.join(FIELDS)} FROM {CANDLES} WHERE {self._where(key)} ORDER BY time DESC LIMIT 1"  # noqa: S608 - constants + escaped literals
        rows = _rows(await self.query(statement))
        return candle_from_fields(key, int(rows[0]["time"]) // 1_000_000, rows[0]) if rows else None

    async def count(self, measurement: str = CANDLES) -> int:
        """Number of points of ``measurement`` (via its ``open``/``price`` field)."""
        field = "open" if measurement == CANDLES else "price"
        rows = _rows(await self.query(f"SELECT count({field}) FROM {measurement}"))  # noqa: S608 - constants + escaped literals
        return int(rows[0]["count"]) if rows else 0

    async def query_trades(self, venue: str, symbol: str, start: datetime, end: datetime) -> list[Trade]:
        """Trades of (venue, symbol) in ``[start, end)``, ascending."""
        statement = (
            f"SELECT price,amount,side,trade_id FROM {TRADES} WHERE venue={_influxql_string(venue)} "  # noqa: S608 - constants + escaped literals
            f"AND symbol={_influxql_string(symbol)} AND time >= {ms_from_utc(start) * 1_000_000} "
            f"AND time < {ms_from_utc(end) * 1_000_000} ORDER BY time ASC"
        )
        return [
            Trade(
                venue=venue,
                symbol=symbol,
                ts=utc_from_ms(int(r["time"]) // 1_000_000),
                price=_decimal(r["price"]),
                amount=_decimal(r["amount"]),
                side=r.get("side"),
                trade_id=r.get("trade_id"),
            )
            for r in _rows(await self.query(statement))
        ]

    async def drop_database(self) -> None:
        """Drop this store's database (tests, tear-down)."""
        await self.execute(f'DROP DATABASE "{self.database}"')

    async def close(self) -> None:
        """Close the HTTP session. Idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for s in series:
        columns = s["columns"]
        rows.extend(dict(zip(columns, values, strict=True)) for values in s.get("values", []))
    return rows


def _raise_for(status: int, message: str) -> None:
    if status == 429 or status >= 500:
        raise StorageUnavailable(message)
    raise StorageRejected(message)


class InfluxV2Store(_InfluxStore):
    """Tick store on InfluxDB 2.x through influxdb-client's async API (write API + Flux queries)."""

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        batch_size: int = 5000,
        timeout_s: float = 30.0,
        max_attempts: int = 6,
    ) -> None:
        super().__init__(batch_size=batch_size, max_attempts=max_attempts)
        self.url = url
        self.org = org
        self.bucket = bucket
        self._token = token
        self._timeout_ms = int(timeout_s * 1000)
        self._client: Any = None

    async def start(self) -> None:
        """Create the async client and check that the server answers."""
        if self._client is None:
            from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

            self._client = InfluxDBClientAsync(url=self.url, token=self._token, org=self.org, timeout=self._timeout_ms)

        async def ping() -> None:
            try:
                ok = await self._client.ping()
            except Exception as exc:
                raise StorageUnavailable(f"InfluxDB at {self.url} is not reachable: {exc}") from exc
            if not ok:
                raise StorageUnavailable(f"InfluxDB at {self.url} did not answer /ping")

        await self._retrying("ping", ping)

    async def _send(self, body: str) -> None:
        from influxdb_client.client.exceptions import InfluxDBError

        try:
            await self._client.write_api().write(bucket=self.bucket, org=self.org, record=body, write_precision="ns")
        except InfluxDBError as exc:
            status = getattr(getattr(exc, "response", None), "status", None) or 0
            _raise_for(int(status) if status else 503, f"InfluxDB write failed: {exc}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StorageUnavailable(f"InfluxDB write failed: {exc}") from exc

    def _flux(self, key: CandleKey, start: datetime, end: datetime | None) -> str:
        stop = f", stop: {end.astimezone(UTC).isoformat()}" if end is not None else ""
        return (
            f"from(bucket: {json.dumps(self.bucket)})\n"
            f"  |> range(start: {start.astimezone(UTC).isoformat()}{stop})\n"
            f'  |> filter(fn: (r) => r._measurement == "{CANDLES}" and r.venue == {json.dumps(key.venue)} '
            f"and r.symbol == {json.dumps(key.symbol)} and r.timeframe == {json.dumps(key.timeframe)})\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        )

    async def _query_rows(self, flux: str) -> list[tuple[int, dict[str, Any]]]:
        async def call() -> list[tuple[int, dict[str, Any]]]:
            try:
                tables = await self._client.query_api().query(flux, org=self.org)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise StorageUnavailable(f"InfluxDB query failed: {exc}") from exc
            rows: list[tuple[int, dict[str, Any]]] = []
            for table in tables:
                for record in table.records:
                    when: datetime = record.get_time()
                    rows.append((ms_from_utc(when), dict(record.values)))
            return rows

        result: list[tuple[int, dict[str, Any]]] = []

        async def run() -> None:
            result[:] = await call()

        await self._retrying("query", run)
        return result

    async def query_candles(
        self, key: CandleKey, start: datetime, end: datetime | None = None, limit: int | None = None
    ) -> list[Candle]:
        """Candles of ``key`` with ``start <= open_time < end``, ascending."""
        flux = self._flux(key, start, end) + '  |> sort(columns: ["_time"])\n'
        if limit is not None:
            flux += f"  |> limit(n: {int(limit)})\n"
        return [candle_from_fields(key, ms, row) for ms, row in await self._query_rows(flux)]

    async def last_candle(self, key: CandleKey) -> Candle | None:
        """The newest stored candle of ``key``."""
        flux = self._flux(key, datetime(1970, 1, 1, tzinfo=UTC), None)
        flux += '  |> sort(columns: ["_time"], desc: true)\n  |> limit(n: 1)\n'
        rows = await self._query_rows(flux)
        return candle_from_fields(key, rows[0][0], rows[0][1]) if rows else None

    async def close(self) -> None:
        """Close the client. Idempotent."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def tick_store_from_settings(
    api: str, url: str, *, token: str, org: str, bucket: str, batch_size: int = 5000
) -> InfluxV1Store | InfluxV2Store:
    """The tick store the settings ask for (``influx_api`` = ``v1`` or ``v2``; v1 uses ``bucket``
    as the database name)."""
    if api == "v1":
        return InfluxV1Store(url, bucket, batch_size=batch_size)
    return InfluxV2Store(url, token, org, bucket, batch_size=batch_size)
