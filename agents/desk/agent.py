"""The AI desk agent: closed candles in, a desk decision every N candles per symbol out.

Per (venue, symbol, timeframe) series it keeps the last ``window`` candles; every ``every`` closed
candles it runs the pipeline (:mod:`agents.desk.pipeline`) and publishes, in order,

* one :class:`DeskRoleReport` per role (``desk.role.<venue>.<symbol>``);
* on APPROVE/ADJUST of a BUY or SELL, the :class:`TradeIntent` (with the requested allocation and
  the protective levels) that goes through risk -> compliance -> execution like any other;
* the :class:`DeskDecision` (``desk.decision.<venue>.<symbol>``), stored in the desk store;
* a :class:`RiskAlert` when no trade was possible (a strong-tier role failed, or the budget ran out).

Partitioned by symbol like the other agents (``desk.candles.p<i>``, single active consumer). It
follows the portfolio (snapshots) to tell the trader and the risk manager the position and the
exposure in percent of equity. PAUSE stops new entries, HALT every intent (decisions continue,
marked in the log).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from agents.base import Agent, AgentContext, Subscription
from agents.base.partitions import symbol_partitions
from agents.desk.pipeline import Desk, DeskOutcome, MarketView, intent_of
from agents.desk.settings import DeskSettings
from core.desk.store import DeskStore, InMemoryDeskStore
from core.domain import Severity
from core.errors import UnroutableMessage
from core.messages import (
    Candle,
    Command,
    DeskDecision,
    Envelope,
    Payload,
    PortfolioSnapshot,
    PositionUpdate,
    RiskAlert,
)
from core.routing import CANDLES, PORTFOLIO, POSITIONS, partition_of
from infrastructure.observability import metrics

SeriesKey = tuple[str, str, str]


@dataclass(slots=True)
class _Series:
    closes: deque[float]
    highs: deque[float]
    lows: deque[float]
    last_open: datetime | None = None
    count: int = 0
    pending: DeskOutcome | None = None
    """A decision made but not fully published (a redelivery publishes it again, same ids)."""


@dataclass(slots=True)
class _Portfolio:
    equity: Decimal = Decimal(0)
    gross: Decimal = Decimal(0)
    positions: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    """Signed quantity per (venue, symbol)."""


class DeskAgent(Agent):
    """The desk on the bus (see the module docstring)."""

    kind = "desk"

    def __init__(self, ctx: AgentContext, desk: Desk, settings: DeskSettings | None = None,
                 store: DeskStore | None = None) -> None:  # fmt: skip
        super().__init__(ctx)
        self.desk = desk
        self.desk_settings = settings or DeskSettings()
        self.store: DeskStore = store if store is not None else InMemoryDeskStore()
        self.timeframe = self.desk_settings.timeframe or ctx.settings.timeframes[0]
        self.series: dict[SeriesKey, _Series] = {}
        self.portfolio = _Portfolio()
        self.decisions = 0
        self.intents = 0
        self.last: DeskDecision | None = None
        self.max_decisions: int | None = None
        """Stop deciding after this many decisions (a backtest's ``--max-decisions``)."""
        self.resources: list[Any] = []
        """What :meth:`on_stop` closes (the database pool)."""

    def subscriptions(self) -> list[Subscription]:
        """Closed candles of the configured symbols (desk timeframe) and the portfolio snapshots,
        one queue per symbol partition."""
        s = self.ctx.settings
        desk_settings = self.__dict__.get("desk_settings") or DeskSettings()  # the broker export builds no agent
        timeframe = desk_settings.timeframe or s.timeframes[0]
        subs = []
        for partition, symbols in symbol_partitions(s.symbols, s.rabbitmq_partitions):
            candles = tuple(CANDLES.pattern(symbol=symbol, timeframe=timeframe) for symbol in symbols)
            positions = tuple(POSITIONS.pattern(symbol=symbol) for symbol in symbols)
            subs.append(
                Subscription(
                    purpose="candles",
                    patterns=(*candles, *positions, PORTFOLIO.all()) if symbols else (),
                    handlers={
                        Candle: self.on_candle,
                        PortfolioSnapshot: self.on_portfolio,
                        PositionUpdate: self.on_position,
                    },
                    partition=partition,
                    single_active_consumer=True,
                )
            )
        return subs

    async def on_stop(self) -> None:
        """Close the database pool and the model's resources."""
        for resource in self.resources:
            await resource.close()

    async def on_partitions_changed(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        """Forget the windows of symbols whose partition moved (they refill from new candles)."""
        s = self.ctx.settings
        moved = {sym for sym in s.symbols if partition_of(sym, s.rabbitmq_partitions) in gained | lost}
        for key in [k for k in self.series if k[1] in moved]:
            del self.series[key]

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        """PAUSE: no new entries; HALT: no intents; RESUME: both off."""
        return self.gate_command(command, "desk ")

    def on_portfolio(self, snapshot: PortfolioSnapshot, envelope: Envelope) -> None:
        """Keep equity, gross exposure and the positions."""
        self.portfolio.equity = snapshot.equity
        self.portfolio.gross = snapshot.gross_exposure
        self.portfolio.positions = {(p.venue, p.symbol): p.quantity for p in snapshot.positions}

    def on_position(self, update: PositionUpdate, envelope: Envelope) -> None:
        """A position changed (after a fill): its quantity is authoritative."""
        self.portfolio.positions[(update.venue, update.symbol)] = update.quantity

    def _view(self, candle: Candle, series: _Series) -> MarketView:
        equity = self.portfolio.equity
        held = self.portfolio.positions.get((candle.venue, candle.symbol), Decimal(0)) * candle.close
        pct = float(held / equity * 100) if equity > 0 else 0.0
        gross = max(self.portfolio.gross, abs(held))
        exposure = float(gross / equity * 100) if equity > 0 else 0.0
        return MarketView(
            venue=candle.venue,
            symbol=candle.symbol,
            timeframe=candle.timeframe,
            ts=candle.close_time,
            closes=list(series.closes),
            highs=list(series.highs),
            lows=list(series.lows),
            position_pct=pct,
            exposure_pct=exposure,
        )

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        """Add the candle to its window; every ``every`` candles, decide and publish."""
        key = (candle.venue, candle.symbol, candle.timeframe)
        series = self.series.get(key)
        if series is None:
            n = self.desk_settings.window
            series = self.series[key] = _Series(deque(maxlen=n), deque(maxlen=n), deque(maxlen=n))
        if series.last_open is not None and candle.open_time <= series.last_open:
            if series.pending is not None and candle.open_time == series.last_open:
                await self._publish(series, series.pending, envelope)  # redelivery after a failed publish
            return
        series.last_open = candle.open_time
        series.closes.append(float(candle.close))
        series.highs.append(float(candle.high))
        series.lows.append(float(candle.low))
        series.count += 1
        if series.count % self.desk_settings.every:
            return
        if self.max_decisions is not None and self.decisions >= self.max_decisions:
            return
        outcome = await self.desk.decide(self._view(candle, series))
        if outcome is None:
            return
        series.pending = outcome
        await self._publish(series, outcome, envelope)

    async def _publish(self, series: _Series, outcome: DeskOutcome, envelope: Envelope) -> None:
        decision = outcome.decision
        for report in decision.roles:
            await self._publish_optional(report, envelope)
        intent = intent_of(decision, now=self.ctx.clock.now(), ttl=timedelta(seconds=self.desk_settings.intent_ttl_s))
        blocked = None
        if intent is not None and self.halted:
            blocked = "halted: no intents"
        elif intent is not None and self.paused and decision.action == "BUY":
            blocked = "paused: no new entries"
        elif intent is not None and not self.desk_settings.trade:
            blocked = "trading off (TRADESWARM_DESK_TRADE=false)"
        if blocked is not None:
            decision = decision.model_copy(update={"intent_id": None, "reason": f"{blocked}; {decision.reason}"[:2000]})
            intent = None
        if intent is not None:
            await self.publish(intent, cause=envelope)
            self.intents += 1
        await self.store.record(decision)
        await self._publish_optional(decision, envelope)
        if outcome.alert is not None:
            code, message = outcome.alert
            severity = Severity.CRITICAL if code == "desk_budget_exhausted" else Severity.WARNING
            alert = RiskAlert(severity=severity, code=code, message=message[:2000], venue=decision.venue,
                              symbol=decision.symbol)  # fmt: skip
            await self._publish_optional(alert, envelope)
        if self.ctx.instrument:
            metrics.DESK_DECISIONS.labels(decision.verdict, decision.action, decision.provider).inc()
            for report in decision.roles:
                if report.status != "ok" and not report.reason.startswith("not run"):
                    metrics.DESK_ROLE_FAILURES.labels(report.role.value, report.status).inc()
        series.pending = None
        self.decisions += 1
        self.last = decision
        self.log.info(
            "desk decided",
            symbol=decision.symbol,
            provider=decision.provider,
            action=decision.action,
            verdict=decision.verdict,
            size_pct=decision.size_pct,
            reason=decision.reason[:200],
            tokens=decision.tokens_in + decision.tokens_out,
        )

    async def _publish_optional(self, payload: Payload, envelope: Envelope) -> None:
        """Publish a message that may have no consumer (reports, decisions, alerts)."""
        try:
            await self.publish(payload, cause=envelope)
        except UnroutableMessage:
            self.log.debug("desk message unroutable: no consumer is bound", type=type(payload).__name__)


async def build(ctx: AgentContext) -> DeskAgent:
    """The desk with its settings from the environment, decisions in PostgreSQL, and the language
    model the LLM settings select (the offline rules provider by default)."""
    from agents.desk.wiring import connected_desk, postgres_store

    settings = DeskSettings()
    store, resources = await postgres_store(ctx)
    desk, model_resources = await connected_desk(settings, ctx)
    agent = DeskAgent(ctx, desk, settings, store)
    agent.resources.extend([*model_resources, *resources])
    return agent
