"""Where a backtest's time goes: seconds per component (the bench's ``--breakdown``).

A :class:`Breakdown` is handed to :class:`~backtesting.engine.BacktestEngine` as its ``timer``; the
in-memory bus then times every delivery per queue (the agent's handler: its decision logic and the
messages it builds), every wake-condition question and bulk step per queue ("(bulk)"), each derived
column ("(derive)"), and the engine times reading the data and the replay's books (clock, equity
samples). What is left of the wall time is the kernel itself (routing, the lazy rows, building the
candles and snapshots that are delivered). Timing costs a little: the total runs ~10% slower.

Times are the thread's CPU time (``time.thread_time``), not wall time: on a machine shared with
other work, a component's figure does not grow while the process waits for a core.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(slots=True)
class Breakdown:
    """Seconds per component label."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @staticmethod
    def clock() -> float:
        """The thread's CPU time in seconds."""
        return time.thread_time()

    def add(self, label: str, seconds: float) -> None:
        """Add ``seconds`` to ``label``."""
        self.seconds[label] += seconds
        self.calls[label] += 1

    def rows(self, candles: int, total: float) -> list[tuple[str, float, float, int]]:
        """``(label, seconds, us per candle, calls)``, largest first, with the kernel's remainder
        (``total``: the run's CPU time)."""
        out = [(label, s, s / candles * 1e6, self.calls[label]) for label, s in self.seconds.items()]
        rest = total - sum(s for s in self.seconds.values())
        out.append(("kernel (routing, lazy rows, building delivered candles/snapshots)", rest, rest / candles * 1e6, 0))
        return sorted(out, key=lambda row: -row[1])
