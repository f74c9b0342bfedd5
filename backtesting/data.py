"""History for backtests: candle series from files, InfluxDB or an exchange, merged in time order.

A :class:`SeriesSource` is one (venue, symbol, timeframe) series that can be iterated lazily (a
CSV file is streamed row by row, so memory does not grow with its length). :func:`merge` orders
several series by candle CLOSE time (the moment a candle becomes known), breaking ties by
timeframe (shorter first), venue, symbol and timeframe name: deterministic whatever order the
sources were given in.

Data specs accepted by the CLI (``--data``):

* ``PATH.csv`` / ``PATH.parquet`` in the format of ``shared/data/candles`` (venue, symbol and
  timeframe from the file name, e.g. ``binance_BTC-USDT_1h.csv``);
* ``influx:VENUE:BASE-QUOTE:TF`` (the tick store of the data collection agent);
* ``exchange:VENUE:BASE-QUOTE:TF`` (downloaded through the exchange gateway; needs network).

Candles read from files are checked once, here, with the same rules as the :class:`Candle`
model (positive finite prices, low <= open/close <= high, volume >= 0, strictly increasing
times) and then built without a second validation: a message is validated once, where it is made.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from core.candles import timeframe_ms
from core.errors import ConfigurationError
from core.gateway import CandleKey
from core.messages.market import Candle
from core.trusted import trusted_candle
from infrastructure.feeds.files import CandleFileError, iter_csv_rows, key_from_filename, read_candles_parquet

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZERO = Decimal(0)


class DataError(ConfigurationError):
    """History that cannot be used: missing file, bad row, unknown spec, mixed venues."""


def utc_ms(ms: int) -> datetime:
    """Exact UTC datetime of epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def check_ohlcv(o: Decimal, h: Decimal, low: Decimal, c: Decimal, v: Decimal) -> str | None:
    """Why these values are not a valid candle, or ``None`` (the :class:`Candle` model's rules)."""
    if not (o.is_finite() and h.is_finite() and low.is_finite() and c.is_finite() and v.is_finite()):
        return "non-finite value"
    if low <= ZERO:
        return "prices must be positive"
    if v < ZERO:
        return "negative volume"
    if h < low:
        return f"high {h} is below low {low}"
    if not (low <= o <= h and low <= c <= h):
        return "open and close must lie within [low, high]"
    return None


@dataclass(frozen=True, slots=True)
class SeriesSource:
    """One candle series and how to iterate it (lazily) within ``[start, end)`` of open time.

    ``blocks`` (optional) reads the same candles as blocks of arrays
    (:class:`backtesting.columns.SeriesBlock`) without building them: the backtest kernel builds a
    candle only where an agent must receive it.
    """

    key: CandleKey
    label: str
    factory: Callable[[], Iterable[Candle]]
    blocks: Callable[[], Iterator[Any]] | None = None

    def candles(self) -> Iterator[Candle]:
        """The candles, oldest first."""
        return iter(self.factory())


def _window(start: datetime | None, end: datetime | None) -> tuple[int | None, int | None]:
    lo = int((start - EPOCH).total_seconds() * 1000) if start is not None else None
    hi = int((end - EPOCH).total_seconds() * 1000) if end is not None else None
    return lo, hi


def csv_candles(path: Path, key: CandleKey, start: datetime | None = None, end: datetime | None = None,
                limit: int | None = None) -> Iterator[Candle]:  # fmt: skip
    """Stream a CSV candle file, checking every row (raises :class:`DataError` on a bad one)."""
    tf_ms = timeframe_ms(key.timeframe)
    lo, hi = _window(start, end)
    venue, symbol, tf = key.venue, key.symbol, key.timeframe
    previous = -1
    seq = 0
    try:
        for open_ms, o_s, h_s, l_s, c_s, v_s in iter_csv_rows(path):
            if lo is not None and open_ms < lo:
                continue
            if hi is not None and open_ms >= hi:
                break
            if open_ms <= previous:
                raise DataError(f"{path}: candle times must increase strictly (at {open_ms} after {previous})")
            previous = open_ms
            try:
                o, h, low, c, v = Decimal(o_s), Decimal(h_s), Decimal(l_s), Decimal(c_s), Decimal(v_s)
            except InvalidOperation:
                raise DataError(f"{path}: row at {open_ms} has a value that is not a number") from None
            problem = check_ohlcv(o, h, low, c, v)
            if problem is not None:
                raise DataError(f"{path}: candle at {open_ms} is invalid: {problem}")
            seq += 1
            open_time = utc_ms(open_ms)
            yield trusted_candle(venue, symbol, tf, open_time, open_time + timedelta(milliseconds=tf_ms),
                                 o, h, low, c, v, seq)  # fmt: skip
            if limit is not None and seq >= limit:
                break
    except CandleFileError as exc:
        raise DataError(str(exc)) from None


def file_source(path: str | Path, start: datetime | None = None, end: datetime | None = None,
                limit: int | None = None, *, cache: bool = False) -> SeriesSource:  # fmt: skip
    """A series from a ``.csv`` or ``.parquet`` candle file (name gives venue/symbol/timeframe).

    A CSV file is also readable as blocks of arrays (the backtest kernel's input); with ``cache`` the
    parsed blocks are kept in the process for the next run on the same file (optimisation trials).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file not found: {p}")
    try:
        key = key_from_filename(p)
    except CandleFileError as exc:
        raise DataError(str(exc)) from None
    suffix = p.suffix.lower()
    if suffix == ".csv":
        from backtesting.csv_blocks import cached_blocks, csv_blocks

        lo, hi = _window(start, end)

        def rows() -> Iterator[Candle]:
            return csv_candles(p, key, start, end, limit)

        def blocks() -> Iterator[Any]:
            try:
                reader = cached_blocks if cache else csv_blocks
                yield from reader(p, key, lo, hi, limit, rows)
            except CandleFileError as exc:
                raise DataError(str(exc)) from None

        return SeriesSource(key, str(p), rows, blocks)
    if suffix == ".parquet":
        lo, hi = _window(start, end)

        def parquet() -> list[Candle]:
            try:
                rows = read_candles_parquet(p, key)
            except (CandleFileError, ValueError) as exc:
                raise DataError(f"{p}: {exc}") from None
            out = [c for c in rows if (lo is None or _ms(c.open_time) >= lo) and (hi is None or _ms(c.open_time) < hi)]
            return out[:limit] if limit is not None else out

        return SeriesSource(key, str(p), parquet)
    raise DataError(f"{p}: unsupported data file type {suffix!r} (use .csv or .parquet)")


def list_source(key: CandleKey, candles: Sequence[Candle], label: str) -> SeriesSource:
    """A series from candles already in memory (InfluxDB query, gateway download, tests)."""
    return SeriesSource(key, label, lambda: iter(candles))


def _ms(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def parse_remote_spec(spec: str) -> tuple[str, CandleKey] | None:
    """``influx:VENUE:BASE-QUOTE:TF`` / ``exchange:...`` -> (kind, key); ``None`` for a path."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in ("influx", "exchange"):
        return None
    parts = rest.split(":")
    if len(parts) != 3 or not all(parts):
        raise DataError(f"bad data spec {spec!r}; expected {kind}:VENUE:BASE-QUOTE:TF, e.g. {kind}:binance:BTC-USDT:1h")
    venue, pair, tf = parts
    base, dash, quote = pair.partition("-")
    if not dash:
        raise DataError(f"bad symbol {pair!r} in {spec!r}; write it BASE-QUOTE, e.g. BTC-USDT")
    try:
        timeframe_ms(tf)
    except ValueError as exc:
        raise DataError(f"bad timeframe in {spec!r}: {exc}") from None
    return kind, CandleKey(venue=venue.replace("-", ""), symbol=f"{base}/{quote}", timeframe=tf)


def merge(sources: Sequence[SeriesSource]) -> Iterator[Candle]:
    """Every candle of every source ordered by close time, with the deterministic tie-break."""
    if not sources:
        return iter(())
    keys = [s.key for s in sources]
    if len(set(keys)) != len(keys):
        raise DataError("the same series (venue, symbol, timeframe) is given twice")
    if len(sources) == 1:
        return sources[0].candles()
    ranked = sorted(range(len(sources)), key=lambda i: (timeframe_ms(keys[i].timeframe), keys[i].venue,
                                                         keys[i].symbol, keys[i].timeframe))  # fmt: skip
    rank = {idx: r for r, idx in enumerate(ranked)}

    def tagged(i: int) -> Iterator[tuple[int, int, Candle]]:
        r = rank[i]
        for candle in sources[i].candles():
            yield _ms(candle.close_time), r, candle

    return (c for _, _, c in heapq.merge(*(tagged(i) for i in range(len(sources)))))


def check_single_venue(sources: Sequence[SeriesSource]) -> str:
    """The one venue of all sources (the swarm trades one exchange per process)."""
    venues = sorted({s.key.venue for s in sources})
    if not venues:
        raise DataError("no data: give at least one --data")
    if len(venues) > 1:
        raise DataError(f"all series of one run must come from one venue, got {', '.join(venues)}")
    return venues[0]
