"""The risk engine over quiet candles: :meth:`RiskEngine.on_candle` for a run of candles, in one step.

Marking to market raises an alert on some candles (daily loss limit, drawdown breaker tripped or
lifted, portfolio VaR above its limit); on all the others it only moves state: the last prices, the
marks and the peak equity, each series' window of close-to-close returns, the trading day and its
loss floor, the count of marks and the VaR figures. :func:`simulate` replays exactly that state over
a run of candles without touching the engine and stops at the first candle that would raise an
alert (the agent must be woken there); :func:`apply` writes the state it reached. The same Decimal and
float operations as the per-candle path are used, in the same order, so the state is identical
(``tests/kernel`` proves it on random series, flat and in a position, with every recovery rule).
With volatility sizing (an ATR per candle) there is no twin: the agent is woken on every candle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from agents.risk.var import ReturnWindow, SeriesKey, VarFigures, portfolio_figures
from core.columns import CandleColumn, Column
from core.trading.portfolio import ZERO, Position
from core.trading.quiet import TOLERANCE

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
    last_rows: dict[Key, int] = field(default_factory=dict)
    marks: list[Decimal] = field(default_factory=list)
    peak: Decimal = ZERO
    day: int | None = None
    day_start_equity: Decimal = ZERO
    daily_floor: Decimal = ZERO
    daily_loss_hit: bool = False
    returns: dict[SeriesKey, tuple[list[float], float]] = field(default_factory=dict)
    """Per series: the returns the run appends to its window and the last close (float)."""
    marks_count: int = 0
    var: VarFigures | None = None
    var_alerted: bool = False
    breaker: tuple[Decimal | None, Decimal] = (None, ZERO)

    def reached(
        self,
        peak: Decimal,
        day: int | None,
        day_start: Decimal,
        floor: Decimal,
        hit: bool,
        marks_count: int,
        var: VarFigures | None,
        var_alerted: bool,
    ) -> None:
        """Record the state the run reached (see :func:`apply`)."""
        self.peak = peak
        self.day = day
        self.day_start_equity = day_start
        self.daily_floor = floor
        self.daily_loss_hit = hit
        self.marks_count = marks_count
        self.var = var
        self.var_alerted = var_alerted


class _Window:
    """A series' return window as it stands inside a run (the engine's deque plus the appended)."""

    __slots__ = ("returns",)

    def __init__(self, returns: list[float]) -> None:
        self.returns = returns


def _rows(column: CandleColumn, sids: Sequence[int], start: int, stop: int) -> NDArray[np.intp]:
    parts = [column.rows_between(s, start, stop) for s in sids]
    parts = [p for p in parts if p.shape[0]]
    if not parts:
        return np.zeros(0, dtype=np.intp)
    return parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))


def _day_number(value: date | None) -> int | None:
    return None if value is None else (value - EPOCH_DATE).days


def _equity(cash: Decimal, quantities: list[Decimal], marks: list[Decimal]) -> Decimal:
    """``Portfolio.equity`` from its positions' quantities and marks (in the positions' order)."""
    total = ZERO
    for q, m in zip(quantities, marks, strict=True):
        total += q * m
    return cash + total


def _drawdown(equity: Decimal, peak: Decimal) -> float:
    """``Portfolio.drawdown_at``."""
    if peak <= ZERO:
        return 1.0
    return min(max(float(1 - equity / peak), 0.0), 1.0)


def _series_returns(
    engine: RiskEngine, column: CandleColumn, rows: NDArray[np.intp], keys: list[SeriesKey]
) -> dict[SeriesKey, tuple[list[float], float, NDArray[np.intp]]]:
    """Per series: the returns ``ReturnWindow.add_price`` appends over ``rows``, its last close and
    the rows (float arithmetic, vectorised: the same IEEE operations)."""
    out: dict[SeriesKey, tuple[list[float], float, NDArray[np.intp]]] = {}
    if rows.shape[0] == 1:  # a delivered row asks about itself: no numpy for one value
        r = int(rows[0])
        skey = keys[int(column.series[r])]
        close = float(column.close[r])
        window = engine.returns.get(skey)
        last = window._last if window is not None else None
        appended = [close / last - 1.0] if last is not None and last > 0 else []
        out[skey] = (appended, close, rows)
        return out
    if rows.shape[0] <= _SMALL_RUN:  # a short run: plain Python over the column's lists
        lists = column.lists()
        series_of, close_of = lists.series, lists.close
        found: dict[int, list[float]] = {}
        lasts: dict[int, float | None] = {}
        for r in rows.tolist():
            s = series_of[r]
            kept = found.get(s)
            if kept is None:
                window = engine.returns.get(keys[s])
                lasts[s] = window._last if window is not None else None
                kept = found[s] = []
            close = close_of[r]
            last = lasts[s]
            if last is not None and last > 0:
                kept.append(close / last - 1.0)
            lasts[s] = close
        for s, appended in found.items():
            last_close = lasts[s]
            assert last_close is not None
            out[keys[s]] = (appended, last_close, rows)  # (the rows: unused by the callers)
        return out
    if column.single_series:  # one series: no grouping
        groups = [(int(column.series[int(rows[0])]), rows)]
    else:
        series = column.series[rows]
        groups = [(s, rows[series == s]) for s in np.unique(series).tolist()]
    for s, own in groups:
        closes = column.close[own]
        window = engine.returns.get(keys[s])
        last = window._last if window is not None else None
        prices = closes if last is None else np.concatenate(([last], closes))
        ratios = prices[1:] / prices[:-1] - 1.0
        ok = prices[:-1] > 0  # add_price keeps a return only after a positive close
        out[keys[s]] = ((ratios[ok] if not ok.all() else ratios).tolist(), float(closes[-1]), own)
    return out


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
    marks: list[Decimal] = [p.mark for _, p in positions]
    run.marks = marks
    run.peak = peak = portfolio.peak_equity
    run.day = day = _day_number(engine._day)
    run.day_start_equity = day_start = engine._day_start_equity
    run.daily_floor = floor = engine._daily_floor
    run.daily_loss_hit = hit = engine._daily_loss_hit
    run.marks_count = marks_count = engine._marks
    run.var = var = engine.var
    run.var_alerted = var_alerted = engine._var_alerted
    run.breaker = breaker = (engine._breaker_peak, engine._breaker_floor)
    table = column.table
    skeys: list[SeriesKey] = [(info.venue, info.symbol, info.timeframe) for info in table]
    keys: list[Key] = [(info.venue, info.symbol) for info in table]
    tripped = engine.breaker_tripped
    open_any = any(q != ZERO for q in quantities)
    if open_any and not tripped:
        rows_in: Sequence[int] = (
            range(start, stop) if column.single_series else _rows(column, sids, start, stop).tolist()
        )
        guarded = _simulate_open(engine, column, rows_in, run, positions, quantities, skeys, keys)
        if guarded is not None:
            return run, guarded if guarded >= 0 else None
    rows = _rows(column, sids, start, stop)
    if not rows.shape[0]:
        return run, None
    per_series = _series_returns(engine, column, rows, skeys)
    cash = portfolio.cash
    equity = portfolio.equity
    limit = engine._daily_limit
    max_dd = engine._max_drawdown
    resume = engine._resume_level
    recovery = settings.drawdown_recovery
    max_pct = settings.max_drawdown_pct
    var_every = engine._var_every
    var_limit = settings.var_limit_pct
    if not open_any and not tripped:
        flat = _simulate_flat(engine, column, rows, run, keys, equity)
        if flat is not None:
            run.returns = {k: (r, last) for k, (r, last, _) in per_series.items()}
            return run, flat if flat >= 0 else None
    # the position of each row within its series (to know the returns window at a VaR point)
    done: dict[SeriesKey, int] = dict.fromkeys(per_series, 0)
    first_counted = {k: (1 if (w := engine.returns.get(k)) is not None and w._last is not None else 0)
                     for k in per_series}  # fmt: skip
    breaker_peak, breaker_floor = breaker
    days = (column.close_ms[rows] // DAY_MS).tolist()
    series_list = column.series[rows].tolist()
    last_rows = run.last_rows
    close_decimal = column.close_decimal
    for j, r in enumerate(rows.tolist()):
        s = series_list[j]
        key = keys[s]
        last_rows[key] = r
        done[skeys[s]] += 1
        k = index.get(key)
        if k is not None:
            marks[k] = close_decimal(r)
            if quantities[k] != ZERO:
                equity = _equity(cash, quantities, marks)
                peak = max(peak, equity)
        d = days[j]
        if d != day:
            day = d
            equity = _equity(cash, quantities, marks)  # the same Decimal as the per-candle path's
            if tripped and recovery == "next_day":
                return run, r  # the breaker lifts (an alert)
            day_start = equity
            floor = equity * (1 - limit)
            hit = False
        if not hit and equity <= floor:
            return run, r
        if tripped:
            if recovery == "recovered" and _drawdown(equity, peak) <= resume:
                return run, r
        elif equity < peak:
            surely_above = False
            if peak > ZERO:
                if peak is not breaker_peak:
                    breaker_peak = peak
                    breaker_floor = peak * (1 - max_pct + _BREAKER_MARGIN)
                surely_above = equity > breaker_floor
            if not surely_above and _drawdown(equity, peak) >= max_dd:
                return run, r
        marks_count += 1
        if marks_count % var_every == 0 and equity > ZERO:
            windows = _windows_at(engine, per_series, done, first_counted)
            figures = _var_figures(positions, quantities, marks, equity, windows)
            if figures is not None:
                var = figures
                over = figures.var99 > var_limit
                if over and not var_alerted:
                    return run, r
                var_alerted = over
    run.reached(peak, day, day_start, floor, hit, marks_count, var, var_alerted)
    run.breaker = (breaker_peak, breaker_floor)
    run.returns = {k: (r, last) for k, (r, last, _) in per_series.items()}
    return run, None


def _simulate_open(
    engine: RiskEngine,
    column: CandleColumn,
    rows: Sequence[int],
    run: Run,
    positions: list[tuple[Key, Position]],
    quantities: list[Decimal],
    skeys: list[SeriesKey],
    keys: list[Key],
) -> int | None:
    """:func:`_simulate` with a position open and the breaker not tripped, decided in floats with an
    exact guard. Returns the alert row, -1 for none, or None to let the exact row-by-row path decide
    (values beyond floats' range).

    The equity moves on every candle of an open position's symbol, and the per-candle path computes
    it in Decimal each time. Here each row's equity is a float (``float()`` of the Decimal closes is
    correctly rounded, so the float equity is within ~1e-15 of the exact one relative to the
    account's gross value); a rule is decided in Decimal, with the per-candle path's very operations,
    only on the rows where the float lands within :data:`TOLERANCE` of that rule's threshold: a
    possible new peak, the daily floor, the drawdown breaker. The rows where the per-candle path
    computes state from the equity (a new trading day: the day's start and floor; a VaR point: the
    weights) are computed in Decimal. Every other row moves only floats (the returns, the marks' rows).
    """
    lists = column.lists()
    series_of, close_of, day_of = lists.series, lists.close, lists.day
    close_decimal = column.close_decimal
    portfolio = engine.portfolio
    settings = engine.settings
    cash = portfolio.cash
    cash_f = float(cash)
    marks = run.marks
    index = {key: k for k, (key, _) in enumerate(positions)}
    moving = [q != ZERO for q in quantities]
    open_ks = [k for k, m in enumerate(moving) if m]
    q_f = [float(q) for q in quantities]
    marks_f = [float(m) for m in marks]
    mark_rows = [-1] * len(marks)  # the row of each position's newest mark not yet read as a Decimal

    def exact_equity() -> Decimal:
        for k, row in enumerate(mark_rows):
            if row >= 0:
                marks[k] = close_decimal(row)
                mark_rows[k] = -1
        return _equity(cash, quantities, marks)

    def float_equity() -> tuple[float, float]:
        total = cash_f
        scale = abs(cash_f)
        for k in open_ks:
            value = q_f[k] * marks_f[k]
            total += value
            scale += abs(value)
        return total, max(TOLERANCE * scale, 1e-300)

    equity_f, tol = float_equity()
    if not math.isfinite(equity_f) or not math.isfinite(tol):
        return None
    solo = open_ks[0] if len(open_ks) == 1 else -1
    solo_q = q_f[solo] if solo >= 0 else 0.0
    abs_cash = abs(cash_f)
    peak = run.peak
    peak_f = float(peak)
    day, day_start, floor, hit = run.day, run.day_start_equity, run.daily_floor, run.daily_loss_hit
    floor_f = float(floor)
    limit = engine._daily_limit
    max_dd = engine._max_drawdown
    var_every = engine._var_every
    var_limit = settings.var_limit_pct
    marks_count, var, var_alerted = run.marks_count, run.var, run.var_alerted
    last_rows = run.last_rows
    returns = engine.returns
    last_close: list[float | None] = [w._last if (w := returns.get(skey)) is not None else None for skey in skeys]
    appended: list[list[float]] = [[] for _ in skeys]
    seen = [False] * len(skeys)
    for r in rows:
        s = series_of[r]
        close = close_of[r]
        previous = last_close[s]
        if previous is not None and previous > 0:  # ReturnWindow.add_price
            appended[s].append(close / previous - 1.0)
        last_close[s] = close
        seen[s] = True
        key = keys[s]
        last_rows[key] = r
        k = index.get(key)
        if k is not None:
            mark_rows[k] = r
            marks_f[k] = close
            if moving[k]:
                if k == solo:  # float_equity() of the one open position, inlined
                    value = solo_q * close
                    equity_f = cash_f + value
                    tol = max(TOLERANCE * (abs_cash + abs(value)), 1e-300)
                else:
                    equity_f, tol = float_equity()
                if equity_f >= peak_f - tol:  # possibly a new peak: Portfolio._update_peak, exactly
                    peak = max(peak, exact_equity())
                    peak_f = float(peak)
        d = day_of[r]
        if d != day:
            day = d
            day_start = exact_equity()
            floor = day_start * (1 - limit)
            floor_f = float(floor)
            hit = False
        if not hit and equity_f <= floor_f + tol and exact_equity() <= floor:
            return r
        if equity_f < peak_f + tol and (peak_f <= tol or 1.0 - equity_f / peak_f >= max_dd - 4 * tol / peak_f - 1e-12):
            equity = exact_equity()
            if equity < peak and _drawdown(equity, peak) >= max_dd:
                return r
        marks_count += 1
        if marks_count % var_every == 0:
            equity = exact_equity()
            if equity > ZERO:
                figures = _var_figures(
                    positions, quantities, marks, equity, _windows_now(engine, skeys, appended, seen)
                )
                if figures is not None:
                    var = figures
                    over = figures.var99 > var_limit
                    if over and not var_alerted:
                        return r
                    var_alerted = over
    exact_equity()  # the marks as Decimals
    run.reached(peak, day, day_start, floor, hit, marks_count, var, var_alerted)
    run.returns = {skeys[s]: (appended[s], last) for s, last in enumerate(last_close) if seen[s] and last is not None}
    return -1


def _windows_now(
    engine: RiskEngine, skeys: list[SeriesKey], appended: list[list[float]], seen: list[bool]
) -> dict[SeriesKey, ReturnWindow | _Window]:
    """Every series' return window with the returns a run appended so far (:func:`_windows_at`)."""
    windows: dict[SeriesKey, ReturnWindow | _Window] = dict(engine.returns)
    size = engine.settings.var_window
    for s, new in enumerate(appended):
        if not seen[s]:
            continue
        skey = skeys[s]
        old = engine.returns.get(skey)
        base = list(islice(old.returns, max(0, len(old.returns) - (size - len(new))), None)) if old else []
        windows[skey] = _Window((base + new)[-size:] if size else [])
    return windows


def _var_figures(
    positions: list[tuple[Key, Position]],
    quantities: list[Decimal],
    marks: list[Decimal],
    equity: Decimal,
    windows: dict[SeriesKey, ReturnWindow | _Window],
) -> VarFigures | None:
    """``RiskEngine._portfolio_var`` at a VaR point of a run (positive ``equity``): the same weights."""
    weights = {
        pkey: float(q * marks[pk] / equity)
        for pk, ((pkey, _), q) in enumerate(zip(positions, quantities, strict=True))
        if q != ZERO
    }
    return portfolio_figures(weights, windows, engine_min_returns())  # type: ignore[arg-type]


def engine_min_returns() -> int:
    """The least returns a series needs for the portfolio VaR (the engine's constant)."""
    from agents.risk.engine import MIN_VAR_RETURNS

    return MIN_VAR_RETURNS


def _windows_at(
    engine: RiskEngine,
    per_series: dict[SeriesKey, tuple[list[float], float, NDArray[np.intp]]],
    done: dict[SeriesKey, int],
    first_counted: dict[SeriesKey, int],
) -> dict[SeriesKey, ReturnWindow | _Window]:
    """Every series' return window after the rows seen so far (``done`` rows of each series)."""
    windows: dict[SeriesKey, ReturnWindow | _Window] = dict(engine.returns)
    size = engine.settings.var_window
    for skey, (appended, _, _) in per_series.items():
        seen = done[skey]
        if not seen:
            continue
        # the returns appended after ``seen`` rows: one per row, except a first close with no previous
        count = seen - (0 if first_counted[skey] else 1)
        new = appended[: max(count, 0)]
        old = engine.returns.get(skey)
        base = list(islice(old.returns, max(0, len(old.returns) - (size - len(new))), None)) if old else []
        windows[skey] = _Window((base + new)[-size:] if size else [])
    return windows


def _simulate_flat(
    engine: RiskEngine, column: CandleColumn, rows: NDArray[np.intp], run: Run, keys: list[Key], equity: Decimal
) -> int | None:
    """:func:`_simulate` with no position open and the breaker not tripped: the equity is constant, so
    each rule is decided on the rows where its input changes (a new day); the portfolio VaR of no
    position is zero. Returns the alert row, -1 for none, or None to let the row-by-row path decide."""
    n = int(rows.shape[0])
    row_list: list[int] = rows.tolist()
    first_change, last_change, last_day = _day_changes(column, rows, row_list, run.day)
    day_start, floor, hit = run.day_start_equity, run.daily_floor, run.daily_loss_hit
    if first_change > 0 and not hit and equity <= floor:
        return row_list[0]
    if first_change < n:
        if equity <= equity * (1 - engine._daily_limit):
            return row_list[first_change]
        # the day's start as the per-candle path stores it: the equity at the last new day's row
        day_start = _equity_at(engine, column, rows[: last_change + 1], keys)
        floor = day_start * (1 - engine._daily_limit)
        hit = False
    breaker_peak, breaker_floor = run.breaker
    peak = run.peak
    if equity < peak:
        surely_above = False
        if peak > ZERO:
            if peak is not breaker_peak:
                breaker_peak = peak
                breaker_floor = peak * (1 - engine.settings.max_drawdown_pct + _BREAKER_MARGIN)
            surely_above = equity > breaker_floor
        if not surely_above and _drawdown(equity, peak) >= engine._max_drawdown:
            return row_list[0]
    var_every = engine._var_every
    first_point = (var_every - (run.marks_count + 1) % var_every) % var_every
    if first_point < n and equity > ZERO:
        run.var = VarFigures(0.0, 0.0, 0.0, 0.0)  # no open position is no risk
        run.var_alerted = False
    last_rows = run.last_rows
    if column.single_series:
        last_rows[keys[int(column.series[row_list[-1]])]] = row_list[-1]
    else:
        for k, r in zip(column.series[rows].tolist(), row_list, strict=True):
            last_rows[keys[k]] = r
    for k, key in enumerate(engine.portfolio.positions):
        row = last_rows.get(key)
        if row is not None:
            run.marks[k] = column.close_decimal(row)
    run.day = last_day
    run.day_start_equity = day_start
    run.daily_floor = floor
    run.daily_loss_hit = hit
    run.marks_count = run.marks_count + n
    run.breaker = (breaker_peak, breaker_floor)
    return -1


_SMALL_RUN = 16
"""Up to this many rows, :func:`_day_changes` loops in Python (numpy's per-call cost dominates)."""


def _day_changes(
    column: CandleColumn, rows: NDArray[np.intp], row_list: list[int], day: int | None
) -> tuple[int, int, int]:
    """Over ``rows`` (non-empty), the UTC day number of each close compared with the previous row's
    (the first with ``day``): ``(first position where it changes, last position where it changes, the
    last row's day)``; both positions are ``len(rows)`` when it never changes."""
    n = len(row_list)
    if n <= _SMALL_RUN:
        days_of = column.lists().day
        first = last = n
        prev = day if day is not None else -1
        for j, r in enumerate(row_list):
            d = days_of[r]
            if d != prev:
                if first == n:
                    first = j
                last = j
                prev = d
        return first, last, prev
    days = column.close_ms[rows] // DAY_MS
    before = np.empty_like(days)
    before[0] = day if day is not None else -1
    before[1:] = days[:-1]
    changes = np.flatnonzero(days != before)
    if not changes.shape[0]:
        return n, n, int(days[-1])
    return int(changes[0]), int(changes[-1]), int(days[-1])


def _equity_at(engine: RiskEngine, column: CandleColumn, rows: NDArray[np.intp], keys: list[Key]) -> Decimal:
    """The portfolio's equity after marking it at ``rows`` (the last row of each position's key)."""
    portfolio = engine.portfolio
    series = column.series[rows]
    quantities, marks = [], []
    for key, position in portfolio.positions.items():
        mark = position.mark
        sids = [s for s, k in enumerate(keys) if k == key]
        if sids:
            own = np.flatnonzero(np.isin(series, sids))
            if own.shape[0]:
                mark = column.close_decimal(int(rows[own[-1]]))
        quantities.append(position.quantity)
        marks.append(mark)
    return _equity(portfolio.cash, quantities, marks)


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
    for skey, (appended, last) in run.returns.items():
        window = engine.returns.get(skey)
        if window is None:
            window = engine.returns[skey] = ReturnWindow(engine.settings.var_window)
        window.returns.extend(appended)
        window._last = last
    engine._marks = run.marks_count
    engine.var = run.var
    engine._var_alerted = run.var_alerted
    engine._breaker_peak, engine._breaker_floor = run.breaker
