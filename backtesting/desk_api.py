"""The desk analyzer of the API (``POST /analyze``), loaded by the orchestrator by name.

* ``backtest_step``: the recorded candles of the symbol (``<venue>_<BASE>-<QUOTE>_1h.csv`` in the
  backtest data folder) up to ``timestamp`` go through the backtest swarm with the desk deciding once
  at ``timestamp``; an approved decision becomes a TradeIntent that risk, compliance and the paper
  venue handle exactly as in a backtest, and the portfolio after the next candle (the fill) is
  returned.
* ``live``: the desk decides on the orchestrator's latest closed candles of the symbol. It is an
  analysis on demand: the decision and its role reports are stored and published for the dashboard,
  but no intent is published from the API (the desk agent trades on its own schedule), so the
  portfolio is null.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agents.desk.pipeline import Desk, MarketView
from agents.desk.rules import RulesModel
from agents.desk.settings import DeskSettings
from agents.desk.wiring import build_desk, llm_settings
from backtesting.config import BacktestConfig
from backtesting.data import csv_candles, list_source
from backtesting.engine import BacktestEngine, DeskRun
from core.desk.store import DeskStore
from core.gateway import CandleKey
from core.messages import Payload
from core.routing import escape
from core.settings import Settings
from infrastructure.api.desk import AnalysisFailed, Mode
from infrastructure.api.schemas import SnapshotView
from infrastructure.llm.factory import connect_language_model

Publish = Callable[[Payload], Awaitable[None]]
Latest = Callable[[str, int], Sequence[SnapshotView]]


@dataclass(slots=True)
class DeskAnalyzerService:
    """:class:`infrastructure.api.desk.DeskAnalyzer` over the desk pipeline (see the module doc)."""

    data_dir: Path
    store: DeskStore
    publish: Publish | None = None
    latest: Latest | None = None
    venue: str = "binance"
    timeframe: str = "1h"
    settings: DeskSettings | None = None
    desk: Desk | None = None
    dsn: str | None = None
    """With a DSN the model spends from the shared PostgreSQL budget and logs to ``agent_logs`` (the
    orchestrator's API); without, in-memory ledgers."""
    resources: list[Any] = field(default_factory=list)

    async def _desk(self) -> tuple[Desk, DeskSettings]:
        settings = self.settings or DeskSettings()
        if self.desk is None:
            llm = llm_settings()
            model, db = await connect_language_model(llm, rules=RulesModel(), dsn=self.dsn, instrument=False)
            self.resources += [model, *([db] if db is not None else [])]
            self.desk = build_desk(settings, Settings(), model, llm)
        return self.desk, settings

    async def close(self) -> None:
        """Close the model and its database."""
        for resource in self.resources:
            await resource.close()
        self.resources.clear()

    async def analyze(self, symbol: str, mode: Mode, timestamp: datetime | None) -> tuple[Any, dict[str, Any] | None]:
        """See the port."""
        if mode == "backtest_step":
            return await self._step(symbol, timestamp)
        return await self._live(symbol)

    async def _live(self, symbol: str) -> tuple[Any, dict[str, Any] | None]:
        desk, settings = await self._desk()
        snapshots = list(self.latest(symbol, settings.window)) if self.latest is not None else []
        if not snapshots:
            raise AnalysisFailed(f"no live candles of {symbol}: is it one of the swarm's symbols?", 404)
        last = snapshots[-1]
        view = MarketView(
            venue=last.venue,
            symbol=last.symbol,
            timeframe=last.timeframe,
            ts=last.close_time,
            closes=[float(s.close) for s in snapshots],
            highs=[float(s.high) for s in snapshots],
            lows=[float(s.low) for s in snapshots],
        )
        outcome = await desk.decide(view)
        if outcome is None:
            raise AnalysisFailed(f"only {len(snapshots)} closed candles of {symbol}: the desk needs 35")
        decision = outcome.decision
        if decision.intent_id is not None:
            reason = f"analysis only (no intent from the API); {decision.reason}"[:2000]
            decision = decision.model_copy(update={"intent_id": None, "reason": reason})
        await self.store.record(decision)
        if self.publish is not None:
            for report in decision.roles:
                await self.publish(report)
            await self.publish(decision)
        return decision, None

    async def _step(self, symbol: str, timestamp: datetime | None) -> tuple[Any, dict[str, Any] | None]:
        desk, settings = await self._desk()
        path = self.data_dir / f"{self.venue}_{escape(symbol)}_{self.timeframe}.csv"
        if not path.is_file():
            raise AnalysisFailed(f"no recorded candles of {symbol} ({path.name} is not in the data folder)", 404)
        key = CandleKey(self.venue, symbol, self.timeframe)
        rows = list(csv_candles(path, key))
        upto = [c for c in rows if c.close_time <= timestamp] if timestamp is not None else rows[:-1]
        if len(upto) < 35:
            raise AnalysisFailed(f"only {len(upto)} candles of {symbol} closed by {timestamp}: the desk needs 35")
        window = upto[-settings.window :]
        after = rows[len(upto) : len(upto) + 1]  # the candle the order fills on
        step = settings.model_copy(update={"every": len(window)})
        run = DeskRun(desk, step, max_decisions=1)
        engine = BacktestEngine(BacktestConfig(), [list_source(key, [*window, *after], "analyze")], desk=run)
        result = await engine.run()
        if not result.desk_decisions:
            raise AnalysisFailed(f"the desk made no decision on {symbol} at {window[-1].close_time}", 404)
        decision = result.desk_decisions[0]
        await self.store.record(decision)
        portfolio = None
        if result.fills:
            portfolio = {
                "equity": str(result.final_equity),
                "cash": engine.last_swarm.recorder.cash_float() if engine.last_swarm is not None else None,
                "fills": [
                    {"side": f.side.value, "quantity": str(f.quantity), "price": str(f.price), "ts": f.ts.isoformat()}
                    for f in result.fills
                ],
                "open_positions": [
                    {"symbol": t.symbol, "quantity": str(t.quantity), "entry_price": str(t.entry_price)}
                    for t in result.open_trips
                ],
                "as_of": (window[-1].close_time + timedelta(hours=1)).isoformat(),
            }
        return decision, portfolio


PROVIDERS = ("rules", "replay", "openai")


def desk_run(every: int, max_decisions: int | None, provider: str, blind: bool) -> DeskRun:
    """The desk of a backtest (CLI ``--desk`` and ``POST /backtests`` ``params.desk``): the model of
    ``provider``, deciding every ``every`` closed candles, at most ``max_decisions`` times."""
    from agents.desk.wiring import language_model
    from core.errors import ConfigurationError

    if provider not in PROVIDERS:
        raise ConfigurationError(f"--llm-provider {provider!r}: choose one of {', '.join(PROVIDERS)}")
    if every < 1:
        raise ConfigurationError("--every must be at least 1")
    if max_decisions is not None and max_decisions < 1:
        raise ConfigurationError("--max-decisions must be at least 1")
    settings = DeskSettings(every=every, blind=blind)
    return DeskRun(build_desk(settings, Settings(), language_model(provider)), settings, max_decisions)


def desk_analyzer(data_dir: Path, store: DeskStore, publish: Publish | None, latest: Latest | None) -> Any:
    """The factory the orchestrator loads by name (the model on the shared PostgreSQL budget)."""
    return DeskAnalyzerService(data_dir, store, publish, latest, dsn=Settings().postgres_dsn.get_secret_value())
