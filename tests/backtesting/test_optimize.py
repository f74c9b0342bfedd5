"""Optimisation: search spaces, samplers (grid, TPE, NSGA-II), process pool, walk-forward windows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backtesting.config import BacktestConfig
from backtesting.optimize import Dimension, objective_values, optimise, parse_space, walk_forward, windows
from core.errors import ConfigurationError

BTC_1H = str(Path(__file__).resolve().parents[2] / "data" / "samples" / "binance_BTC-USDT_1h.csv")
END_MS = 1_735_689_600_000 + 40 * 86_400_000  # 40 days


def test_parse_space() -> None:
    fast, slow, flag = parse_space(
        ["sma_cross.fast=5:20:5", "sma_cross.slow=30,50", "sma_cross.allow_short=true,false"]
    )
    assert fast.integer
    assert fast.grid() == [5, 10, 15, 20]
    assert slow.grid() == [30, 50]
    assert flag.grid() == [True, False]
    assert Dimension("s", "x", 0.1, 0.3, 0.1).grid() == [0.1, 0.2, 0.3]
    for bad in ("fast=5:20", "sma_cross.fast=a:b", "sma_cross.fast=9:3", "sma_cross.fast=1:5:0"):
        with pytest.raises(ConfigurationError):
            parse_space([bad])


def test_objective_values_handle_undefined_metrics() -> None:
    assert objective_values({"sharpe": 1.5, "max_drawdown": 0.2}, ["sharpe", "drawdown"]) == [1.5, 0.2]
    assert objective_values({"profit_factor": None}, ["profit_factor"]) == [1e9]


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_samplers_run_in_two_processes_and_are_reproducible(sampler: str) -> None:
    dims = parse_space(["sma_cross.fast=3:15", "sma_cross.slow=20:60"])
    kwargs = {"sampler": sampler, "trials": 4, "n_jobs": 2, "seed": 3, "end_ms": END_MS}
    a = optimise([BTC_1H], BacktestConfig(), dims, **kwargs)  # type: ignore[arg-type]
    b = optimise([BTC_1H], BacktestConfig(), dims, **kwargs)  # type: ignore[arg-type]
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.values for t in a.trials] == [t.values for t in b.trials]
    assert len(a.trials) == 4
    assert a.best
    assert len({t.metrics["worker_pid"] for t in a.trials}) == 2  # both worker processes ran trials
    assert all(3 <= t.params["sma_cross"]["fast"] <= 15 for t in a.trials)


def test_pipelined_trials_are_reproducible_whatever_the_scheduling() -> None:
    """Trial ``k`` is asked knowing exactly the trials up to ``k - 2 * n_jobs``: three threads that
    finish in another order than two processes still give the same study."""
    dims = parse_space(["sma_cross.fast=3:15", "sma_cross.slow=20:60"])
    kwargs = {"sampler": "tpe", "trials": 9, "n_jobs": 2, "seed": 5, "end_ms": END_MS}
    processes = optimise([BTC_1H], BacktestConfig(), dims, **kwargs)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=3) as threads:
        threaded = optimise([BTC_1H], BacktestConfig(), dims, executor=threads, **kwargs)  # type: ignore[arg-type]
    assert [t.number for t in processes.trials] == list(range(9))
    assert [t.params for t in processes.trials] == [t.params for t in threaded.trials]
    assert [t.values for t in processes.trials] == [t.values for t in threaded.trials]
    assert len({t.metrics["worker_pid"] for t in processes.trials}) == 2


def test_multi_objective_nsga2_returns_the_pareto_front() -> None:
    dims = parse_space(["sma_cross.fast=3:15", "sma_cross.slow=20:60"])
    study = optimise(
        [BTC_1H],
        BacktestConfig(),
        dims,
        objectives=("return", "drawdown"),
        sampler="nsga2",
        trials=4,
        n_jobs=2,
        end_ms=END_MS,
    )
    assert study.best
    assert all(len(t.values) == 2 for t in study.best)
    for b in study.best:  # nothing in the study dominates a Pareto-optimal trial
        assert not any(t.values[0] > b.values[0] and t.values[1] < b.values[1] for t in study.trials)


def test_walk_forward_windows_roll_without_overlap_of_oos() -> None:
    hour = 3_600_000
    w = windows(0, 1000 * hour - 1, folds=3, in_sample_ratio=2.0)
    assert len(w) == 3
    for (is_start, is_end), (oos_start, oos_end) in w:
        assert is_start < is_end == oos_start < oos_end
        assert is_end - is_start == 2 * (oos_end - oos_start)
    assert [o[0] for _, o in w] == sorted(o[0] for _, o in w)
    assert w[0][1][1] == w[1][1][0]  # consecutive out-of-sample windows
    with pytest.raises(ConfigurationError):
        windows(0, 10, folds=0, in_sample_ratio=1)


def test_walk_forward_optimises_in_sample_and_validates_out_of_sample() -> None:
    dims = parse_space(["sma_cross.fast=5,10", "sma_cross.slow=30,40"])
    folds = walk_forward(
        [BTC_1H],
        BacktestConfig(),
        dims,
        objective="return",
        sampler="grid",
        trials=4,
        folds=2,
        in_sample_ratio=2.0,
        n_jobs=2,
    )
    assert len(folds) == 2
    for f in folds:
        assert f.in_sample[1] == f.out_of_sample[0]
        assert f.params["sma_cross"]["fast"] in (5, 10)
        assert f.out_of_sample_metrics["bars"] > 0
