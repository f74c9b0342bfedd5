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
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
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

F64 = NDArray[np.float64]
Rows = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Columns:
    """The snapshots of consecutive candles of one series as arrays (what a strategy's vectorised twin
    reads): ``values[name][i]`` as in row ``i``'s snapshot (every name the strategy reads is finite on
    every row given to it), ``close`` the float closes, ``regime`` each row's regime as a code
    (:data:`core.columns.REGIME_CODE`)."""

    values: Mapping[str, F64]
    close: F64
    regime: NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.close.shape[0])


@dataclass(frozen=True, slots=True)
class VoteRows:
    """Where :meth:`Strategy.vote` would vote, over the rows of a :class:`Columns`, by position kind.

    ``state_before[i]`` (stateful strategies) is what :meth:`Strategy.twin_state` must return before
    row ``i`` for these rows to hold (the state was computed from the strategy's state before row 0);
    it has one more entry, the state after the last row, so that skipping rows is setting a state
    (:meth:`Strategy.set_twin_state`).
    """

    flat: Rows
    long: Rows
    short: Rows
    state_before: NDArray[np.generic] | None = None

    def for_position(self, position: Position) -> Rows:
        """The rows that vote for ``position``'s kind."""
        if position.is_flat:
            return self.flat
        return self.long if position.is_long else self.short


def rows_where(mask: NDArray[np.bool_]) -> Rows:
    """Indices of the true entries."""
    return np.flatnonzero(mask)


def last_nonzero_before(series: F64, initial: float) -> F64:
    """For each row, the last non-zero value strictly before it (``initial`` when there is none),
    plus one entry after the last row: the state of a strategy that remembers its last non-zero
    difference (crossings)."""
    n = series.shape[0]
    idx = np.where(series != 0.0, np.arange(n), -1)
    before = np.empty(n + 1, dtype=np.intp)
    before[0] = -1
    np.maximum.accumulate(idx, out=before[1:])
    if not n:
        return np.array([initial])
    return np.where(before >= 0, series[np.maximum(before, 0)], initial)


def last_nonzero(series: F64, initial: float) -> float:
    """The last non-zero value of ``series`` (``initial`` when there is none)."""
    nz = np.flatnonzero(series != 0.0)
    return float(series[nz[-1]]) if nz.shape[0] else initial


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

    # -- the vectorised twin (optional): lets a backtest skip the snapshots that change nothing --

    def vote_rows(self, columns: Columns) -> VoteRows | None:
        """The rows of ``columns`` on which :meth:`vote` would return a vote, for each position kind,
        given the strategy's state now (before row 0); ``None`` when the strategy has no twin (every
        snapshot is then delivered). Must be exact: a row left out must be one where :meth:`vote`
        returns ``None`` (``tests/kernel`` checks each built-in strategy against :meth:`vote`)."""
        return None

    def skip_rows(self, columns: Columns) -> None:
        """Move the strategy's state over rows on which :meth:`vote` returned ``None`` (in order), as
        calling :meth:`vote` on each would. Stateless strategies do nothing."""

    def twin_state(self) -> object:
        """The state :meth:`vote_rows` depends on (compared with :attr:`VoteRows.state_before`)."""
        return None

    def set_twin_state(self, state: object) -> None:
        """Set the state :meth:`twin_state` returns (skipping rows of a :class:`VoteRows` with
        ``state_before``: the state before the next row). A strategy whose :meth:`vote_rows` returns
        ``state_before`` must implement it."""
        raise NotImplementedError(f"{type(self).__name__} returns state_before but has no set_twin_state")

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
