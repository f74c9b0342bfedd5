"""The risk engine over quiet candles: :meth:`RiskEngine.on_candle` for a run of candles, in one step.

Marking to market raises an alert on some candles (daily loss limit, drawdown breaker, VaR above
its limit); on all the others it only moves state: the last prices, the marks and the peak equity,
the trading day and its loss floor, the window of equity returns, the count of marks and the VaR
figures. :func:`simulate` replays exactly that state over a run of candles without touching the
engine and stops at the first candle that would raise an alert (the agent must be woken there);
:func:`apply` writes the state it reached. The same Decimal and float operations as the per-candle
path are used, in the same order, so the state is identical (``tests/kernel`` proves it on random
series, flat and in a position). With volatility sizing (an ATR per candle) there is no twin: the
agent is woken on every candle.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from agents.risk.var import VarFigures, historical_var
from core.columns import CandleColumn, Column
from core.domain import TradingState
from core.trading.portfolio import ZERO

if TYPE_CHECKING:
    from agents.risk.engine import RiskEngine

DAY_MS = 86_400_000
EPOCH_DATE = date(1970, 1, 1)
_BREAKER_MARGIN = Decimal("1e-9")
Key = tuple[str, str]


@dataclass(slots=True)
class Run:
    """The engine state after the candles ``[start, end)`` of a column (see :func:`simulate`)."""

    column: Column
    start: int
    end: int
    """The first row NOT applied: an alert row (the agent must be woken there) or the run's end."""
    rows: int = 0
    last_rows: dict[Key, int] = field(default_factory=dict)
    marks: list[Decimal] = field(default_factory=list)
    peak: Decimal = ZERO
    day: int | None = None
    day_start_equity: Decimal = ZERO
    daily_floor: Decimal = ZERO
    daily_loss_hit: bool = False
    appended: list[float] = field(default_factory=list)
    last_equity: float | None = None
    marks_count: int = 0
    var_point: int | None = None
    """How many of :attr:`appended` the window held at the run's last VaR point (None: no point)."""
    var_alerted: bool = False
    breaker: tuple[Decimal | None, Decimal] = (None, ZERO)


def _rows(column: CandleColumn, sids: Sequence[int], start: int, stop: int) -> NDArray[np.intp]:
    parts = [column.rows_between(s, start, stop) for s in sids]
    parts = [p for p in parts if p.shape[0]]
    if not parts:
        return np.zeros(0, dtype=np.intp)
    return parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))


def _day_number(value: date | None) -> int | None:
    return None if value is None else (value - EPOCH_DATE).days


def _tail_count(n: int) -> int:
    return max(1, math.ceil(n * (1 - 0.99)))  # historical_var's expression at level 0.99


def _var99_over(recent: deque[float], limit: float) -> bool:
    """``historical_var(window, 0.99)[0] > limit`` (the k-th smallest return, exactly)."""
    n = len(recent)
    if not n:
        return False
    kth = sorted(recent)[_tail_count(n) - 1]
    return max(-kth, 0.0) > limit


def simulate(engine: RiskEngine, column: Column, sids: Sequence[int], start: int, stop: int) -> Run:
    """Replay ``engine.on_candle`` over the rows of ``sids`` in ``[start, stop)`` without changing
    the engine; the run ends before the first row that would raise an alert (or at ``stop``)."""
    assert isinstance(column, CandleColumn)
    run, alert = _simulate(engine, column, sids, start, stop)
    if alert is not None:  # replay up to the alert row: the state before it
        run, again = _simulate(engine, column, sids, start, alert)
        assert again is None
        run.end = alert
    return run


def _simulate(
    engine: RiskEngine, column: CandleColumn, sids: Sequence[int], start: int, stop: int
) -> tuple[Run, int | None]:
    run = Run(column, start, stop)
    settings = engine.settings
    portfolio = engine.portfolio
    positions = list(portfolio.positions.items())
    index = {key: k for k, (key, _) in enumerate(positions)}
    quantities = [p.quantity for _, p in positions]
    marks: list[Decimal] = [p.mark_price if p.mark_price is not None else p.average_price for _, p in positions]
    run.marks = marks
    run.peak = peak = portfolio.peak_equity
    run.day = day = _day_number(engine._day)
    run.day_start_equity = day_start = engine._day_start_equity
    run.daily_floor = floor = engine._daily_floor
    run.daily_loss_hit = hit = engine._daily_loss_hit
    run.last_equity = last_f = engine.returns._last
    run.marks_count = marks_count = engine._marks
    run.var_alerted = var_alerted = engine._var_alerted
    run.breaker = (engine._breaker_peak, engine._breaker_floor)
    rows = _rows(column, sids, start, stop)
    if not rows.shape[0]:
        return run, None
    keys = [(info.venue, info.symbol) for info in column.table]
    cash = portfolio.cash
    equity = portfolio.equity
    limit = engine._daily_limit
    max_dd = engine._max_drawdown
    breaker_peak, breaker_floor = run.breaker
    active = engine.state is TradingState.ACTIVE
    window = engine.returns.returns
    size = window.maxlen or 0
    recent: deque[float] = deque(window, maxlen=size)
    negatives = sum(1 for r in recent if r < 0.0)
    var_every = engine._var_every
    var_limit = settings.var_limit_pct
    max_pct = settings.max_drawdown_pct
    appended = run.appended
    var_point: int | None = None
    days = (column.close_ms[rows] // DAY_MS).tolist()
    last_rows = run.last_rows
    series_list = column.series[rows].tolist()
    close_decimal = column.close_decimal
    for j, r in enumerate(rows.tolist()):
        key = keys[series_list[j]]
        last_rows[key] = r
        k = index.get(key)
        if k is not None:
            marks[k] = close_decimal(r)
            if quantities[k] != ZERO:
                total = ZERO
                for q, m in zip(quantities, marks, strict=True):
                    total += q * m
                equity = cash + total
                peak = max(peak, equity)
        d = days[j]
        if d != day:
            day = d
            day_start = equity
            floor = equity * (1 - limit)
            hit = False
        if not hit and equity <= floor:
            return run, r
        if active and equity < peak:
            surely_above = False
            if peak > ZERO:
                if peak is not breaker_peak:
                    breaker_peak = peak
                    breaker_floor = peak * (1 - max_pct + _BREAKER_MARGIN)
                surely_above = equity > breaker_floor
            if not surely_above:
                drawdown = 1.0 if peak <= ZERO else min(max(float(1 - equity / peak), 0.0), 1.0)
                if drawdown >= max_dd:
                    return run, r
        equity_f = float(equity)
        if last_f is not None and last_f > 0:
            value = equity_f / last_f - 1.0
            if len(recent) == size and recent[0] < 0.0:
                negatives -= 1
            recent.append(value)
            appended.append(value)
            if value < 0.0:
                negatives += 1
        last_f = equity_f
        marks_count += 1
        if marks_count % var_every == 0:
            over = negatives > 0 and _var99_over(recent, var_limit)
            if over and not var_alerted:
                return run, r
            var_alerted = over
            var_point = len(appended)
    run.peak = peak
    run.day = day
    run.day_start_equity = day_start
    run.daily_floor = floor
    run.daily_loss_hit = hit
    run.last_equity = last_f
    run.marks_count = marks_count
    run.var_point = var_point
    run.var_alerted = var_alerted
    run.breaker = (breaker_peak, breaker_floor)
    run.rows = len(days)
    return run, None


def apply(engine: RiskEngine, run: Run) -> None:
    """Write the state ``run`` reached into ``engine`` (see :func:`simulate`)."""
    column = run.column
    assert isinstance(column, CandleColumn)
    for key, row in run.last_rows.items():
        engine.last_price[key] = column.close_decimal(row)
    portfolio = engine.portfolio
    for (key, position), mark in zip(list(portfolio.positions.items()), run.marks, strict=True):
        if key in run.last_rows:
            portfolio.positions[key] = position.with_mark(mark)
    portfolio.peak_equity = run.peak
    engine._day = None if run.day is None else EPOCH_DATE + timedelta(days=run.day)
    engine._day_start_equity = run.day_start_equity
    engine._daily_floor = run.daily_floor
    engine._daily_loss_hit = run.daily_loss_hit
    returns = engine.returns
    window = returns.returns
    before = list(window) if run.var_point is not None else []
    window.extend(run.appended)
    returns._last = run.last_equity
    engine._marks = run.marks_count
    engine._var_alerted = run.var_alerted
    engine._breaker_peak, engine._breaker_floor = run.breaker
    if run.var_point is not None:
        size = window.maxlen or 0
        at_point = (before + run.appended[: run.var_point])[-size:] if size else []
        var95, cvar95 = historical_var(at_point, 0.95)
        var99, cvar99 = historical_var(at_point, 0.99)
        engine.var = VarFigures(var95, cvar95, var99, cvar99)
