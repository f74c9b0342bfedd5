"""``macd_momentum``: the MACD histogram changing sign (MACD crossing its signal line).

* histogram turns positive: LONG when flat, EXIT when short;
* histogram turns negative: EXIT when long, SHORT when flat and ``allow_short``.

The score grows with the histogram's size relative to the close (``min_score`` at 0, 100 at
``full_scale_pct`` percent of the price).
"""

from __future__ import annotations

from pydantic import Field

from core.domain import Direction
from core.messages import IndicatorSnapshot, StrategyVote
from strategies.base import (
    Columns,
    Position,
    Strategy,
    StrategyParams,
    VoteRows,
    clamp,
    last_nonzero,
    last_nonzero_before,
    rows_where,
)


class MacdParams(StrategyParams):
    """Scoring of a MACD momentum turn."""

    min_score: float = Field(default=76.0, ge=0, le=100)
    full_scale_pct: float = Field(default=0.5, gt=0, le=100)
    confidence: float = Field(default=0.7, ge=0, le=1)
    allow_short: bool = False


class MacdMomentum(Strategy[MacdParams]):
    """MACD histogram sign change (see the module docstring)."""

    name = "macd_momentum"
    version = "1"
    Params = MacdParams

    def __init__(self, params: MacdParams) -> None:
        super().__init__(params)
        self._last_nonzero = 0.0

    @property
    def indicators(self) -> tuple[str, ...]:
        """The MACD histogram."""
        return ("macd_hist",)

    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """Vote on a sign change of the histogram."""
        p = self.params
        hist = snapshot.values["macd_hist"]
        before = self._last_nonzero
        if hist != 0.0:
            self._last_nonzero = hist
        close = float(snapshot.close)
        strength = clamp(abs(hist) / close * 100 / p.full_scale_pct, 0.0, 1.0)
        score = p.min_score + (100 - p.min_score) * strength
        if before < 0.0 < hist:
            if position.is_flat:
                return self.make_vote(
                    snapshot, Direction.LONG, score, p.confidence, f"macd_hist turned positive {hist:.6g}"
                )
            if position.is_short:
                return self.make_vote(
                    snapshot, Direction.EXIT, score, p.confidence, f"macd_hist turned positive {hist:.6g}"
                )
        elif hist < 0.0 < before:
            if position.is_long:
                return self.make_vote(
                    snapshot, Direction.EXIT, score, p.confidence, f"macd_hist turned negative {hist:.6g}"
                )
            if position.is_flat and p.allow_short:
                return self.make_vote(
                    snapshot, Direction.SHORT, score, p.confidence, f"macd_hist turned negative {hist:.6g}"
                )
        return None

    def vote_rows(self, columns: Columns) -> VoteRows:
        """Turns positive vote when flat (LONG) or short (EXIT); turns negative when long (EXIT) or
        flat with ``allow_short`` (SHORT)."""
        hist = columns.values["macd_hist"]
        before = last_nonzero_before(hist, self._last_nonzero)
        up = (before[:-1] < 0.0) & (hist > 0.0)
        down = (hist < 0.0) & (before[:-1] > 0.0)
        flat = up | down if self.params.allow_short else up
        return VoteRows(rows_where(flat), rows_where(down), rows_where(up), before)

    def skip_rows(self, columns: Columns) -> None:
        """Remember the last non-zero histogram."""
        self._last_nonzero = last_nonzero(columns.values["macd_hist"], self._last_nonzero)

    def twin_state(self) -> float:
        """The last non-zero histogram."""
        return self._last_nonzero

    def set_twin_state(self, state: object) -> None:
        """Set the last non-zero histogram."""
        assert isinstance(state, float)
        self._last_nonzero = state
