"""Performance metrics of a backtest: pure functions over numpy arrays (no I/O, no pandas).

Conventions (also in ``docs/backtesting.md``):

* ``equity`` is the account equity marked at each bar close, ``times_ms`` the bar close times in
  epoch milliseconds; returns are simple per-bar returns ``e[i] / e[i-1] - 1``;
* crypto trades every day, so a year is 365 days and ``periods_per_year`` is ``365 days / bar
  spacing`` (the median spacing of ``times_ms``);
* the risk-free rate is zero; Sharpe = ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``;
  Sortino uses the downside deviation ``sqrt(mean(min(r, 0)^2))`` over ALL periods;
* CAGR = ``(e_end / e_0) ** (1 / years) - 1`` with ``years`` the span of ``times_ms``;
  Calmar = ``CAGR / max drawdown``;
* max drawdown is the largest ``1 - e / running peak``; its duration is the longest time spent
  below a previous peak (from the peak to the recovery, or to the end when never recovered);
* trade statistics come from closed round trips' net PnL (after fees): win rate = wins / trades,
  profit factor = gross wins / gross losses (``inf`` without a loss, 0 without a win).

Undefined figures are ``None`` with the reason in :attr:`Metrics.undefined` (the reports print
``n/a`` and the reason, never a number that means nothing):

* volatility, Sharpe and Sortino need at least :data:`MIN_RETURNS` returns;
* CAGR and Calmar (and the benchmark's CAGR) need a span of at least :data:`MIN_SPAN_DAYS` days
  (annualising a few days' growth gives absurd numbers);
* once equity fell to zero or below, returns and growth rates mean nothing: volatility, Sharpe,
  Sortino, CAGR and Calmar are undefined (total return and drawdown, which can exceed 100%, stay);
* win rate, profit factor and average win / loss need closed trades (a win, a loss).

Ratios that are defined but degenerate are ``0.0`` (no variance: Sharpe 0; no drawdown: Calmar 0);
``profit_factor`` is ``None`` without a losing trade (infinite) but not listed as undefined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

YEAR_MS = 365 * 86_400 * 1000
MIN_RETURNS = 30
"""Returns needed before volatility, Sharpe and Sortino are reported."""
MIN_SPAN_DAYS = 30.0
"""Days a run must span before growth is annualised (CAGR, Calmar)."""
FloatArray = NDArray[np.float64]


def _arr(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def periods_per_year(times_ms: ArrayLike) -> float:
    """Bars per year from the median spacing of ``times_ms`` (0 when fewer than two bars)."""
    t = _arr(times_ms)
    if t.size < 2:
        return 0.0
    spacing = float(np.median(np.diff(t)))
    return YEAR_MS / spacing if spacing > 0 else 0.0


def simple_returns(equity: ArrayLike) -> FloatArray:
    """Per-bar simple returns ``e[i] / e[i-1] - 1`` (length ``n - 1``)."""
    e = _arr(equity)
    if e.size < 2:
        return np.zeros(0)
    prev = e[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev != 0, e[1:] / prev - 1.0, 0.0)


def total_return(equity: ArrayLike) -> float:
    """``e_end / e_0 - 1``."""
    e = _arr(equity)
    if e.size == 0 or e[0] == 0:
        return 0.0
    return float(e[-1] / e[0] - 1.0)


def cagr(equity: ArrayLike, times_ms: ArrayLike) -> float:
    """Compound annual growth rate over the span of ``times_ms`` (365-day years)."""
    e, t = _arr(equity), _arr(times_ms)
    if e.size < 2 or e[0] <= 0:
        return 0.0
    years = float(t[-1] - t[0]) / YEAR_MS
    if years <= 0:
        return 0.0
    growth = e[-1] / e[0]
    if growth <= 0:
        return -1.0
    return float(growth ** (1.0 / years) - 1.0)


def annualised_volatility(returns: ArrayLike, ppy: float) -> float:
    """``std(r, ddof=1) * sqrt(periods_per_year)``."""
    r = _arr(returns)
    if r.size < 2 or ppy <= 0:
        return 0.0
    return float(np.std(r, ddof=1) * math.sqrt(ppy))


def sharpe_ratio(returns: ArrayLike, ppy: float) -> float:
    """Annualised Sharpe ratio with a zero risk-free rate (0 when the returns do not vary)."""
    r = _arr(returns)
    if r.size < 2 or ppy <= 0:
        return 0.0
    sd = float(np.std(r, ddof=1))
    if sd == 0.0:
        return 0.0
    return float(np.mean(r) / sd * math.sqrt(ppy))


def sortino_ratio(returns: ArrayLike, ppy: float) -> float:
    """Annualised Sortino ratio: mean return over the downside deviation (0 without downside)."""
    r = _arr(returns)
    if r.size < 2 or ppy <= 0:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0.0:
        return 0.0
    return float(np.mean(r) / downside * math.sqrt(ppy))


def drawdown_series(equity: ArrayLike) -> FloatArray:
    """``1 - e / running peak`` at each bar (0 at a new high)."""
    e = _arr(equity)
    if e.size == 0:
        return np.zeros(0)
    peak = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, 1.0 - e / peak, 0.0)


def max_drawdown(equity: ArrayLike) -> float:
    """The largest drawdown as a fraction of the running peak (0..1)."""
    dd = drawdown_series(equity)
    return float(dd.max()) if dd.size else 0.0


@dataclass(frozen=True, slots=True)
class DrawdownSpell:
    """The longest time under water: bars and milliseconds from the peak to recovery (or the end)."""

    bars: int
    duration_ms: int
    start_index: int
    end_index: int


def longest_drawdown(equity: ArrayLike, times_ms: ArrayLike) -> DrawdownSpell:
    """The longest spell below a previous peak (see the module docstring)."""
    e, t = _arr(equity), _arr(times_ms)
    best = DrawdownSpell(0, 0, 0, 0)
    if e.size < 2:
        return best
    peak = np.maximum.accumulate(e)
    under = e < peak
    start: int | None = None
    for i in range(1, e.size + 1):
        below = i < e.size and bool(under[i])
        if below and start is None:
            start = i - 1  # the peak bar
        elif not below and start is not None:
            end = min(i, e.size - 1)
            spell = DrawdownSpell(end - start, int(t[end] - t[start]), start, end)
            if spell.duration_ms > best.duration_ms:
                best = spell
            start = None
    return best


def exposure_fraction(in_market: ArrayLike) -> float:
    """Share of bars with an open position (``in_market`` is a boolean per bar)."""
    m = np.asarray(in_market, dtype=bool)
    return float(m.mean()) if m.size else 0.0


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Statistics of closed round trips (net PnL after fees)."""

    trades: int
    wins: int
    losses: int
    win_rate: float
    profit_factor: float | None
    avg_win: float
    avg_loss: float
    best: float
    worst: float


def trade_stats(pnls: Sequence[float] | ArrayLike) -> TradeStats:
    """Win rate, profit factor (``None`` without a loss), average win and loss of ``pnls``."""
    p = _arr(pnls)
    n = int(p.size)
    if n == 0:
        return TradeStats(0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    wins, losses = p[p > 0], p[p < 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    pf: float | None = gross_win / gross_loss if gross_loss > 0 else None
    return TradeStats(
        trades=n,
        wins=int(wins.size),
        losses=int(losses.size),
        win_rate=wins.size / n,
        profit_factor=pf,
        avg_win=float(wins.mean()) if wins.size else 0.0,
        avg_loss=float(losses.mean()) if losses.size else 0.0,
        best=float(p.max()),
        worst=float(p.min()),
    )


def buy_and_hold_curve(closes: Sequence[ArrayLike], initial: float) -> FloatArray:
    """Equity of ``initial`` split equally over the series and held from their first close.

    ``closes`` holds one array per series, all aligned on the same bars (forward-filled).
    """
    if not closes:
        return np.zeros(0)
    parts = [_arr(c) for c in closes]
    share = initial / len(parts)
    curve = np.zeros_like(parts[0])
    for c in parts:
        curve = curve + share * c / c[0]
    return curve


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every headline figure of one backtest (see the module docstring for definitions)."""

    bars: int
    start_ms: int
    end_ms: int
    initial_equity: float
    final_equity: float
    total_return: float
    cagr: float | None
    annualised_volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_duration_bars: int
    max_drawdown_duration_days: float
    trades: int
    win_rate: float | None
    profit_factor: float | None
    avg_win: float | None
    avg_loss: float | None
    exposure: float
    fees: float
    turnover: float
    benchmark_return: float
    benchmark_cagr: float | None
    benchmark_max_drawdown: float
    undefined: dict[str, str] = field(default_factory=dict)
    """Metric name -> why it is undefined (its value is ``None``)."""

    def as_dict(self) -> dict[str, float | int | None]:
        """The metrics as a plain dict (JSON-ready; undefined ones are ``None``, see :attr:`undefined`)."""
        out: dict[str, float | int | None] = asdict(self)
        del out["undefined"]
        return out


def compute_metrics(
    times_ms: ArrayLike,
    equity: ArrayLike,
    *,
    in_market: ArrayLike,
    trade_pnls: Sequence[float] | ArrayLike,
    fees: float,
    traded_notional: float,
    benchmark: ArrayLike,
) -> Metrics:
    """All metrics of one run. ``turnover`` = traded notional / average equity."""
    t, e, b = _arr(times_ms), _arr(equity), _arr(benchmark)
    ppy = periods_per_year(t)
    r = simple_returns(e)
    mdd = max_drawdown(e)
    growth = cagr(e, t)
    spell = longest_drawdown(e, t)
    stats = trade_stats(trade_pnls)
    mean_equity = float(e.mean()) if e.size else 0.0
    metrics = Metrics(
        bars=int(e.size),
        start_ms=int(t[0]) if t.size else 0,
        end_ms=int(t[-1]) if t.size else 0,
        initial_equity=float(e[0]) if e.size else 0.0,
        final_equity=float(e[-1]) if e.size else 0.0,
        total_return=total_return(e),
        cagr=growth,
        annualised_volatility=annualised_volatility(r, ppy),
        sharpe=sharpe_ratio(r, ppy),
        sortino=sortino_ratio(r, ppy),
        calmar=growth / mdd if mdd > 0 else 0.0,
        max_drawdown=mdd,
        max_drawdown_duration_bars=spell.bars,
        max_drawdown_duration_days=spell.duration_ms / 86_400_000,
        trades=stats.trades,
        win_rate=stats.win_rate,
        profit_factor=stats.profit_factor,
        avg_win=stats.avg_win,
        avg_loss=stats.avg_loss,
        exposure=exposure_fraction(in_market),
        fees=fees,
        turnover=traded_notional / mean_equity if mean_equity > 0 else 0.0,
        benchmark_return=total_return(b),
        benchmark_cagr=cagr(b, t) if b.size == t.size else 0.0,
        benchmark_max_drawdown=max_drawdown(b),
    )
    undefined = undefined_metrics(t, e, stats)
    if not undefined:
        return metrics
    cleared: dict[str, Any] = dict.fromkeys(undefined)
    return replace(metrics, **cleared, undefined=undefined)


def undefined_metrics(times_ms: FloatArray, equity: FloatArray, stats: TradeStats) -> dict[str, str]:
    """Which metrics of a run mean nothing, and why (see the module docstring)."""
    reasons: dict[str, str] = {}
    returns = max(0, int(equity.size) - 1)
    span_days = float(times_ms[-1] - times_ms[0]) / 86_400_000 if times_ms.size > 1 else 0.0
    if equity.size and float(equity.min()) <= 0.0:
        ruined = "equity fell to zero or below: returns and growth rates are meaningless"
        for name in ("annualised_volatility", "sharpe", "sortino", "cagr", "calmar"):
            reasons[name] = ruined
    else:
        if returns < MIN_RETURNS:
            for name in ("annualised_volatility", "sharpe", "sortino"):
                reasons[name] = f"{returns} returns: at least {MIN_RETURNS} are needed"
        if span_days < MIN_SPAN_DAYS:
            for name in ("cagr", "calmar"):
                reasons[name] = f"{span_days:.1f} days: growth is annualised from {MIN_SPAN_DAYS:g} days on"
    if span_days < MIN_SPAN_DAYS:
        reasons["benchmark_cagr"] = f"{span_days:.1f} days: growth is annualised from {MIN_SPAN_DAYS:g} days on"
    if stats.trades == 0:
        for name in ("win_rate", "profit_factor", "avg_win", "avg_loss"):
            reasons[name] = "no closed trade"
    else:
        if stats.wins == 0:
            reasons["avg_win"] = "no winning trade"
        if stats.losses == 0:
            reasons["avg_loss"] = "no losing trade"
    return reasons
