"""Write your own strategy: a stochastic %K/%D crossover, fused with the built-in ``sma_cross``.

Runs on real candles (default: the BTC/USDT 1h slice in ``tests/data``) with the very engine and
consensus the agents use, and prints the decisions and a trade summary::

    .venv/bin/python examples/custom_strategy.py [CANDLE_CSV]

The guide is ``docs/strategies.md``. To ship the strategy as a plug-in instead, register the class
in your package's ``pyproject.toml`` and enable it by name::

    [project.entry-points."tradeswarm.strategies"]
    stoch_cross = "examples.custom_strategy:StochCross"

    TRADESWARM_STRATEGY_STRATEGIES=sma_cross,stoch_cross
    TRADESWARM_STRATEGY_PARAMS='{"stoch_cross": {"oversold": 25}}'
"""

from __future__ import annotations

import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from agents.technical_analysis.engine import IndicatorEngine
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from agents.technical_analysis.snapshot import build_snapshot
from core.domain import ConsensusOutcome, Direction
from core.messages import IndicatorSnapshot, StrategyVote
from infrastructure.feeds.files import read_candles_csv
from strategies import (
    FLAT,
    ConsensusConfig,
    Position,
    Strategy,
    StrategyBook,
    StrategyParams,
    StrategySpec,
    build_specs,
    fuse,
)

DEFAULT_CSV = Path(__file__).resolve().parent.parent / "tests" / "data" / "binance_BTC-USDT_1h_first3000.csv"


class StochParams(StrategyParams):
    """Parameters are a frozen pydantic model: unknown keys and out-of-range values fail at start-up."""

    oversold: float = Field(default=20.0, gt=0, lt=100)
    overbought: float = Field(default=80.0, gt=0, lt=100)
    score: float = Field(default=80.0, ge=0, le=100)
    confidence: float = Field(default=0.8, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be below overbought")
        return self


class StochCross(Strategy[StochParams]):
    """LONG when %K crosses above %D in the oversold zone; EXIT when it crosses below in the overbought zone."""

    name = "stoch_cross"
    version = "1"
    Params = StochParams

    def __init__(self, params: StochParams) -> None:
        super().__init__(params)
        self._previous: tuple[float, float] | None = None  # state of ONE series: one instance per series

    @property
    def indicators(self) -> tuple[str, ...]:
        """Snapshot values this strategy reads (the TA agent's ``stoch`` group)."""
        return ("stoch_k", "stoch_d")

    def vote(self, snapshot: IndicatorSnapshot, position: Position) -> StrategyVote | None:
        """Only the candle that just closed is visible: no lookahead."""
        k, d = snapshot.values["stoch_k"], snapshot.values["stoch_d"]
        previous, self._previous = self._previous, (k, d)
        if previous is None:
            return None
        p = self.params
        crossed_up = previous[0] <= previous[1] and k > d
        crossed_down = previous[0] >= previous[1] and k < d
        if crossed_up and k < p.oversold and position.is_flat:
            return self.make_vote(
                snapshot, Direction.LONG, p.score, p.confidence, f"%K {k:.1f} crossed above %D {d:.1f}"
            )
        if crossed_down and k > p.overbought and position.is_long:
            return self.make_vote(
                snapshot, Direction.EXIT, p.score, p.confidence, f"%K {k:.1f} crossed below %D {d:.1f}"
            )
        return None


def run(path: Path = DEFAULT_CSV, verbose: bool = True) -> Counter[str]:
    """Replay ``path`` through the engine, both strategies and the consensus; count the outcomes."""
    candles = read_candles_csv(path)
    engine = IndicatorEngine(TechnicalAnalysisSettings(indicators=("sma", "stoch", "atr")))
    specs = [StrategySpec("stoch_cross", StochCross, StochCross.Params(oversold=25), weight=1.0)]
    specs += build_specs(["sma_cross"])
    book = StrategyBook(specs, on_error=lambda name, exc: print(f"{name} failed: {exc!r}"))
    config = ConsensusConfig(method="weighted", threshold=75, variance_limit=40)
    position, entry, pnl = FLAT, 0.0, 0.0
    outcomes: Counter[str] = Counter()
    for candle in candles:
        o, h, lo, c, v = (float(x) for x in (candle.open, candle.high, candle.low, candle.close, candle.volume))
        result = engine.update(o, h, lo, c, v)
        if result is None:
            continue  # warming up
        snapshot = build_snapshot(candle, result.values, result.patterns, result.regime)
        votes = book.evaluate(snapshot, position)
        if not votes:
            continue
        decision = fuse(votes, config)
        outcomes[decision.outcome.value] += 1
        if decision.outcome is not ConsensusOutcome.EXECUTE:
            continue
        if decision.direction is Direction.LONG and position.is_flat:
            position, entry = Position(quantity=Decimal(1)), c
        elif decision.direction is Direction.EXIT and position.is_long:
            position, pnl = FLAT, pnl + (c - entry) / entry
        outcomes["trades"] += 1
        if verbose:
            print(f"{candle.close_time:%Y-%m-%d %H:%M} {decision.direction.value:5} {c:>10.2f}  {decision.rationale}")
    if verbose:
        print(f"outcomes: {dict(outcomes)}; summed return of closed trades {pnl:+.2%}")
    return outcomes


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV)
