"""``regime_filter``: votes from the market-regime label of the snapshot.

* HIGH_VOLATILITY: FLAT (stand aside) with ``stand_aside_score``: in the consensus a FLAT vote counts
  against every entry, so this damps the other strategies;
* TRENDING_UP: LONG when flat (score ``50 + ADX``, capped at 100); EXIT when short;
* TRENDING_DOWN: EXIT when long; SHORT when flat and ``allow_short``;
* RANGING / UNKNOWN: no vote.
"""

from __future__ import annotations

from pydantic import Field

from core.columns import REGIME_CODE
from core.domain import Direction, MarketRegime
from core.messages import IndicatorSnapshot, StrategyVote
from strategies.base import Columns, Position, Strategy, StrategyParams, VoteRows, rows_where

_HIGH_VOL = REGIME_CODE[MarketRegime.HIGH_VOLATILITY]
_UP = REGIME_CODE[MarketRegime.TRENDING_UP]
_DOWN = REGIME_CODE[MarketRegime.TRENDING_DOWN]


class RegimeParams(StrategyParams):
    """The ADX period (to score trends) and the vote's confidence."""

    adx_period: int = Field(default=14, ge=2, le=5000)
    stand_aside_score: float = Field(default=80.0, ge=0, le=100)
    confidence: float = Field(default=0.5, ge=0, le=1)
    allow_short: bool = False


class RegimeFilter(Strategy[RegimeParams]):
    """Regime-driven votes (see the module docstring)."""

    name = "regime_filter"
    version = "1"
    Params = RegimeParams

    def __init__(self, params: RegimeParams) -> None:
        super().__init__(params)
        self._adx_key = f"adx_{params.adx_period}"

    @property
    def indicators(self) -> tuple[str, ...]:
        """The ADX (the regime label itself is always in the snapshot)."""
        return (self._adx_key,)

    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """Vote from the regime label."""
        p = self.params
        regime = snapshot.regime
        if regime is MarketRegime.HIGH_VOLATILITY:
            return self.make_vote(
                snapshot, Direction.FLAT, p.stand_aside_score, p.confidence, "high volatility: stand aside"
            )
        adx = snapshot.values[self._adx_key]
        score = min(100.0, 50.0 + adx)
        if regime is MarketRegime.TRENDING_UP:
            if position.is_flat:
                return self.make_vote(snapshot, Direction.LONG, score, p.confidence, f"trending up, ADX {adx:.1f}")
            if position.is_short:
                return self.make_vote(snapshot, Direction.EXIT, score, p.confidence, f"trending up, ADX {adx:.1f}")
        elif regime is MarketRegime.TRENDING_DOWN:
            if position.is_long:
                return self.make_vote(snapshot, Direction.EXIT, score, p.confidence, f"trending down, ADX {adx:.1f}")
            if position.is_flat and p.allow_short:
                return self.make_vote(snapshot, Direction.SHORT, score, p.confidence, f"trending down, ADX {adx:.1f}")
        return None

    def vote_rows(self, columns: Columns) -> VoteRows:
        """High volatility votes whatever the position; trending up when flat or short; trending
        down when long (or flat with ``allow_short``)."""
        regime = columns.regime
        high_vol = regime == _HIGH_VOL
        up = regime == _UP
        down = regime == _DOWN
        flat = high_vol | up | down if self.params.allow_short else high_vol | up
        return VoteRows(rows_where(flat), rows_where(high_vol | down), rows_where(high_vol | up))
