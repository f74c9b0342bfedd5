"""The "write your own strategy" example runs on real candles and trades."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from core.errors import ConfigurationError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_strategy.py"


def test_the_custom_strategy_example_runs_and_both_strategies_trade(capsys) -> None:
    module = runpy.run_path(str(EXAMPLE))
    outcomes = module["run"](verbose=True)
    out = capsys.readouterr().out
    assert outcomes["execute"] == outcomes["trades"] > 20
    assert "votes stoch_cross=long" in out
    assert "votes sma_cross=long" in out
    stoch = module["StochCross"]
    with pytest.raises(ValueError, match="oversold must be below overbought"):
        stoch.Params(oversold=90)
    with pytest.raises(ConfigurationError, match="unknown strategy 'stoch_cross'"):
        module["build_specs"](["stoch_cross"])  # not registered as a plug-in in this checkout
