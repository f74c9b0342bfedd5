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

import heapq
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
    var_window: list[float] | None = None
    """The returns window at the run's last VaR point (None: no VaR point in the run)."""
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


def _var99_over(window: Sequence[float], limit: float) -> bool:
    """``historical_var(window, 0.99)[0] > limit`` (the k-th smallest return, exactly)."""
    n = len(window)
    if not n:
        return False
    k = _tail_count(n)
    kth = heapq.nsmallest(k, window)[-1]
    return max(-kth, 0.0) > limit


def _window(old: deque[float], appended: list[float], size: int) -> list[float]:
    """The last ``size`` returns of ``old`` followed by ``appended`` (the window after them)."""
    if len(appended) >= size:
        return appended[-size:]
    keep = size - len(appended)
    head = list(old)[-keep:] if keep < len(old) else list(old)
    return head + appended


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
    if not any(q != ZERO for q in quantities):
        return _simulate_flat(engine, column, rows, run, keys, equity)
    old = window  # not copied: the returns this run appends are kept apart (``appended``)
    var_every = engine._var_every
    var_limit = settings.var_limit_pct
    max_pct = settings.max_drawdown_pct
    appended = run.appended
    var_window: list[float] | None = None
    days = (column.close_ms[rows] // DAY_MS).tolist()
    last_rows = run.last_rows
    series_list = column.series[rows].tolist()
    close_decimal = column.close_decimal
    single = len(quantities) == 1
    for j, r in enumerate(rows.tolist()):
        key = keys[series_list[j]]
        last_rows[key] = r
        k = index.get(key)
        if k is not None:
            mark = marks[k] = close_decimal(r)
            if quantities[k] != ZERO:
                if single:
                    equity = cash + (ZERO + quantities[0] * mark)
                else:
                    total = ZERO
                    for q, m in zip(quantities, marks, strict=True):
                        total += q * m
                    equity = cash + total
                peak = max(peak, equity)
        d = days[j]
        if d != day:
            day = d
            equity = _equity(cash, quantities, marks)  # the same Decimal as the per-candle path's
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
            appended.append(equity_f / last_f - 1.0)
        last_f = equity_f
        marks_count += 1
        if marks_count % var_every == 0:
            current = _window(old, appended, size)
            over = _var99_over(current, var_limit)
            if over and not var_alerted:
                return run, r
            var_alerted = over
            var_window = current
    run.peak = peak
    run.day = day
    run.day_start_equity = day_start
    run.daily_floor = floor
    run.daily_loss_hit = hit
    run.last_equity = last_f
    run.marks_count = marks_count
    run.var_window = var_window
    run.var_alerted = var_alerted
    run.breaker = (breaker_peak, breaker_floor)
    run.rows = len(days)
    return run, None


def _equity(cash: Decimal, quantities: list[Decimal], marks: list[Decimal]) -> Decimal:
    """``Portfolio.equity`` from its positions' quantities and marks (in the positions' order)."""
    total = ZERO
    for q, m in zip(quantities, marks, strict=True):
        total += q * m
    return cash + total


def _equity_at(engine: RiskEngine, column: CandleColumn, rows: NDArray[np.intp], keys: list[Key]) -> Decimal:
    """The portfolio's equity after marking it at ``rows`` (the last row of each position's key)."""
    portfolio = engine.portfolio
    series = column.series[rows]
    quantities, marks = [], []
    for key, position in portfolio.positions.items():
        mark = position.mark_price if position.mark_price is not None else position.average_price
        sids = [s for s, k in enumerate(keys) if k == key]
        if sids:
            own = np.flatnonzero(np.isin(series, sids))
            if own.shape[0]:
                mark = column.close_decimal(int(rows[own[-1]]))
        quantities.append(position.quantity)
        marks.append(mark)
    return _equity(portfolio.cash, quantities, marks)


def _simulate_flat(
    engine: RiskEngine,
    column: CandleColumn,
    rows: NDArray[np.intp],
    run: Run,
    keys: list[Key],
    equity: Decimal,
) -> tuple[Run, int | None]:
    """:func:`_simulate` when no position is open: the equity is constant, so each rule is decided
    on the few rows where its inputs change (a new day, a VaR point) instead of row by row."""
    settings = engine.settings
    n = int(rows.shape[0])
    row_list = rows.tolist()
    days = column.close_ms[rows] // DAY_MS
    prev = np.empty_like(days)
    prev[0] = run.day if run.day is not None else -1
    prev[1:] = days[:-1]
    changes = np.flatnonzero(days != prev)
    day_start, floor, hit = run.day_start_equity, run.daily_floor, run.daily_loss_hit
    first_change = int(changes[0]) if changes.shape[0] else n
    # the daily floor: decided before the first new day with today's floor, and from then on with the
    # floor of the constant equity
    if first_change > 0 and not hit and equity <= floor:
        return run, row_list[0]
    if first_change < n:
        if equity <= equity * (1 - engine._daily_limit):
            return run, row_list[first_change]
        # the day's start as the per-candle path stores it: the equity at the last new day's row
        last_change = int(changes[-1])
        day_start = _equity_at(engine, column, rows[: last_change + 1], keys)
        floor = day_start * (1 - engine._daily_limit)
        hit = False
    # the drawdown breaker: the same answer on every row
    breaker_peak, breaker_floor = run.breaker
    peak = run.peak
    if engine.state is TradingState.ACTIVE and equity < peak:
        surely_above = False
        if peak > ZERO:
            if peak is not breaker_peak:
                breaker_peak = peak
                breaker_floor = peak * (1 - settings.max_drawdown_pct + _BREAKER_MARGIN)
            surely_above = equity > breaker_floor
        if not surely_above:
            drawdown = 1.0 if peak <= ZERO else min(max(float(1 - equity / peak), 0.0), 1.0)
            if drawdown >= engine._max_drawdown:
                return run, row_list[0]
    # the returns: the first against the last equity, then zeros (x / x - 1.0 == 0.0)
    window = engine.returns.returns
    size = window.maxlen or 0
    equity_f = float(equity)
    last_f = run.last_equity
    first: list[float] = [equity_f / last_f - 1.0] if last_f is not None and last_f > 0 else []
    zeros_per_row = equity_f > 0  # rows after the first append 0.0; a non-positive equity appends nothing
    appended = first + ([0.0] * min(n - 1, size) if zeros_per_row and n > 1 else [])
    old = list(window)

    def window_at(j: int) -> list[float]:
        """The returns window after row ``j``."""
        count = len(first) + (j if zeros_per_row else 0)
        new = first[:count] + [0.0] * max(0, min(count - len(first), size))
        return (old + new)[-size:]

    var_every = engine._var_every
    var_alerted = run.var_alerted
    var_window: list[float] | None = None
    j = (var_every - (run.marks_count + 1) % var_every) % var_every  # the first row that is a VaR point
    while j < n:
        current = window_at(j)
        last_point = j + ((n - 1 - j) // var_every) * var_every
        if not any(x < 0.0 for x in current):
            # no loss in the window (and none can come in while flat): VaR is zero from here on
            var_alerted = False
            var_window = window_at(last_point)
            break
        over = _var99_over(current, settings.var_limit_pct)
        if over and not var_alerted:
            return run, row_list[j]
        var_alerted = over
        var_window = current
        if not zeros_per_row:  # the window no longer moves: every later point decides the same
            break
        j += var_every
    last_rows = run.last_rows
    series_list = column.series[rows].tolist()
    for k, r in zip(series_list, row_list, strict=True):
        last_rows[keys[k]] = r
    for k, key in enumerate(engine.portfolio.positions):
        row = last_rows.get(key)
        if row is not None:
            run.marks[k] = column.close_decimal(row)
    run.day = int(days[-1])
    run.day_start_equity = day_start
    run.daily_floor = floor
    run.daily_loss_hit = hit
    run.appended = appended
    run.last_equity = equity_f
    run.marks_count = run.marks_count + n
    run.var_alerted = var_alerted
    run.var_window = var_window
    run.breaker = (breaker_peak, breaker_floor)
    run.rows = n
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
    returns.returns.extend(run.appended)
    returns._last = run.last_equity
    engine._marks = run.marks_count
    engine._var_alerted = run.var_alerted
    engine._breaker_peak, engine._breaker_floor = run.breaker
    if run.var_window is not None:
        at_point = run.var_window
        var95, cvar95 = historical_var(at_point, 0.95)
        var99, cvar99 = historical_var(at_point, 0.99)
        engine.var = VarFigures(var95, cvar95, var99, cvar99)
