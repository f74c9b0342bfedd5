"""Moving-average crossovers: ``sma_cross`` and ``ema_cross``.

A crossing is detected on the close of the candle, with backtrader's ``CrossOver`` semantics (the
last NON-ZERO difference ``fast - slow`` before this candle had the other sign), so touching without
crossing is not a crossing and a crossing is never counted twice:

* fast crosses ABOVE slow: LONG when flat; EXIT when short;
* fast crosses BELOW slow: EXIT when long; SHORT when flat and ``allow_short``;
* otherwise: no vote.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator

from core.domain import Direction
from core.messages import IndicatorSnapshot, StrategyVote
from strategies.base import (
    Columns,
    Position,
    Strategy,
    StrategyParams,
    VoteRows,
    last_nonzero,
    last_nonzero_before,
    rows_where,
)


class CrossParams(StrategyParams):
    """Periods of the two moving averages and the vote's score and confidence."""

    fast: int = Field(default=10, ge=2, le=5000)
    slow: int = Field(default=30, ge=2, le=5000)
    score: float = Field(default=90.0, ge=0, le=100)
    confidence: float = Field(default=1.0, ge=0, le=1)
    allow_short: bool = False

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Self:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class _Crossover(Strategy[CrossParams]):
    prefix: ClassVar[str]
    Params = CrossParams

    def __init__(self, params: CrossParams) -> None:
        super().__init__(params)
        self._fast_key = f"{self.prefix}_{params.fast}"
        self._slow_key = f"{self.prefix}_{params.slow}"
        self._last_nonzero = 0.0

    @property
    def indicators(self) -> tuple[str, ...]:
        """The fast and slow averages."""
        return (self._fast_key, self._slow_key)

    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """LONG / EXIT / SHORT on a crossing of the two averages (see the module docstring)."""
        values = snapshot.values
        fast = values[self._fast_key]
        slow = values[self._slow_key]
        diff = fast - slow
        before = self._last_nonzero
        if diff != 0.0:
            self._last_nonzero = diff
        if before < 0.0 < diff:
            if position.is_flat:
                direction = Direction.LONG
            elif position.is_short:
                direction = Direction.EXIT
            else:
                return None
            word = "above"
        elif diff < 0.0 < before:
            if position.is_long:
                direction = Direction.EXIT
            elif position.is_flat and self.params.allow_short:
                direction = Direction.SHORT
            else:
                return None
            word = "below"
        else:
            return None
        p = self.params
        return self.make_vote(
            snapshot,
            direction,
            p.score,
            p.confidence,
            f"{self._fast_key} {fast:.6g} crossed {word} {self._slow_key} {slow:.6g}",
        )

    def vote_rows(self, columns: Columns) -> VoteRows:
        """Crossings above vote when flat (LONG) or short (EXIT); crossings below when long (EXIT) or
        flat with ``allow_short`` (SHORT)."""
        diff = columns.values[self._fast_key] - columns.values[self._slow_key]
        before = last_nonzero_before(diff, self._last_nonzero)
        up = (before[:-1] < 0.0) & (diff > 0.0)
        down = (diff < 0.0) & (before[:-1] > 0.0)
        flat = up | down if self.params.allow_short else up
        return VoteRows(rows_where(flat), rows_where(down), rows_where(up), before)

    def skip_rows(self, columns: Columns) -> None:
        """Remember the last non-zero difference."""
        diff = columns.values[self._fast_key] - columns.values[self._slow_key]
        self._last_nonzero = last_nonzero(diff, self._last_nonzero)

    def twin_state(self) -> float:
        """The last non-zero difference."""
        return self._last_nonzero

    def set_twin_state(self, state: object) -> None:
        """Set the last non-zero difference."""
        assert isinstance(state, float)
        self._last_nonzero = state


class SmaCross(_Crossover):
    """Fast simple moving average crossing the slow one."""

    name = "sma_cross"
    version = "1"
    prefix = "sma"


class EmaCrossParams(CrossParams):
    """EMA periods default to 12 and 26 (the TA agent's default EMA periods)."""

    fast: int = Field(default=12, ge=2, le=5000)
    slow: int = Field(default=26, ge=2, le=5000)


class EmaCross(_Crossover):
    """Fast exponential moving average crossing the slow one (defaults 12/26)."""

    name = "ema_cross"
    version = "1"
    prefix = "ema"
    Params = EmaCrossParams
