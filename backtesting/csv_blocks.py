"""CSV candle files read as blocks of arrays (:class:`~backtesting.columns.SeriesBlock`).

The row-by-row reader (:func:`backtesting.data.csv_candles`) turns every row into Decimals and a
checked :class:`Candle` (~6 us a row). This reader parses a block of rows with pandas, keeps each
value's text (so a candle built later has exactly the Decimal the file wrote, ``93576`` and not
``93576.0``), and its ``float()`` for the arrays. The rows are checked with the same rules: in floats
where floats decide (``float()`` of a Decimal is correctly rounded, hence monotonic: a strict float
comparison implies the exact one), exactly in Decimal on the rows where floats tie or overflow. A
block with any bad row is re-read row by row, so errors are the row reader's, word for word.

:func:`cached_blocks` keeps the parsed blocks of a file in the process (an optimisation runs many
trials on the same data in each worker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from backtesting.columns import BLOCK, SeriesBlock, block_of_candles
from core.candles import timeframe_ms
from core.gateway import CandleKey
from infrastructure.feeds.files import HEADER, CandleFileError

FIELDS = ("open", "high", "low", "close", "volume")


def csv_blocks(path: Path, key: CandleKey, lo: int | None, hi: int | None, limit: int | None,
               row_reader: Callable[[], Iterator[object]], size: int = BLOCK) -> Iterator[SeriesBlock]:  # fmt: skip
    """The file's candles with open time in ``[lo, hi)`` (ms), at most ``limit``, as blocks.

    ``row_reader`` is the row-by-row reader of the same window: a block with a problem is read with
    it instead (same candles when they are fine, same error when one is not).
    """
    _check_header(path)
    tf_ms = timeframe_ms(key.timeframe)
    previous = -1
    seq = 0
    reader = pd.read_csv(path, dtype=str, usecols=range(6), chunksize=size, keep_default_na=False, header=0,
                         names=list(HEADER), engine="c")  # fmt: skip
    for chunk in reader:
        frame = chunk
        try:
            times: NDArray[np.int64] = np.asarray(frame["timestamp"].astype(np.int64).to_numpy(), dtype=np.int64)
        except (ValueError, TypeError, OverflowError):
            yield from _fallback(row_reader, seq)
            return
        keep = np.ones(times.shape[0], dtype=bool)
        if lo is not None:
            keep &= times >= lo
        if hi is not None:
            before_end = times < hi
            if not before_end.all():  # the row reader stops at the first row past the window
                stop = int(np.argmin(before_end))
                keep[stop:] = False
                times, frame, keep = times[:stop], frame.iloc[:stop], keep[:stop]
        texts = [frame[name].to_numpy()[keep] for name in FIELDS]
        times = times[keep]
        if limit is not None and seq + times.shape[0] > limit:
            cut = limit - seq
            times, texts = times[:cut], [t[:cut] for t in texts]
        if not times.shape[0]:
            if hi is not None and frame.shape[0] < size:
                return
            continue
        block = _block(times, texts, tf_ms, previous, seq)
        if block is None:
            yield from _fallback(row_reader, seq)
            return
        previous = int(times[-1])
        seq += times.shape[0]
        yield block
        if limit is not None and seq >= limit:
            return


def _check_header(path: Path) -> None:
    with path.open(newline="") as handle:
        first = handle.readline()
    header = [h.strip().lower() for h in first.strip().split(",")]
    if tuple(header[:6]) != HEADER:
        raise CandleFileError(f"{path}: expected header {','.join(HEADER)}, got {header}")


def _fallback(row_reader: Callable[[], Iterator[object]], skip: int) -> Iterator[SeriesBlock]:
    """The row reader from candle ``skip`` on, chunked (it raises the row's own error)."""
    rows = row_reader()
    for _ in range(skip):
        next(rows)
    chunk: list[object] = []
    for candle in rows:
        chunk.append(candle)
        if len(chunk) == BLOCK:
            yield block_of_candles(chunk)  # type: ignore[arg-type]
            chunk = []
    if chunk:
        yield block_of_candles(chunk)  # type: ignore[arg-type]


def _block(times: NDArray[np.int64], texts: list[NDArray[np.object_]], tf_ms: int, previous: int,
           seq: int) -> SeriesBlock | None:  # fmt: skip
    """A checked block, or None when a row is not valid (or not obviously valid)."""
    if times[0] <= previous or (times.shape[0] > 1 and not (np.diff(times) > 0).all()):
        return None
    try:
        o, h, low, c, v = (t.astype(np.float64) for t in texts)
    except (ValueError, TypeError):
        return None
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(low) & np.isfinite(c) & np.isfinite(v)
        clear = finite & (low > 0) & (v > 0) & (low < o) & (o < h) & (low < c) & (c < h)
    for i in np.flatnonzero(~clear).tolist():  # ties, zeros, overflow: decided exactly
        if not _exactly_valid([str(t[i]) for t in texts]):
            return None
    raw = [np.array(t, dtype=np.bytes_) for t in texts]  # compact: what exact Decimals are made from

    def exact(i: int) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        return (
            Decimal(raw[0][i].decode()),
            Decimal(raw[1][i].decode()),
            Decimal(raw[2][i].decode()),
            Decimal(raw[3][i].decode()),
            Decimal(raw[4][i].decode()),
        )

    closes = raw[3]

    def exact_close(i: int) -> Decimal:
        return Decimal(closes[i].decode())

    n = times.shape[0]
    return SeriesBlock(
        times,
        times + tf_ms,
        o,
        h,
        low,
        c,
        v,
        np.arange(seq + 1, seq + n + 1, dtype=np.int64),
        exact,
        None,
        exact_close,
    )


def _exactly_valid(texts: list[str]) -> bool:
    from backtesting.data import check_ohlcv

    try:
        o, h, low, c, v = (Decimal(t) for t in texts)
    except ArithmeticError:
        return False
    return check_ohlcv(o, h, low, c, v) is None


_CACHE: dict[tuple[str, float, int, int | None, int | None, int | None], list[SeriesBlock]] = {}
_CACHE_LIMIT = 4


def cached_blocks(path: Path, key: CandleKey, lo: int | None, hi: int | None, limit: int | None,
                  row_reader: Callable[[], Iterator[object]]) -> Iterator[SeriesBlock]:  # fmt: skip
    """:func:`csv_blocks`, parsed once per process for the same file (size and mtime) and window."""
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_mtime, stat.st_size, lo, hi, limit)
    blocks = _CACHE.get(cache_key)
    if blocks is None:
        blocks = list(csv_blocks(path, key, lo, hi, limit, row_reader))
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[cache_key] = blocks
    return iter(blocks)
