"""Running a set of strategies on one series, containing failures. Pure: no I/O.

A strategy that raises is contained: its vote is dropped, ``on_error(name, exc)`` is called (the
agent logs it and counts it in ``tradeswarm_strategy_errors_total``) and the others still vote.
A strategy whose indicators are not in the snapshot does not vote (``on_missing`` is called once
per strategy and series with the missing names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.messages import IndicatorSnapshot, StrategyVote
from strategies.base import Position, Strategy
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
