"""``rsi_reversion``: buy oversold, leave overbought (mean reversion on RSI).

* flat and RSI < ``oversold``: LONG, score rising from 75 (at the level) to 100 (at RSI 0);
* long and RSI > ``overbought``: EXIT;
* with ``allow_short``: flat and RSI > ``overbought``: SHORT; short and RSI < ``oversold``: EXIT.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from core.domain import Direction
from core.messages import IndicatorSnapshot, StrategyVote
from strategies.base import Columns, Position, Strategy, StrategyParams, VoteRows, rows_where


class RsiParams(StrategyParams):
    """RSI period and the two levels."""

    period: int = Field(default=14, ge=2, le=5000)
    oversold: float = Field(default=30.0, gt=0, lt=100)
    overbought: float = Field(default=70.0, gt=0, lt=100)
    confidence: float = Field(default=0.8, ge=0, le=1)
    allow_short: bool = False

    @model_validator(mode="after")
    def _levels_ordered(self) -> Self:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be below overbought")
        return self


class RsiReversion(Strategy[RsiParams]):
    """RSI mean reversion (see the module docstring)."""

    name = "rsi_reversion"
    version = "1"
    Params = RsiParams

    def __init__(self, params: RsiParams) -> None:
        super().__init__(params)
        self._key = f"rsi_{params.period}"

    @property
    def indicators(self) -> tuple[str, ...]:
        """The RSI."""
        return (self._key,)

    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """LONG when oversold, EXIT when overbought (and the mirror when shorting)."""
        p = self.params
        rsi = snapshot.values[self._key]
        if rsi < p.oversold:
            depth = (p.oversold - rsi) / p.oversold
            if position.is_flat:
                return self.make_vote(
                    snapshot,
                    Direction.LONG,
                    75 + 25 * depth,
                    p.confidence,
                    f"{self._key} {rsi:.1f} < oversold {p.oversold:g}",
                )
            if position.is_short:
                return self.make_vote(
                    snapshot,
                    Direction.EXIT,
                    75 + 25 * depth,
                    p.confidence,
                    f"{self._key} {rsi:.1f} < oversold {p.oversold:g}: cover",
                )
        elif rsi > p.overbought:
            height = (rsi - p.overbought) / (100 - p.overbought)
            if position.is_long:
                return self.make_vote(
                    snapshot,
                    Direction.EXIT,
                    75 + 25 * height,
                    p.confidence,
                    f"{self._key} {rsi:.1f} > overbought {p.overbought:g}: take profit",
                )
            if position.is_flat and p.allow_short:
                return self.make_vote(
                    snapshot,
                    Direction.SHORT,
                    75 + 25 * height,
                    p.confidence,
                    f"{self._key} {rsi:.1f} > overbought {p.overbought:g}",
                )
        return None

    def vote_rows(self, columns: Columns) -> VoteRows:
        """Oversold votes when flat (LONG) or short (EXIT); overbought when long (EXIT) or flat with
        ``allow_short`` (SHORT)."""
        p = self.params
        rsi = columns.values[self._key]
        low = rsi < p.oversold
        high = rsi > p.overbought
        flat = low | high if p.allow_short else low
        return VoteRows(rows_where(flat), rows_where(high), rows_where(low))
