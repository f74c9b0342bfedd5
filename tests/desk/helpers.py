"""Shared helpers of the desk tests: sample candles as a market view, a provider that fails on demand."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.desk.pipeline import MarketView
from agents.desk.rules import RulesModel
from core.llm import BudgetExhausted, CallOutcome, LLMAnswer, LLMCall, LLMError, OutputT

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def sample_rows(symbol: str = "BTC/USDT") -> list[dict[str, str]]:
    """The shipped hourly sample candles of ``symbol``."""
    path = SAMPLES / f"binance_{symbol.replace('/', '-')}_1h.csv"
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def view_at(end: int, *, window: int = 120, symbol: str = "BTC/USDT", position_pct: float = 0.0) -> MarketView:
    """The market view after the candle at row ``end`` closed (``window`` candles)."""
    rows = sample_rows(symbol)[max(0, end - window + 1) : end + 1]
    ts = datetime.fromtimestamp(int(rows[-1]["timestamp"]) / 1000, UTC) + timedelta(hours=1)
    return MarketView(
        venue="binance",
        symbol=symbol,
        timeframe="1h",
        ts=ts,
        closes=[float(r["close"]) for r in rows],
        highs=[float(r["high"]) for r in rows],
        lows=[float(r["low"]) for r in rows],
        position_pct=position_pct,
    )


@dataclass
class FlakyRules:
    """The rules provider, failing the roles named in ``fail`` (LLMError) or ``broke`` (budget)."""

    fail: set[str] = field(default_factory=set)
    broke: set[str] = field(default_factory=set)
    calls: list[LLMCall] = field(default_factory=list)
    provider: str = "rules"

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """Fail as configured, else answer like the rules provider."""
        self.calls.append(call)
        if call.role in self.broke:
            raise BudgetExhausted(f"daily budget spent before {call.role}")
        if call.role in self.fail:
            raise LLMError(CallOutcome.INVALID, f"{call.role} answered invalid JSON twice")
        return await RulesModel().ask(call, output)
