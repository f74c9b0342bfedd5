"""Exact bulk steps over quiet candles (rows of a :class:`~core.columns.CandleColumn` no consumer must
receive): what marking a :class:`~core.trading.portfolio.Portfolio` at every one of them does, done at
once. Pure; proven equal to the per-candle form by property tests (``tests/kernel``).

The trick used throughout: ``float()`` of a Decimal is correctly rounded, hence monotonic, so float
arithmetic over the column's arrays finds the few rows where an exact answer could be decided (the
candidates for a new equity peak), and only those are computed in Decimal, in the same operations and
order as the per-candle path.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from core.columns import CandleColumn
from core.trading.portfolio import ZERO, Portfolio, Position

Key = tuple[str, str]
Rows = NDArray[np.intp]

TOLERANCE = 1e-9
"""Relative slack of float equities when they pick candidate rows (float error is ~1e-15)."""


def rows_by_key(column: CandleColumn, sids: Sequence[int], start: int, stop: int) -> dict[Key, Rows]:
    """The rows in ``[start, stop)`` of each (venue, symbol) among the series ``sids`` (several
    timeframes of one symbol merged in row order)."""
    out: dict[Key, list[Rows]] = {}
    for s in sids:
        rows = column.rows_between(s, start, stop)
        if rows.shape[0]:
            info = column.table[s]
            out.setdefault((info.venue, info.symbol), []).append(rows)
    return {key: parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts)) for key, parts in out.items()}


def mark_row(portfolio: Portfolio, column: CandleColumn, i: int) -> None:
    """:meth:`Portfolio.mark` at row ``i``'s close (the one-row case of :func:`mark_quiet`)."""
    info = column.table[int(column.series[i])]
    if (info.venue, info.symbol) in portfolio.positions:
        portfolio.mark(info.venue, info.symbol, column.close_decimal(i))


SHORT_RUN = 64
"""Up to this many rows of a one-series column, :func:`mark_run` loops in plain Python."""


def mark_run(portfolio: Portfolio, column: CandleColumn, sids: Sequence[int], start: int, stop: int) -> None:
    """:func:`mark_quiet` over the rows of ``sids`` in ``[start, stop)``: a short run of a one-series
    column is decided in plain Python over the column's lists (the same candidates, the same Decimals),
    anything else with the arrays."""
    if not (column.single_series and stop - start <= SHORT_RUN):
        mark_quiet(portfolio, column, rows_by_key(column, sids, start, stop))
        return
    if 0 not in sids or start >= stop:
        return
    info = column.table[0]
    key = (info.venue, info.symbol)
    position = portfolio.positions.get(key)
    if position is None:
        return
    if position.quantity != ZERO:
        _raise_peak_short(portfolio, column, key, start, stop)
    portfolio.positions[key] = position.with_mark(column.close_decimal(stop - 1))


def _raise_peak_short(portfolio: Portfolio, column: CandleColumn, key: Key, start: int, stop: int) -> None:
    """:func:`_raise_peak` for the rows ``[start, stop)`` of the one series of ``column`` (symbol ``key``)."""
    positions = portfolio.positions
    cash_f = float(portfolio.cash)
    base = cash_f
    scale = abs(cash_f)
    for other, position in positions.items():
        if other != key and position.quantity != ZERO:
            value = float(position.quantity) * float(_mark_of(position))
            base += value
            scale += abs(value)
    q_f = float(positions[key].quantity)
    closes = column.lists().close[start:stop]
    equity_f = [base + q_f * c for c in closes]
    scale += max(abs(q_f * c) for c in closes)
    top = max(equity_f)
    peak = portfolio.peak_equity
    tol = TOLERANCE * max(scale, 1e-300)
    if top < float(peak) - tol:
        return
    cash = portfolio.cash
    for j, value in enumerate(equity_f):
        if value < top - tol:
            continue
        total = ZERO
        for other, position in positions.items():
            mark = column.close_decimal(start + j) if other == key else _mark_of(position)
            total += position.quantity * mark
        peak = max(peak, cash + total)
    portfolio.peak_equity = peak


def mark_quiet(portfolio: Portfolio, column: CandleColumn, by_key: dict[Key, Rows]) -> None:
    """:meth:`Portfolio.mark` at the close of every row of ``by_key`` (in row order), exactly: the
    positions end marked at their symbol's last close and the peak equity is the one the per-candle
    marks reach (the same Decimal)."""
    positions = portfolio.positions
    touched = [key for key in by_key if key in positions]
    if not touched:
        return
    moving = [key for key in touched if positions[key].quantity != ZERO]
    if moving:
        _raise_peak(portfolio, column, by_key, moving)
    for key in touched:
        last = int(by_key[key][-1])
        positions[key] = positions[key].with_mark(column.close_decimal(last))


def _mark_of(position: Position) -> Decimal:
    return position.mark_price if position.mark_price is not None else position.average_price


def _raise_peak(portfolio: Portfolio, column: CandleColumn, by_key: dict[Key, Rows], moving: list[Key]) -> None:
    """The peak after marking the open positions of ``moving`` at each of their rows."""
    positions = portfolio.positions
    rows = by_key[moving[0]] if len(moving) == 1 else np.sort(np.concatenate([by_key[k] for k in moving]))
    close = column.close
    cash_f = float(portfolio.cash)
    equity_f = np.full(rows.shape[0], cash_f)
    scale = abs(cash_f)
    marks_at: dict[Key, NDArray[np.intp]] = {}
    for key, position in positions.items():
        own = by_key.get(key)
        at = None
        if own is not None:
            at = own.searchsorted(rows, side="right") - 1  # this key's last row at or before each row
            marks_at[key] = at
        q = position.quantity
        if q == ZERO:
            continue
        q_f = float(q)
        if own is None or at is None:
            value = q_f * float(_mark_of(position))
            equity_f += value
            scale += abs(value)
            continue
        marks = np.where(at >= 0, close[own[np.maximum(at, 0)]], float(_mark_of(position)))
        equity_f += q_f * marks
        scale += float(np.max(np.abs(q_f * marks)))
    top = float(np.max(equity_f))
    peak = portfolio.peak_equity
    tol = TOLERANCE * max(scale, 1e-300)
    if top < float(peak) - tol:
        return
    candidates = np.flatnonzero(equity_f >= top - tol).tolist()
    cash = portfolio.cash
    for j in candidates:
        total = ZERO
        for key, position in positions.items():
            at = marks_at.get(key)
            if at is not None and at[j] >= 0:
                mark = column.close_decimal(int(by_key[key][at[j]]))
            else:
                mark = _mark_of(position)
            total += position.quantity * mark
        peak = max(peak, cash + total)
    portfolio.peak_equity = peak
