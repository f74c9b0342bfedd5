"""Historical Value-at-Risk and Conditional VaR (expected shortfall) from a window of returns."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VarFigures:
    """Loss fractions (positive numbers) at 95% and 99%."""

    var95: float
    cvar95: float
    var99: float
    cvar99: float


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


class ReturnWindow:
    """The last ``size`` equity returns."""

    def __init__(self, size: int) -> None:
        self.returns: deque[float] = deque(maxlen=size)
        self._last: float | None = None

    def add_equity(self, equity: float) -> None:
        """Record a new equity value (the return from the previous one is kept)."""
        if self._last is not None and self._last > 0:
            self.returns.append(equity / self._last - 1.0)
        self._last = equity

    def figures(self) -> VarFigures:
        """VaR and CVaR at 95% and 99%."""
        data = list(self.returns)
        var95, cvar95 = historical_var(data, 0.95)
        var99, cvar99 = historical_var(data, 0.99)
        return VarFigures(var95, cvar95, var99, cvar99)
