"""Historical Value-at-Risk and Conditional VaR (expected shortfall).

Returns are kept per series, keyed by ``(venue, symbol, timeframe)``: one window of close-to-close
returns per series, so a window never mixes symbols or horizons. The portfolio figure is a
historical simulation of the *current* positions at one horizon (a timeframe): scenario ``j`` is
``sum(w_s * r_s[j])`` over the open positions, ``w_s`` the signed position value over equity and
``r_s[j]`` the ``j``-th most recent return of the symbol's series at that timeframe (series of one
timeframe close together, so the ``j``-th most recent returns are the same periods).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

SeriesKey = tuple[str, str, str]
"""``(venue, symbol, timeframe)``."""


@dataclass(frozen=True, slots=True)
class VarFigures:
    """Loss fractions (positive numbers) at 95% and 99%, at the horizon of ``timeframe``."""

    var95: float
    cvar95: float
    var99: float
    cvar99: float
    timeframe: str = ""
    scenarios: int = 0


def historical_var(returns: Sequence[float], level: float) -> tuple[float, float]:
    """``(VaR, CVaR)`` at ``level`` (e.g. 0.99) as positive loss fractions of equity."""
    if not returns:
        return 0.0, 0.0
    ordered = sorted(returns)
    tail_count = max(1, math.ceil(len(ordered) * (1 - level)))
    tail = ordered[:tail_count]
    var = -tail[-1]
    cvar = -sum(tail) / len(tail)
    return max(var, 0.0), max(cvar, 0.0)


def _tail(ordered: Sequence[float], level: float) -> tuple[float, float]:
    tail_count = max(1, math.ceil(len(ordered) * (1 - level)))
    tail = ordered[:tail_count]
    return max(-tail[-1], 0.0), max(-sum(tail) / tail_count, 0.0)


def figures_of(returns: Sequence[float], timeframe: str = "") -> VarFigures:
    """VaR and CVaR at 95% and 99% of one return sample (the same as :func:`historical_var`, one sort)."""
    if not returns:
        return VarFigures(0.0, 0.0, 0.0, 0.0, timeframe, 0)
    ordered = sorted(returns)
    var95, cvar95 = _tail(ordered, 0.95)
    var99, cvar99 = _tail(ordered, 0.99)
    return VarFigures(var95, cvar95, var99, cvar99, timeframe, len(returns))


class ReturnWindow:
    """The last ``size`` close-to-close returns of one series."""

    __slots__ = ("_last", "returns")

    def __init__(self, size: int) -> None:
        self.returns: deque[float] = deque(maxlen=size)
        self._last: float | None = None

    def add_price(self, price: float) -> None:
        """Record a new close (the return from the previous close is kept)."""
        last = self._last
        if last is not None and last > 0:
            self.returns.append(price / last - 1.0)
        self._last = price

    def figures(self, timeframe: str = "") -> VarFigures:
        """VaR and CVaR at 95% and 99% of this series alone."""
        return figures_of(list(self.returns), timeframe)


def portfolio_figures(
    weights: Mapping[tuple[str, str], float],
    windows: Mapping[SeriesKey, ReturnWindow],
    min_returns: int,
) -> VarFigures | None:
    """The historical-simulation VaR of positions ``weights`` (``(venue, symbol)`` -> signed value /
    equity) at every timeframe where each position's series holds at least ``min_returns`` returns;
    the worst (highest 99% VaR) horizon is returned, ``None`` when no horizon qualifies. No open
    position is no risk: zero figures."""
    if not weights:
        return VarFigures(0.0, 0.0, 0.0, 0.0)
    timeframes = sorted({tf for (_, _, tf) in windows})
    worst: VarFigures | None = None
    for tf in timeframes:
        series: list[tuple[float, ReturnWindow]] = []
        for (venue, symbol), w in weights.items():
            window = windows.get((venue, symbol, tf))
            if window is None or len(window.returns) < min_returns:
                break
            series.append((w, window))
        if len(series) < len(weights):
            continue
        n = min(len(window.returns) for _, window in series)
        w0, first = series[0]
        scenarios = [w0 * r for r in islice(first.returns, len(first.returns) - n, None)]
        for w, window in series[1:]:
            recent = islice(window.returns, len(window.returns) - n, None)
            scenarios = [s + w * r for s, r in zip(scenarios, recent, strict=True)]
        figures = figures_of(scenarios, tf)
        if worst is None or figures.var99 > worst.var99:
            worst = figures
    return worst
