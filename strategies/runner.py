"""Running a set of strategies on one series, containing failures. Pure: no I/O.

A strategy that raises is contained: its vote is dropped, ``on_error(name, exc)`` is called (the
agent logs it and counts it in ``tradeswarm_strategy_errors_total``) and the others still vote.
A strategy whose indicators are not in the snapshot does not vote (``on_missing`` is called once
per strategy and series with the missing names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.messages import IndicatorSnapshot, StrategyVote
from strategies.base import Columns, Position, Rows, Strategy, VoteRows
from strategies.registry import StrategySpec

ErrorCallback = Callable[[str, BaseException], None]
MissingCallback = Callable[[str, tuple[str, ...]], None]


def _ignore_error(name: str, exc: BaseException) -> None:
    return None


def _ignore_missing(name: str, missing: tuple[str, ...]) -> None:
    return None


class StrategyBook:
    """The strategy instances of one (venue, symbol, timeframe) series."""

    def __init__(
        self,
        specs: Sequence[StrategySpec],
        on_error: ErrorCallback = _ignore_error,
        on_missing: MissingCallback = _ignore_missing,
    ) -> None:
        self._entries: list[tuple[str, Strategy[Any], tuple[str, ...]]] = []
        for spec in specs:
            instance = spec.create()
            self._entries.append((spec.name, instance, tuple(instance.indicators)))
        self._on_error = on_error
        self._on_missing = on_missing
        self._reported_missing: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        """The strategies, in configuration order."""
        return tuple(name for name, _, _ in self._entries)

    def evaluate(self, snapshot: IndicatorSnapshot, position: Position) -> list[StrategyVote]:
        """Every strategy's vote on ``snapshot`` (those without an opinion, failing or missing
        indicators are left out), in configuration order."""
        votes: list[StrategyVote] = []
        values = snapshot.values
        for name, strategy, needed in self._entries:
            for key in needed:
                if key not in values:
                    self._missing(name, needed, values)
                    break
            else:
                try:
                    vote = strategy.vote(snapshot, position)
                except Exception as exc:  # noqa: BLE001 - contain any strategy bug: drop its vote only
                    self._on_error(name, exc)
                    continue
                if vote is not None:
                    if vote.symbol != snapshot.symbol or vote.venue != snapshot.venue or vote.strategy != name:
                        self._on_error(name, ValueError("the vote does not belong to this strategy and snapshot"))
                        continue
                    votes.append(vote)
        return votes

    def _missing(self, name: str, needed: tuple[str, ...], values: dict[str, float]) -> None:
        if name in self._reported_missing:
            return
        self._reported_missing.add(name)
        self._on_missing(name, tuple(k for k in needed if k not in values))


class BookTwin:
    """The vectorised twin of :meth:`StrategyBook.evaluate` over consecutive snapshots of one series.

    ``columns`` holds the snapshots from the first one not yet applied to the book's strategies.
    :meth:`next_vote` finds the first row on which some strategy would vote (every row on which a
    strategy without a twin would be asked, see :meth:`Strategy.vote_rows`); :meth:`skip` applies
    quiet rows to the strategies' state exactly as evaluating them would. Rows where a strategy lacks
    one of its indicators do not reach it (as in :meth:`StrategyBook.evaluate`).
    """

    def __init__(self, book: StrategyBook, columns: Columns) -> None:
        self.book = book
        self.columns = columns
        n = len(columns)
        self.entries: list[tuple[str, Strategy[Any], tuple[str, ...], Rows, VoteRows | None]] = []
        """Per strategy: name, instance, the indicators it reads, the rows that have them all, and
        where it votes (rows of ``columns``; ``state_before`` by index into those rows)."""
        for name, strategy, needed in book._entries:
            ok = np.ones(n, dtype=bool)
            for key in needed:
                array = columns.values.get(key)
                if array is None:
                    ok[:] = False
                    break
                ok &= np.isfinite(array)
            rows = np.flatnonzero(ok)
            sub = Columns({k: columns.values[k][rows] for k in needed}, columns.close[rows], columns.regime[rows])
            vote_rows = strategy.vote_rows(sub) if rows.shape[0] else None
            if vote_rows is not None:  # in the rows of ``columns``
                vote_rows = VoteRows(rows[vote_rows.flat], rows[vote_rows.long], rows[vote_rows.short],
                                     vote_rows.state_before)  # fmt: skip
            self.entries.append((name, strategy, needed, rows, vote_rows))

    def valid_at(self, k: int) -> bool:
        """Whether every stateful strategy is in the state the twin expects before row ``k``."""
        for _, strategy, _, rows, vote_rows in self.entries:
            if vote_rows is None or vote_rows.state_before is None:
                continue
            j = int(rows.searchsorted(k))
            if strategy.twin_state() != vote_rows.state_before[j]:
                return False
        return True

    def next_vote(self, k: int, stop: int, position: Position) -> int:
        """The first row in ``[k, stop)`` on which some strategy votes with ``position`` (``stop`` if none)."""
        for _, _, _, rows, vote_rows in self.entries:
            candidates = rows if vote_rows is None else vote_rows.for_position(position)
            j = int(candidates.searchsorted(k))
            if j < candidates.shape[0] and candidates[j] < stop:
                stop = int(candidates[j])
        return stop

    def skip(self, k: int, stop: int) -> None:
        """Apply rows ``[k, stop)``, on which no strategy votes (see :meth:`next_vote`)."""
        columns = self.columns
        for name, strategy, needed, rows, vote_rows in self.entries:
            lo, hi = int(rows.searchsorted(k)), int(rows.searchsorted(stop))
            if hi - lo < stop - k:  # some row lacks one of its indicators: reported once, like evaluate
                inside = np.zeros(stop - k, dtype=bool)
                inside[rows[lo:hi] - k] = True
                first = k + int(np.flatnonzero(~inside)[0])
                present = {key for key in needed if key in columns.values and np.isfinite(columns.values[key][first])}
                self.book._missing(name, needed, dict.fromkeys(present, 0.0))
            if hi > lo:
                if vote_rows is not None and vote_rows.state_before is not None:
                    strategy.set_twin_state(float(vote_rows.state_before[hi]))
                    continue
                sub = rows[lo:hi]
                strategy.skip_rows(
                    Columns({key: columns.values[key][sub] for key in needed}, columns.close[sub], columns.regime[sub])
                )
