"""Where a backtest's time goes: seconds per component (the bench's ``--breakdown``).

A :class:`Breakdown` is handed to :class:`~backtesting.engine.BacktestEngine` as its ``timer``; the
in-memory bus then times every delivery per queue (the agent's handler: its decision logic and the
messages it builds), every wake-condition question and bulk step per queue ("(bulk)"), each derived
column ("(derive)"), and the engine times reading the data and the replay's books (clock, equity
samples). What is left of the wall time is the kernel itself (routing, the lazy rows, building the
candles and snapshots that are delivered). Timing costs a little: the total runs ~10% slower.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(slots=True)
class Breakdown:
    """Seconds per component label."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, label: str, seconds: float) -> None:
        """Add ``seconds`` to ``label``."""
        self.seconds[label] += seconds
        self.calls[label] += 1

    def rows(self, candles: int, wall: float) -> list[tuple[str, float, float, int]]:
        """``(label, seconds, us per candle, calls)``, largest first, with the kernel's remainder."""
        out = [(label, s, s / candles * 1e6, self.calls[label]) for label, s in self.seconds.items()]
        rest = wall - sum(s for s in self.seconds.values())
        out.append(("kernel (routing, lazy rows, building delivered candles/snapshots)", rest, rest / candles * 1e6, 0))
        return sorted(out, key=lambda row: -row[1])
