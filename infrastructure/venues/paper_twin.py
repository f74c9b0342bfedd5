"""The paper venue over quiet candles: where :meth:`PaperVenue.on_candle` must run, and its exact effect
where it changes nothing visible (no fill, no protective exit).

For a block of candles (a :class:`~core.columns.CandleColumn`), :func:`next_wake` finds the first
candle on which the venue could fill or fire: a candle of a symbol with an open order, or one whose
range could touch a protective level. Levels are compared in floats with the column's arrays, which
is conservative: ``float()`` of a Decimal is monotonic, so a candle that touches a fixed level in
Decimal touches it in floats too (trailing levels, computed in floats, get a 1e-9 margin). A candle
woken for nothing is harmless: the venue then runs its own exact check. :func:`skip` applies the
quiet candles: each symbol's last close time, protections whose position is gone dropped (OCO),
trailing stops' high/low-water marks moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from core.clock import ms_from_utc
from core.columns import CandleColumn, Column, utc_from_ms
from core.trading.fillmodel import Bar
from core.trading.protective import ProtectiveLevels
from core.trading.quiet import rows_by_key

if TYPE_CHECKING:
    from infrastructure.venues.paper import PaperVenue, _Protection

Rows = NDArray[np.intp]
MARGIN = 1e-9
"""Relative margin of trailing levels computed in floats."""
ZERO = Decimal(0)


def _us(value: object) -> int:
    """Microseconds since the epoch of a datetime."""
    from datetime import datetime

    assert isinstance(value, datetime)
    delta = value - utc_from_ms(0)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _effective(venue: PaperVenue, column: CandleColumn, symbol: str, rows: Rows) -> Rows:
    """The rows the venue does not ignore as replays (close time after the symbol's last one)."""
    last = venue._last_close.get(symbol)
    floor = np.int64(ms_from_utc(last)) if last is not None else np.iinfo(np.int64).min
    if column.single_series:  # one series: close times increase, the replays are a prefix
        return rows[int(column.close_ms[rows].searchsorted(floor, side="right")) :]
    close_ms = column.close_ms[rows]
    before = np.empty_like(close_ms)
    if close_ms.shape[0]:
        before[0] = floor
        np.maximum.accumulate(close_ms[:-1], out=before[1:])
        np.maximum(before[1:], floor, out=before[1:])
    return rows[close_ms > before]


def _held(venue: PaperVenue, prot: _Protection) -> Decimal:
    net = venue._net.get(prot.symbol, ZERO)
    return net if prot.levels.long else -net


def _checked(column: CandleColumn, prot: _Protection, rows: Rows) -> Rows:
    """The rows on which the protection's levels are checked (open at or after it became active)."""
    active_us = _us(prot.active_from)
    return rows[column.open_ms[rows] * 1000 >= active_us]


def _touch(column: CandleColumn, prot: _Protection, rows: Rows) -> NDArray[np.bool_]:
    """Per row: could the row's range reach one of the protection's levels (conservative)."""
    levels = prot.levels
    low = column.low[rows]
    high = column.high[rows]
    n = rows.shape[0]
    stop = np.full(n, np.nan)
    if levels.stop_loss is not None:
        stop[:] = float(levels.stop_loss)
    if levels.trailing_pct is not None:
        factor = float(levels.trailing_pct) / 100.0
        best0 = float(levels.best_price) if levels.best_price is not None else np.nan
        if levels.long:
            seen = np.fmax.accumulate(np.concatenate(([best0], high[:-1]))) if n else high
            trail = seen * (1.0 - factor) * (1.0 + MARGIN)
            stop = np.fmax(stop, trail)
        else:
            seen = np.fmin.accumulate(np.concatenate(([best0], low[:-1]))) if n else low
            trail = seen * (1.0 + factor) * (1.0 - MARGIN)
            stop = np.fmin(stop, trail)
    touched = np.zeros(n, dtype=bool)
    has_stop = ~np.isnan(stop)
    tp = levels.take_profit
    if levels.long:
        touched |= has_stop & (low <= np.where(has_stop, stop, 0.0))
        if tp is not None:
            touched |= high >= float(tp)
    else:
        touched |= has_stop & (high >= np.where(has_stop, stop, 0.0))
        if tp is not None:
            touched |= low <= float(tp)
    return touched


def next_wake(venue: PaperVenue, column: Column, sids: Sequence[int], start: int, stop: int) -> int:
    """The first row in ``[start, stop)`` on which the venue could fill or fire (``stop`` if none)."""
    if venue.book is not None or venue.journal_path is not None or not isinstance(column, CandleColumn):
        return start  # a venue that saves its book (journal, PostgreSQL): every candle goes through it
    if stop - start == 1:
        return start if _row_wakes(venue, column, sids, start) else stop
    if _short_run(venue, column, start, stop):
        return _next_wake_short(venue, column, sids, start, stop)
    by_key = rows_by_key(column, sids, start, stop)
    by_symbol: dict[str, Rows] = {}
    for (_, symbol), rows in by_key.items():
        by_symbol[symbol] = rows if symbol not in by_symbol else np.sort(np.concatenate((by_symbol[symbol], rows)))
    for symbol, coids in venue._open.items():
        open_rows = by_symbol.get(symbol)
        if coids and open_rows is not None:
            stop = min(stop, int(open_rows[0]))
    if venue.halted or not venue._protections:
        return stop
    effective: dict[str, Rows] = {}
    for prot in venue._protections:
        own = by_symbol.get(prot.symbol)
        if own is None:
            continue
        rows = own[own < stop]
        if not rows.shape[0]:
            continue
        known = effective.get(prot.symbol)
        if known is None:
            known = effective[prot.symbol] = _effective(venue, column, prot.symbol, rows)
        eff = known[known < stop]
        if not eff.shape[0] or _held(venue, prot) <= ZERO:
            continue  # dropped on its symbol's next candle: no output
        checked = _checked(column, prot, eff)
        if not checked.shape[0]:
            continue
        hits = np.flatnonzero(_touch(column, prot, checked))
        if hits.shape[0]:
            stop = min(stop, int(checked[hits[0]]))
    return stop


SHORT_RUN = 64
"""Up to this many rows of one series, :func:`next_wake` and :func:`skip` loop in plain Python over
the column's lists (numpy's per-call cost dominates short runs); the same decisions as the arrays."""


def _short_run(venue: PaperVenue, column: CandleColumn, start: int, stop: int) -> bool:
    """A short run of a one-series column with no trailing stop (whose water mark needs the arrays)."""
    return (
        column.single_series
        and stop - start <= SHORT_RUN
        and all(p.levels.trailing_pct is None for p in venue._protections)
    )


def _first_effective(venue: PaperVenue, close_ms: list[int], symbol: str, start: int, stop: int) -> int:
    """:func:`_effective` for one series (close times increase): the first row after the replays."""
    last = venue._last_close.get(symbol)
    if last is None:
        return start
    floor = ms_from_utc(last)
    i = start
    while i < stop and close_ms[i] <= floor:
        i += 1
    return i


def _next_wake_short(venue: PaperVenue, column: CandleColumn, sids: Sequence[int], start: int, stop: int) -> int:
    """:func:`next_wake` over a short run of a one-series column (see :func:`_short_run`)."""
    if 0 not in sids:
        return stop
    symbol = column.table[0].symbol
    if venue._open.get(symbol):
        return start
    if venue.halted or not venue._protections:
        return stop
    lists = column.lists()
    first = _first_effective(venue, lists.close_ms, symbol, start, stop)
    open_ms, low, high = lists.open_ms, lists.low, lists.high
    for prot in venue._protections:
        if prot.symbol != symbol or first >= stop or _held(venue, prot) <= ZERO:
            continue
        levels = prot.levels
        active_us = _us(prot.active_from)
        stop_f = float(levels.stop_loss) if levels.stop_loss is not None else None
        tp_f = float(levels.take_profit) if levels.take_profit is not None else None
        long = levels.long
        for i in range(first, stop):
            if open_ms[i] * 1000 < active_us:
                continue
            if long:
                if (stop_f is not None and low[i] <= stop_f) or (tp_f is not None and high[i] >= tp_f):
                    stop = i
                    break
            elif (stop_f is not None and high[i] >= stop_f) or (tp_f is not None and low[i] <= tp_f):
                stop = i
                break
    return stop


def _skip_short(venue: PaperVenue, column: CandleColumn, sids: Sequence[int], start: int, stop: int) -> None:
    """:func:`skip` over a short run of a one-series column (see :func:`_short_run`)."""
    if 0 not in sids:
        return
    symbol = column.table[0].symbol
    close_ms = column.lists().close_ms
    first = _first_effective(venue, close_ms, symbol, start, stop)
    if not venue.halted and venue._protections:
        venue._protections = [
            prot
            for prot in venue._protections
            if prot.symbol != symbol or first >= stop or _held(venue, prot) > ZERO  # else dropped (OCO)
        ]
    if first < stop:
        venue._last_close[symbol] = utc_from_ms(close_ms[stop - 1])


def _row_wakes(venue: PaperVenue, column: CandleColumn, sids: Sequence[int], i: int) -> bool:
    """:func:`next_wake` for the one row ``i`` (scalar: a delivered row asks this of every consumer)."""
    s = int(column.series[i])
    if s not in sids:
        return False
    symbol = column.table[s].symbol
    if venue._open.get(symbol):
        return True
    if venue.halted or not venue._protections:
        return False
    last = venue._last_close.get(symbol)
    close_ms = int(column.close_ms[i])
    if last is not None and close_ms <= ms_from_utc(last):
        return False  # a replay: ignored
    open_us = int(column.open_ms[i]) * 1000
    low, high = float(column.low[i]), float(column.high[i])
    for prot in venue._protections:
        if prot.symbol != symbol or _held(venue, prot) <= ZERO or open_us < _us(prot.active_from):
            continue
        levels = prot.levels
        stops = [float(levels.stop_loss)] if levels.stop_loss is not None else []
        if levels.trailing_pct is not None and levels.best_price is not None:
            factor = float(levels.trailing_pct) / 100.0
            best = float(levels.best_price)
            stops.append(
                best * (1.0 - factor) * (1.0 + MARGIN) if levels.long else best * (1.0 + factor) * (1.0 - MARGIN)
            )
        tp = float(levels.take_profit) if levels.take_profit is not None else None
        if levels.long:
            if (stops and low <= max(stops)) or (tp is not None and high >= tp):
                return True
        elif (stops and high >= min(stops)) or (tp is not None and low <= tp):
            return True
    return False


def skip(venue: PaperVenue, column: Column, sids: Sequence[int], start: int, stop: int) -> None:
    """Apply the quiet rows ``[start, stop)`` (see the module docstring)."""
    assert isinstance(column, CandleColumn)
    if stop - start == 1:
        _skip_row(venue, column, sids, start)
        return
    if _short_run(venue, column, start, stop):
        _skip_short(venue, column, sids, start, stop)
        return
    by_key = rows_by_key(column, sids, start, stop)
    by_symbol: dict[str, Rows] = {}
    for (_, symbol), rows in by_key.items():
        by_symbol[symbol] = rows if symbol not in by_symbol else np.sort(np.concatenate((by_symbol[symbol], rows)))
    effective = {symbol: _effective(venue, column, symbol, rows) for symbol, rows in by_symbol.items()}
    if not venue.halted and venue._protections:
        keep = []
        for prot in venue._protections:
            eff = effective.get(prot.symbol)
            if eff is None or not eff.shape[0]:
                keep.append(prot)
                continue
            if _held(venue, prot) <= ZERO:
                continue  # the position it protected is gone: dropped (OCO)
            if prot.levels.trailing_pct is not None:
                checked = _checked(column, prot, eff)
                if checked.shape[0]:
                    prot.levels = _after(column, prot, checked)
            keep.append(prot)
        venue._protections = keep
    for symbol, eff in effective.items():
        if eff.shape[0]:
            venue._last_close[symbol] = utc_from_ms(int(column.close_ms[eff[-1]]))


def _skip_row(venue: PaperVenue, column: CandleColumn, sids: Sequence[int], i: int) -> None:
    """:func:`skip` of the one row ``i``: exactly what :meth:`PaperVenue.on_candle` does on it."""
    s = int(column.series[i])
    if s not in sids:
        return
    symbol = column.table[s].symbol
    last = venue._last_close.get(symbol)
    close_ms = int(column.close_ms[i])
    if last is not None and close_ms <= ms_from_utc(last):
        return
    if not venue.halted and venue._protections:
        open_us = int(column.open_ms[i]) * 1000
        keep = []
        bar = None
        for prot in venue._protections:
            if prot.symbol != symbol:
                keep.append(prot)
                continue
            if _held(venue, prot) <= ZERO:
                continue
            if open_us >= _us(prot.active_from) and prot.levels.trailing_pct is not None:
                if bar is None:
                    o, h, low, c, v = column.exact(i)
                    bar = Bar(o, h, low, c, v)
                prot.levels = prot.levels.after(bar)
            keep.append(prot)
        venue._protections = keep
    venue._last_close[symbol] = utc_from_ms(close_ms)


def _after(column: CandleColumn, prot: _Protection, rows: Rows) -> ProtectiveLevels:
    """``levels.after(bar)`` over ``rows`` in order: the trailing high (long) or low (short) water mark."""
    levels = prot.levels
    values = column.high[rows] if levels.long else column.low[rows]
    extreme = float(values.max()) if levels.long else float(values.min())
    best = levels.best_price
    # the Decimal extreme: the first row whose exact value is the extreme (max() keeps the first)
    for i in rows[values == extreme].tolist():
        exact = column.exact(i)
        value = exact[1] if levels.long else exact[2]
        if best is None:
            best = value
        elif levels.long:
            best = max(best, value)
        else:
            best = min(best, value)
    return replace(levels, best_price=best)
