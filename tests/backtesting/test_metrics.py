"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtesting import metrics as m

DAY = 86_400_000


def test_returns_total_return_and_cagr() -> None:
    equity = [100.0, 110.0, 99.0, 121.0]
    r = m.simple_returns(equity)
    assert r == pytest.approx([0.1, -0.1, 121 / 99 - 1])
    assert m.total_return(equity) == pytest.approx(0.21)
    # two years span: (1.21) ** (1/2) - 1 = 0.1
    times = [0, 365 * DAY // 3 * 1, 2 * 365 * DAY // 3, 2 * 365 * DAY]
    assert m.cagr(equity, times) == pytest.approx(0.1)


def test_periods_per_year_from_spacing() -> None:
    hourly = [i * 3_600_000 for i in range(10)]
    assert m.periods_per_year(hourly) == pytest.approx(365 * 24)
    assert m.periods_per_year([5]) == 0.0


def test_sharpe_sortino_volatility_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    mean = 0.005
    sd = math.sqrt(((0.005) ** 2 + (0.025) ** 2 + (0.025) ** 2 + (0.005) ** 2) / 3)
    downside = math.sqrt((0.02**2) / 4)
    assert m.annualised_volatility(r, 365) == pytest.approx(sd * math.sqrt(365))
    assert m.sharpe_ratio(r, 365) == pytest.approx(mean / sd * math.sqrt(365))
    assert m.sortino_ratio(r, 365) == pytest.approx(mean / downside * math.sqrt(365))
    assert m.sharpe_ratio([0.01, 0.01, 0.01], 365) == 0.0  # no variance: defined as 0
    assert m.sortino_ratio([0.01, 0.02], 365) == 0.0  # no downside


def test_drawdown_depth_and_duration() -> None:
    equity = [100, 120, 90, 60, 130, 125, 125]
    times = [i * DAY for i in range(7)]
    assert m.max_drawdown(equity) == pytest.approx(0.5)  # 120 -> 60
    dd = m.drawdown_series(equity)
    assert dd[3] == pytest.approx(0.5)
    assert dd[4] == 0.0
    spell = m.longest_drawdown(equity, times)
    # peak at index 1, recovered at index 4: 3 bars / 3 days; the final spell 4 -> 6 lasts 2 days
    assert (spell.start_index, spell.end_index, spell.bars, spell.duration_ms) == (1, 4, 3, 3 * DAY)
    unrecovered = m.longest_drawdown([100, 90, 80, 95], [0, DAY, 2 * DAY, 3 * DAY])
    assert (unrecovered.start_index, unrecovered.end_index, unrecovered.duration_ms) == (0, 3, 3 * DAY)


def test_trade_stats() -> None:
    stats = m.trade_stats([10.0, -5.0, 20.0, -15.0, 0.0])
    assert stats.trades == 5
    assert stats.wins == 2
    assert stats.losses == 2
    assert stats.win_rate == pytest.approx(0.4)
    assert stats.profit_factor == pytest.approx(30 / 20)
    assert stats.avg_win == pytest.approx(15.0)
    assert stats.avg_loss == pytest.approx(-10.0)
    assert m.trade_stats([5.0]).profit_factor is None
    assert m.trade_stats([]).trades == 0


def test_buy_and_hold_and_compute_metrics() -> None:
    closes_a = np.array([10.0, 20.0, 15.0])
    closes_b = np.array([100.0, 100.0, 50.0])
    bh = m.buy_and_hold_curve([closes_a, closes_b], 1000.0)
    assert bh == pytest.approx([1000.0, 1500.0, 1000.0])
    times = [0, DAY, 2 * DAY]
    res = m.compute_metrics(
        times,
        [1000.0, 1100.0, 990.0],
        in_market=[0, 1, 1],
        trade_pnls=[-10.0],
        fees=2.5,
        traded_notional=3000.0,
        benchmark=bh,
    )
    assert res.total_return == pytest.approx(-0.01)
    assert res.max_drawdown == pytest.approx(0.1)
    assert res.exposure == pytest.approx(2 / 3)
    assert res.turnover == pytest.approx(3000 / ((1000 + 1100 + 990) / 3))
    assert res.benchmark_return == pytest.approx(0.0)
    assert res.benchmark_max_drawdown == pytest.approx(1 / 3)
    # two days, two returns: nothing can be annualised, and the figures say so instead of a number
    for name in ("cagr", "calmar", "sharpe", "sortino", "annualised_volatility", "benchmark_cagr"):
        assert getattr(res, name) is None
        assert name in res.undefined
    assert res.trades == 1
    assert res.win_rate == 0.0
    assert res.avg_win is None
    assert res.undefined["avg_win"] == "no winning trade"
    assert res.fees == 2.5
    assert set(res.as_dict()) >= {
        "sharpe",
        "sortino",
        "calmar",
        "cagr",
        "annualised_volatility",
        "max_drawdown_duration_days",
        "profit_factor",
        "avg_win",
        "avg_loss",
    }


def _daily(values: list[float]) -> list[int]:
    return [i * DAY for i in range(len(values))]


def test_metrics_are_defined_on_a_long_enough_window() -> None:
    rng = np.random.default_rng(3)
    equity = list(1000.0 * np.cumprod(1 + rng.normal(0.001, 0.01, 60)))
    res = m.compute_metrics(_daily(equity), equity, in_market=[1] * 60, trade_pnls=[5.0, -2.0], fees=0.0,
                            traded_notional=0.0, benchmark=equity)  # fmt: skip
    assert res.undefined == {}
    assert res.cagr is not None
    assert res.calmar == pytest.approx(res.cagr / res.max_drawdown)
    assert res.sharpe is not None
    assert res.sharpe == pytest.approx(m.sharpe_ratio(m.simple_returns(equity), 365.0))


def test_metrics_after_equity_went_negative_are_undefined() -> None:
    equity = [1000.0 - 40.0 * i for i in range(60)]  # below zero from day 25
    res = m.compute_metrics(_daily(equity), equity, in_market=[1] * 60, trade_pnls=[-1360.0], fees=0.0,
                            traded_notional=0.0, benchmark=[1000.0] * 60)  # fmt: skip
    for name in ("sharpe", "sortino", "annualised_volatility", "cagr", "calmar"):
        assert getattr(res, name) is None
        assert "equity fell to zero or below" in res.undefined[name]
    assert res.total_return == pytest.approx(-2.36)  # still defined: the account lost 236%
    assert res.max_drawdown == pytest.approx(2.36)


def test_trade_figures_without_trades_are_undefined() -> None:
    equity = [1000.0] * 40
    res = m.compute_metrics(_daily(equity), equity, in_market=[0] * 40, trade_pnls=[], fees=0.0,
                            traded_notional=0.0, benchmark=equity)  # fmt: skip
    for name in ("win_rate", "profit_factor", "avg_win", "avg_loss"):
        assert getattr(res, name) is None
        assert res.undefined[name] == "no closed trade"
    assert res.sharpe == 0.0  # defined (40 flat returns): no variance, no reward
