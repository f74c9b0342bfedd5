"""The strategy interface: small, versioned and pure (no I/O).

A strategy is a class with

* ``name`` (the id used in settings, votes and intents) and ``version``;
* ``Params``: a frozen pydantic model (``extra="forbid"``) validated at start-up;
* ``indicators``: the snapshot value names it reads (the agent skips it while one is missing);
* ``vote(snapshot, position)``: a :class:`~core.messages.StrategyVote` or ``None`` (no opinion).

One instance serves ONE (venue, symbol, timeframe) series, so a strategy may keep small state
between snapshots (the previous fast/slow average of a crossover). ``vote`` must not look ahead: it
sees the snapshot of the candle that just closed and nothing later.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from core.domain import Direction
from core.messages import IndicatorSnapshot, StrategyVote


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: frozen, unknown keys rejected, no NaN/inf."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class Position:
    """The current position of the series' symbol as the strategy agent knows it (signed quantity)."""

    quantity: Decimal = Decimal(0)

    @property
    def is_flat(self) -> bool:
        """No position."""
        return self.quantity == 0

    @property
    def is_long(self) -> bool:
        """A long position."""
        return self.quantity > 0

    @property
    def is_short(self) -> bool:
        """A short position."""
        return self.quantity < 0


FLAT = Position()
"""No position."""

P = TypeVar("P", bound=StrategyParams)


class Strategy(ABC, Generic[P]):
    """Base class of strategies (see the module docstring). Subclasses set ``name``, ``version``,
    ``Params`` and implement :attr:`indicators` and :meth:`vote`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Params: ClassVar[type[StrategyParams]]

    def __init__(self, params: P) -> None:
        self.params = params

    @property
    @abstractmethod
    def indicators(self) -> tuple[str, ...]:
        """The snapshot value names this strategy reads (``sma_10``, ``rsi_14``...)."""

    @abstractmethod
    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """The strategy's opinion after this closed candle, or ``None`` for no opinion."""

    def make_vote(
        self,
        snapshot: IndicatorSnapshot,
        direction: Direction,
        score: float,
        confidence: float,
        rationale: str,
    ) -> StrategyVote:
        """Build this strategy's vote on ``snapshot`` (score is clamped to 0..100, confidence to 0..1)."""
        return StrategyVote(
            strategy=self.name,
            strategy_version=self.version,
            venue=snapshot.venue,
            symbol=snapshot.symbol,
            timeframe=snapshot.timeframe,
            direction=direction,
            score=min(100.0, max(0.0, score)),
            confidence=min(1.0, max(0.0, confidence)),
            rationale=rationale[:2000],
        )


def clamp(value: float, low: float, high: float) -> float:
    """``value`` limited to ``[low, high]``."""
    return min(high, max(low, value))
