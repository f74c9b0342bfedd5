"""Candle files: the CSV format of ``shared/data/candles`` (and Parquet with the same columns).

CSV: a header ``timestamp,open,high,low,close,volume``; ``timestamp`` = candle open time in epoch
milliseconds (UTC); numbers as plain decimals. File names ``<venue>_<BASE>-<QUOTE>[-<SETTLE>]_<tf>.csv``
name the stream (:func:`key_from_filename`). Values are read as exact decimals (no float noise),
and written back the same way, so a read-then-write round trip reproduces the numbers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

from core.candles import candle_from_ohlcv
from core.clock import ms_from_utc
from core.gateway import CandleKey
from core.messages.market import Candle

HEADER = ("timestamp", "open", "high", "low", "close", "volume")
_NAME_RE = re.compile(
    r"^(?P<venue>[a-z0-9_-]+)_(?P<pair>[A-Z0-9]+-[A-Z0-9]+(?:-[A-Z0-9]+)?)_(?P<tf>\d+[smhdwM])(?:_[A-Za-z0-9-]+)?$"
)


class CandleFileError(ValueError):
    """A candle file that cannot be read: wrong header, bad row, unknown name."""


def key_from_filename(path: str | Path) -> CandleKey:
    """The (venue, symbol, timeframe) named by a file ``binance_BTC-USDT_1h.csv``.

    ``binance-usdm_BTC-USDT-USDT_1h.csv`` gives venue ``binanceusdm`` and ``BTC/USDT:USDT``.
    """
    stem = Path(path).name.split(".")[0]
    match = _NAME_RE.match(stem)
    if match is None:
        raise CandleFileError(
            f"cannot tell venue/symbol/timeframe from {Path(path).name!r}; expected e.g. "
            "binance_BTC-USDT_1h.csv, or pass them explicitly"
        )
    parts = match.group("pair").split("-")
    symbol = f"{parts[0]}/{parts[1]}" + (f":{parts[2]}" if len(parts) == 3 else "")
    venue = match.group("venue").replace("-", "")
    return CandleKey(venue=venue, symbol=symbol, timeframe=match.group("tf"))


def iter_csv_rows(path: str | Path) -> Iterator[tuple[int, str, str, str, str, str]]:
    """Raw rows ``(open_ms, open, high, low, close, volume)`` as strings, checking the header."""
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header[:6]) != HEADER:
            raise CandleFileError(f"{path}: expected header {','.join(HEADER)}, got {header}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 6:
                raise CandleFileError(f"{path}:{lineno}: expected 6 columns, got {len(row)}")
            try:
                yield int(row[0]), row[1], row[2], row[3], row[4], row[5]
            except ValueError as exc:
                raise CandleFileError(f"{path}:{lineno}: bad timestamp {row[0]!r}") from exc


def read_candles_csv(path: str | Path, key: CandleKey | None = None, limit: int | None = None) -> list[Candle]:
    """Every candle of a CSV file as validated :class:`Candle` messages (``sequence`` 0)."""
    key = key or key_from_filename(path)
    candles: list[Candle] = []
    for i, row in enumerate(iter_csv_rows(path)):
        if limit is not None and i >= limit:
            break
        try:
            candles.append(candle_from_ohlcv(key.venue, key.symbol, key.timeframe, row))
        except ValueError as exc:
            raise CandleFileError(f"{path}: row {i + 2} is not a valid candle: {exc}") from exc
    return candles


def read_candles_parquet(path: str | Path, key: CandleKey | None = None) -> list[Candle]:
    """Candles from a Parquet file with the CSV's columns (``timestamp`` in ms or a datetime)."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    key = key or key_from_filename(path)
    table = pq.read_table(str(path))
    missing = [c for c in HEADER if c not in table.column_names]
    if missing:
        raise CandleFileError(f"{path}: missing columns {missing}")
    columns = {name: table.column(name).to_pylist() for name in HEADER}
    candles: list[Candle] = []
    for i, ts in enumerate(columns["timestamp"]):
        open_ms = ms_from_utc(ts) if hasattr(ts, "tzinfo") else int(ts)
        row = (open_ms, *(columns[c][i] for c in HEADER[1:]))
        candles.append(candle_from_ohlcv(key.venue, key.symbol, key.timeframe, row))
    return candles


def read_candles(path: str | Path, key: CandleKey | None = None) -> list[Candle]:
    """Candles from a ``.csv`` or ``.parquet`` file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return read_candles_parquet(path, key)
    if suffix == ".csv":
        return read_candles_csv(path, key)
    raise CandleFileError(f"{path}: unsupported candle file type {suffix!r} (use .csv or .parquet)")


def format_decimal(value: Decimal) -> str:
    """A decimal as the CSV files write it: plain notation, no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def candle_csv_row(candle: Candle) -> list[str]:
    """One candle as a CSV row (strings)."""
    return [
        str(ms_from_utc(candle.open_time)),
        format_decimal(candle.open),
        format_decimal(candle.high),
        format_decimal(candle.low),
        format_decimal(candle.close),
        format_decimal(candle.volume),
    ]


class CandleCsvWriter:
    """Writes candles to a CSV file in the shared format, header first."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", newline="")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(HEADER)
        self.rows = 0

    def write(self, candles: Iterable[Candle]) -> None:
        """Append candles."""
        for candle in candles:
            self._writer.writerow(candle_csv_row(candle))
            self.rows += 1

    def close(self) -> None:
        """Flush and close the file."""
        self._handle.close()


def write_candles_csv(path: str | Path, candles: Iterable[Candle]) -> int:
    """Write candles to ``path`` (header + rows); returns the number of rows."""
    writer = CandleCsvWriter(path)
    try:
        writer.write(candles)
    finally:
        writer.close()
    return writer.rows
