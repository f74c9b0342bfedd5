"""CSV files read as blocks give the row reader's candles, and its errors word for word."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from backtesting.columns import column_blocks
from backtesting.csv_blocks import _CACHE
from backtesting.data import DataError, SeriesSource, file_source

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = [
    "1735689600000,100,101.5,99.25,100.75,10\n",
    "1735693200000,100.75,100.75,100.75,100.75,0\n",  # every price equal, no volume: valid (ties)
    "1735696800000,100.750,102,100.1,101.00,3.5\n",  # trailing zeros are kept in the Decimals
    "1735700400000,101,101,0.00000001,100,1e-3\n",
]


def built(source: SeriesSource) -> list[object]:
    return [c for column in column_blocks([source], source_id="f", clock=None) for c in
            (column.build(i) for i in range(column.n))]  # fmt: skip


def write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "binance_BTC-USDT_1h.csv"
    path.write_text(HEADER + "".join(rows))
    return path


def test_blocks_equal_the_rows_exponents_and_ties_included(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    rows = list(file_source(path).candles())
    assert built(file_source(path)) == rows
    assert [str(c.close) for c in rows] == ["100.75", "100.75", "101.00", "100"]
    start, end = datetime(2025, 1, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 3, tzinfo=UTC)
    assert built(file_source(path, start, end)) == list(file_source(path, start, end).candles())
    assert built(file_source(path, limit=3)) == list(file_source(path, limit=3).candles())


@pytest.mark.parametrize(
    "bad",
    [
        "1735700400000,101,100,102,101,1\n",  # high below low
        "1735700400000,101,103,102,101,1\n",  # open below low
        "1735700400000,101,103,100,101,-1\n",  # negative volume
        "1735700400000,101,103,0,101,1\n",  # a zero price
        "1735700400000,abc,103,100,101,1\n",  # not a number
        "1735689600000,101,103,100,101,1\n",  # time not increasing
        "1735700400000,NaN,103,100,101,1\n",
    ],
)
def test_a_bad_row_gives_the_row_readers_error(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, [*GOOD[:3], bad])
    with pytest.raises(DataError) as rows_error:
        list(file_source(path).candles())
    with pytest.raises(DataError) as blocks_error:
        built(file_source(path))
    assert str(blocks_error.value) == str(rows_error.value)


def test_cached_blocks_are_parsed_once_per_file_version(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    _CACHE.clear()
    first = built(file_source(path, cache=True))
    assert len(_CACHE) == 1
    assert built(file_source(path, cache=True)) == first
    assert len(_CACHE) == 1
    path.write_text(HEADER + "".join(GOOD[:2]))  # a new version of the file is read again
    assert len(built(file_source(path, cache=True))) == 2
