"""Bollinger Band strategies: ``bollinger_reversion`` (fade the bands) and ``bollinger_breakout``.

Reversion: flat and close below the lower band -> LONG; long and close at or above the middle band
-> EXIT (with ``allow_short``: close above the upper band -> SHORT, short and close at or below the
middle -> EXIT).

Breakout: flat and close above the upper band -> LONG; long and close below the middle band ->
EXIT (with ``allow_short``: close below the lower band -> SHORT, short and close above the middle
-> EXIT).

Entry scores grow with how far the close is beyond the band, in band widths (``min_score`` at the
band, 100 at ``full_scale`` half-widths beyond it).
"""

from __future__ import annotations

from pydantic import Field

from core.domain import Direction
from core.messages import IndicatorSnapshot, StrategyVote
from strategies.base import F64, Columns, Position, Strategy, StrategyParams, VoteRows, clamp, rows_where


class BollingerParams(StrategyParams):
    """Band period (must match the TA agent's ``bb_period``) and scoring."""

    period: int = Field(default=20, ge=2, le=5000)
    min_score: float = Field(default=76.0, ge=0, le=100)
    full_scale: float = Field(default=0.5, gt=0, le=10)
    exit_score: float = Field(default=80.0, ge=0, le=100)
    confidence: float = Field(default=0.7, ge=0, le=1)
    allow_short: bool = False


class _Bollinger(Strategy[BollingerParams]):
    Params = BollingerParams

    def __init__(self, params: BollingerParams) -> None:
        super().__init__(params)
        p = params.period
        self._keys = (f"bb_upper_{p}", f"bb_middle_{p}", f"bb_lower_{p}")

    @property
    def indicators(self) -> tuple[str, ...]:
        """The three bands."""
        return self._keys

    def _bands(self, snapshot: IndicatorSnapshot) -> tuple[float, float, float, float]:
        values = snapshot.values
        upper, middle, lower = (values[k] for k in self._keys)
        return float(snapshot.close), upper, middle, lower

    def _band_arrays(self, columns: Columns) -> tuple[F64, F64, F64, F64]:
        upper, middle, lower = (columns.values[k] for k in self._keys)
        return columns.close, upper, middle, lower

    def _entry_score(self, beyond: float, half_width: float) -> float:
        p = self.params
        strength = clamp(beyond / half_width / p.full_scale, 0.0, 1.0) if half_width > 0 else 1.0
        return p.min_score + (100 - p.min_score) * strength


class BollingerReversion(_Bollinger):
    """Fade moves outside the bands, exit at the mean (see the module docstring)."""

    name = "bollinger_reversion"
    version = "1"

    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """Vote on the close's position relative to the bands."""
        p = self.params
        close, upper, middle, lower = self._bands(snapshot)
        half = (upper - lower) / 2
        if position.is_flat:
            if close < lower:
                return self.make_vote(
                    snapshot,
                    Direction.LONG,
                    self._entry_score(lower - close, half),
                    p.confidence,
                    f"close {close:.6g} below lower band {lower:.6g}",
                )
            if close > upper and p.allow_short:
                return self.make_vote(
                    snapshot,
                    Direction.SHORT,
                    self._entry_score(close - upper, half),
                    p.confidence,
                    f"close {close:.6g} above upper band {upper:.6g}",
                )
        elif (position.is_long and close >= middle) or (position.is_short and close <= middle):
            return self.make_vote(
                snapshot,
                Direction.EXIT,
                p.exit_score,
                p.confidence,
                f"close {close:.6g} back at the middle band {middle:.6g}",
            )
        return None

    def vote_rows(self, columns: Columns) -> VoteRows:
        """Flat: below the lower band (or above the upper with ``allow_short``); long: at or above the
        middle; short: at or below the middle."""
        close, upper, middle, lower = self._band_arrays(columns)
        flat = close < lower
        if self.params.allow_short:
            flat |= close > upper
        return VoteRows(rows_where(flat), rows_where(close >= middle), rows_where(close <= middle))


class BollingerBreakout(_Bollinger):
    """Follow closes outside the bands, exit back inside the mean (see the module docstring)."""

    name = "bollinger_breakout"
    version = "1"

    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """Vote on the close's position relative to the bands."""
        p = self.params
        close, upper, middle, lower = self._bands(snapshot)
        half = (upper - lower) / 2
        if position.is_flat:
            if close > upper:
                return self.make_vote(
                    snapshot,
                    Direction.LONG,
                    self._entry_score(close - upper, half),
                    p.confidence,
                    f"close {close:.6g} broke above upper band {upper:.6g}",
                )
            if close < lower and p.allow_short:
                return self.make_vote(
                    snapshot,
                    Direction.SHORT,
                    self._entry_score(lower - close, half),
                    p.confidence,
                    f"close {close:.6g} broke below lower band {lower:.6g}",
                )
        elif position.is_long and close < middle:
            return self.make_vote(
                snapshot,
                Direction.EXIT,
                p.exit_score,
                p.confidence,
                f"close {close:.6g} fell below the middle band {middle:.6g}",
            )
        elif position.is_short and close > middle:
            return self.make_vote(
                snapshot,
                Direction.EXIT,
                p.exit_score,
                p.confidence,
                f"close {close:.6g} rose above the middle band {middle:.6g}",
            )
        return None

    def vote_rows(self, columns: Columns) -> VoteRows:
        """Flat: above the upper band (or below the lower with ``allow_short``); long: below the
        middle; short: above the middle."""
        close, upper, middle, lower = self._band_arrays(columns)
        flat = close > upper
        if self.params.allow_short:
            flat |= close < lower
        return VoteRows(rows_where(flat), rows_where(close < middle), rows_where(close > middle))
