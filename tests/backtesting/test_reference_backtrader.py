"""Reference agreement with backtrader on real candles (data/samples/binance_BTC-USDT_1h.csv).

Same assumptions on both sides (see ``tests/backtesting/bt_reference.py``): sma_cross(10/30),
100% fixed fraction, fees on notional, no slippage, fills at the next candle's open.
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from backtesting.config import reference_config
from backtesting.data import file_source
from backtesting.engine import BacktestEngine
from tests.backtesting.bt_reference import frame_from_csv, run_reference

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "binance_BTC-USDT_1h.csv"


@pytest.mark.parametrize("fee_bps", [0, 10])
async def test_same_round_trips_and_final_equity_as_backtrader(fee_bps: int) -> None:
    bt_fills, bt_value = run_reference(frame_from_csv(str(SAMPLE)), fee_bps=fee_bps)
    result = await BacktestEngine(reference_config(fee_bps=fee_bps), [file_source(SAMPLE)]).run()

    ours = [(f.ts, f.side.value, round(f.price, 6)) for f in result.fills]
    theirs = [(f.time, f.side, round(Decimal(repr(f.price)), 6)) for f in bt_fills]
    assert len(ours) > 20, "the sample must trade enough to make the comparison meaningful"
    assert ours == theirs
    for mine, ref in zip(result.fills, bt_fills, strict=True):
        assert math.isclose(float(mine.quantity), ref.size, rel_tol=1e-9)
        assert math.isclose(float(mine.fee), ref.fee, rel_tol=1e-9, abs_tol=1e-12)
    # every fill happens at the open of the candle AFTER the decision candle (no lookahead)
    for trip in result.trips:
        assert trip.exit_time is not None
        assert trip.exit_time - trip.entry_time >= timedelta(hours=1)
    assert math.isclose(float(result.final_equity), bt_value, rel_tol=1e-6)
    assert result.dead_letters == 0
