"""CSV candle files read as blocks of arrays (:class:`~backtesting.columns.SeriesBlock`).

The row-by-row reader (:func:`backtesting.data.csv_candles`) turns every row into Decimals and a
checked :class:`Candle` (~6 us a row). This reader parses the file with Arrow's CSV reader (C++:
~0.6 s a million rows, where pandas took ~2.5 s), ``size`` rows at a time, and keeps each value's
text (so a candle built later has exactly the Decimal the file wrote, ``93576`` and not ``93576.0``)
and its float for the arrays. It takes only plain decimal numbers, which ``int()``, ``float()``,
``Decimal`` and Arrow read alike (Arrow's conversion is correctly rounded, like ``float()``); a chunk
with anything else, or a file Arrow cannot read as six such columns, is read by the row reader. The
rows are checked with the row reader's rules: in floats where floats decide (``float()`` of a
Decimal is correctly rounded, hence monotonic: a strict float comparison implies the exact one),
exactly in Decimal on the rows where floats tie or overflow. A block with any bad row is re-read row
by row, so errors are the row reader's, word for word.

:func:`cached_blocks` keeps the parsed blocks of a file in the process (an optimisation runs many
trials on the same data in each worker).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pv  # type: ignore[import-untyped]
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
    names = _check_header(path)
    tf_ms = timeframe_ms(key.timeframe)
    previous = -1
    seq = 0
    for chunk in _chunks(path, names, size):
        if chunk is None:  # not plain numbers (or not readable as such): the row reader decides
            yield from _fallback(row_reader, seq)
            return
        times, texts, floats = chunk
        rows = times.shape[0]
        keep = np.ones(rows, dtype=bool)
        if lo is not None:
            keep &= times >= lo
        if hi is not None:
            before_end = times < hi
            if not before_end.all():  # the row reader stops at the first row past the window
                stop = int(np.argmin(before_end))
                keep[stop:] = False
                rows = stop
        texts = [t[keep] for t in texts]
        floats = [f[keep] for f in floats]
        times = times[keep]
        if limit is not None and seq + times.shape[0] > limit:
            cut = limit - seq
            times, texts, floats = times[:cut], [t[:cut] for t in texts], [f[:cut] for f in floats]
        if not times.shape[0]:
            if hi is not None and rows < size:
                return
            continue
        block = _block(times, texts, floats, tf_ms, previous, seq)
        if block is None:
            yield from _fallback(row_reader, seq)
            return
        previous = int(times[-1])
        seq += times.shape[0]
        yield block
        if limit is not None and seq >= limit:
            return


_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[np.frombuffer(b"0123456789.eE+-", dtype=np.uint8)] = True
"""The characters of the numbers the fast path takes: with Arrow's conversion succeeding, a value is
a plain decimal literal, which ``int()``/``float()``/``Decimal`` and Arrow read alike (Arrow's
conversion is correctly rounded, like ``float()``). Spaces, underscores, ``inf``, other digits go to
the row reader."""
_STAMP_BYTES = np.zeros(256, dtype=bool)
_STAMP_BYTES[np.frombuffer(b"0123456789", dtype=np.uint8)] = True

Chunk = tuple[NDArray[np.int64], list[NDArray[np.bytes_]], list[NDArray[np.float64]]]


def _chunks(path: Path, names: list[str], size: int) -> Iterator[Chunk | None]:
    """The file's rows, ``size`` at a time, parsed by Arrow's CSV reader: open times, each value's
    text (fixed-width bytes) and its float. ``None`` (then nothing more) where a value is not a plain
    number or Arrow cannot read the file as six columns of them (ragged rows, bad UTF-8...)."""
    strings = {name: pa.string() for name in names}
    try:
        reader = pv.open_csv(
            path,
            read_options=pv.ReadOptions(block_size=1 << 22),
            convert_options=pv.ConvertOptions(column_types=strings, include_columns=names),
        )
        pending: list[pa.RecordBatch] = []
        held = 0
        for batch in reader:
            pending.append(batch)
            held += batch.num_rows
            while held >= size:
                table = pa.Table.from_batches(pending)
                chunk = _parse(table.slice(0, size))
                if chunk is None:
                    yield None
                    return
                yield chunk
                rest = table.slice(size)
                pending, held = rest.to_batches(), rest.num_rows
        if held:
            yield _parse(pa.Table.from_batches(pending))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        yield None


def _parse(table: pa.Table) -> Chunk | None:
    """One chunk's open times, texts and floats, or ``None`` if a value is not a plain number."""
    columns = [table.column(k).combine_chunks() for k in range(6)]
    stamps, values = columns[0], columns[1:]
    texts = []
    for column, allowed in ((stamps, _STAMP_BYTES), *((c, _NUMBER_BYTES) for c in values)):
        offsets, data = _buffers(column)
        if (offsets[1:] == offsets[:-1]).any() or not allowed[data[offsets[0] : offsets[-1]]].all():
            return None  # an empty value, or a character no plain number has
        texts.append(_fixed_bytes(offsets, data))
    try:
        times = np.asarray(pc.cast(stamps, pa.int64()).to_numpy(), dtype=np.int64)
        floats = [np.asarray(pc.cast(c, pa.float64()).to_numpy(), dtype=np.float64) for c in values]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # "1.2.3", "1e", a timestamp past int64...
    return times, texts[1:], floats


def _buffers(column: pa.Array) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """A string array's value offsets (``n + 1``) and its character data."""
    n = len(column)
    offset_type = np.int64 if pa.types.is_large_string(column.type) else np.int32
    buffers = column.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[column.offset : column.offset + n + 1].astype(np.int64)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def _fixed_bytes(offsets: NDArray[np.int64], data: NDArray[np.uint8]) -> NDArray[np.bytes_]:
    """The strings as a numpy fixed-width bytes array (no Python object per value): one gather per
    character position."""
    n = offsets.shape[0] - 1
    starts, lengths = offsets[:-1], np.diff(offsets)
    width = max(int(lengths.max()) if n else 1, 1)
    out = np.zeros((n, width), dtype=np.uint8)
    last = max(data.shape[0] - 1, 0)
    for j in range(width):
        present = lengths > j
        if data.shape[0]:
            out[:, j] = np.where(present, data[np.minimum(starts + j, last)], 0)
    return out.view(f"S{width}").reshape(n)


def _check_header(path: Path) -> list[str]:
    """The header's first six names as written (the file is refused unless they are the six fields)."""
    with path.open(newline="") as handle:
        first = handle.readline()
    raw = next(csv.reader([first]), [])
    header = [h.strip().lower() for h in raw]
    if tuple(header[:6]) != HEADER:
        raise CandleFileError(f"{path}: expected header {','.join(HEADER)}, got {header}")
    return raw[:6]


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


def _block(times: NDArray[np.int64], raw: list[NDArray[np.bytes_]], floats: list[NDArray[np.float64]],
           tf_ms: int, previous: int, seq: int) -> SeriesBlock | None:  # fmt: skip
    """A checked block, or None when a row is not valid (or not obviously valid)."""
    if times[0] <= previous or (times.shape[0] > 1 and not (np.diff(times) > 0).all()):
        return None
    o, h, low, c, v = floats
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(low) & np.isfinite(c) & np.isfinite(v)
        clear = finite & (low > 0) & (v > 0) & (low < o) & (o < h) & (low < c) & (c < h)
    for i in np.flatnonzero(~clear).tolist():  # ties, zeros, overflow: decided exactly
        if not _exactly_valid([t[i].decode() for t in raw]):
            return None

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
