"""CSV files read as blocks give the row reader's candles, and its errors word for word."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_ODD_VALUES = [
    *("100", "100.50", ".5", "1e2", "1E+2", "100.", "0100.5", " 100", "100 ", "+100", "-100", "1_00"),
    *("inf", "NaN", "", "1e", "1.2.3", "\u0661\u0660\u0660", '"100"', "1e400", "0", "99999999999999999999.1234567"),
]


@st.composite
def odd_files(draw: st.DrawFn) -> list[str]:
    """Valid hourly candles with, now and then, a value written oddly (signs, spaces, underscores,
    quotes, exponents, other digits, non-numbers), an extra column, a blank line or a short row."""
    rows = []
    t = 1_735_689_600_000
    for _ in range(draw(st.integers(1, 12))):
        low = draw(st.integers(50, 99))
        values = [str(low + 2), str(low + 4), str(low), str(low + 3), str(draw(st.integers(0, 9)))]
        if draw(st.integers(0, 3)) == 0:
            values[draw(st.integers(0, 4))] = draw(st.sampled_from(_ODD_VALUES))
        stamp = str(t) if draw(st.integers(0, 9)) else draw(st.sampled_from([f" {t}", f"+{t}", f"{t}.0", "", "x"]))
        row = ",".join([stamp, *values])
        shape = draw(st.integers(0, 19))
        if shape == 0:
            row += ",extra"
        elif shape == 1:
            row = ",".join(row.split(",")[:4])
        elif shape == 2:
            rows.append("")
        rows.append(row + "\n")
        t += 3_600_000
    return rows


@settings(max_examples=300, deadline=None)
@given(rows=odd_files())
def test_blocks_take_what_the_row_reader_takes_and_nothing_else(tmp_path_factory: pytest.TempPathFactory,
                                                                rows: list[str]) -> None:  # fmt: skip
    """Whatever the file holds, the blocks are the row reader's candles, or its error word for word."""
    path = write(tmp_path_factory.mktemp("odd"), rows)
    problem: str | None = None
    try:
        expected = list(file_source(path).candles())
    except DataError as exc:
        problem = str(exc)
    if problem is not None:
        with pytest.raises(DataError) as blocks_error:
            built(file_source(path))
        assert str(blocks_error.value) == problem
        return
    got = built(file_source(path))
    assert got == expected
    assert [str(c.close) for c in got] == [str(c.close) for c in expected]  # type: ignore[attr-defined]


def test_a_large_file_is_read_by_the_fast_path_in_blocks(tmp_path: Path) -> None:
    """More rows than a block, all plain numbers: read by Arrow in blocks of the block size, exactly."""
    rows = [
        f"{1_735_689_600_000 + k * 60_000},{100 + k % 7}.25,{103 + k % 7},{99 + k % 7}.5,{101 + k % 7},{k % 5}.1\n"
        for k in range(70_000)
    ]
    path = write(tmp_path, rows)
    blocks = list(column_blocks([file_source(path)], source_id="f", clock=None))
    assert [b.n for b in blocks] == [65_536, 70_000 - 65_536]
    assert all(b._candles is None for b in blocks)  # built from the arrays, not by the row reader
    assert blocks[1].build(3) == list(file_source(path).candles())[65_536 + 3]
