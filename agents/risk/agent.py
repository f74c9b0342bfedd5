"""The risk agent: sizes and approves, adjusts or rejects every trade intent.

Queues: ``risk.intents`` (trade intents), ``risk.market`` (candles: marks, ATR, VaR) and
``risk.portfolio`` (fills, order updates and compliance decisions, to keep the portfolio and the
reservations of approved-but-unfilled quantity). A handler that fails to decide publishes a
rejection with reason ``risk_error``: fail closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.base import Agent, AgentContext, Subscription
from agents.risk.engine import RiskEngine
from agents.risk.settings import RiskSettings
from core.domain import CommandKind, DecisionVerdict, TradingState
from core.messages import Candle, Command, ComplianceDecision, Envelope, Fill, OrderUpdate, TradeIntent
from core.routing import CANDLES, COMPLIANCE_DECISIONS, FILLS, INTENTS, ORDER_UPDATES
from core.trading.stores import ExecutionStore
from infrastructure.observability import metrics

_STATE_CODE = {TradingState.ACTIVE: "ACTIVE", TradingState.REDUCING: "REDUCING", TradingState.HALTED: "HALTED"}


class RiskAgent(Agent):
    """See the module docstring."""

    kind = "risk"

    def __init__(
        self, ctx: AgentContext, settings: RiskSettings | None = None, history: ExecutionStore | None = None
    ) -> None:
        super().__init__(ctx)
        self.risk_settings = settings or RiskSettings()
        self.engine = RiskEngine(self.risk_settings)
        self.history = history
        self.resources: list[Any] = []
        """Things with an async ``close()`` (the database pool), closed in :meth:`on_stop`."""

    def subscriptions(self) -> Sequence[Subscription]:
        """Intents, candles, and the order path's feedback."""
        return [
            Subscription("intents", (INTENTS.all(),), {TradeIntent: self.on_intent}),
            Subscription("market", (CANDLES.all(),), {Candle: self.on_candle}),
            Subscription(
                "portfolio",
                (FILLS.all(), ORDER_UPDATES.all(), COMPLIANCE_DECISIONS.all()),
                {Fill: self.on_fill, OrderUpdate: self.on_order_update, ComplianceDecision: self.on_compliance},
            ),
        ]

    async def on_start(self) -> None:
        """Rebuild the portfolio from stored fills when a store is configured."""
        if self.history is not None:
            for fill in await self.history.fills(self.risk_settings.account):
                self.engine.on_fill(fill)
            self.log.info("portfolio rebuilt from stored fills", equity=str(self.engine.portfolio.equity))
        self._export_state()

    async def on_stop(self) -> None:
        """Close the database pool."""
        for resource in self.resources:
            await resource.close()

    async def on_intent(self, intent: TradeIntent, envelope: Envelope) -> None:
        """Decide and publish the decision (a rejection when deciding fails)."""
        now = self.ctx.clock.now()
        try:
            verdict = self.engine.decide(intent, now)
            decision = verdict.decision
        except Exception as exc:
            self.log.exception("risk could not decide: rejecting")
            decision = self.engine._reject(intent, "risk_error", str(exc)[:500])
        await self.publish(decision, cause=envelope)
        if self.ctx.instrument:
            outcome = {DecisionVerdict.APPROVE: "approved", DecisionVerdict.ADJUST: "adjusted"}.get(
                decision.verdict, "rejected"
            )
            metrics.RISK_DECISIONS.labels(outcome, decision.reason).inc()

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        """Mark to market; publish any alert raised."""
        alerts = self.engine.on_candle(
            candle.venue, candle.symbol, candle.close_time, candle.high, candle.low, candle.close
        )
        for alert in alerts:
            await self.publish(alert, cause=envelope)
            if self.ctx.instrument:
                metrics.RISK_ALERTS.labels(alert.severity.value, alert.code).inc()
        if alerts or self.ctx.instrument:
            self._export_state()

    async def on_fill(self, fill: Fill, envelope: Envelope) -> None:
        """Apply a fill to the risk view of the portfolio."""
        self.engine.on_fill(fill)
        self._export_state()

    async def on_order_update(self, update: OrderUpdate, envelope: Envelope) -> None:
        """Release reservations of orders that ended."""
        self.engine.on_order_status(update.intent_id, update.status)

    async def on_compliance(self, decision: ComplianceDecision, envelope: Envelope) -> None:
        """Release the reservation of an intent compliance blocked (not for duplicate notices)."""
        if decision.verdict is DecisionVerdict.REJECT and decision.reason != "duplicate_intent":
            self.engine.on_compliance_reject(decision.intent_id)

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        """HALT -> HALTED, FLATTEN/PAUSE -> REDUCING (exits only), RESUME -> ACTIVE."""
        state = {
            CommandKind.HALT: TradingState.HALTED,
            CommandKind.PAUSE: TradingState.REDUCING,
            CommandKind.FLATTEN: TradingState.REDUCING,
            CommandKind.RESUME: TradingState.ACTIVE,
        }[command.kind]
        self.engine.set_state(state)
        self.halted = state is TradingState.HALTED
        self.paused = state is TradingState.REDUCING
        self._export_state()
        return f"trading state {state.value}"

    def _export_state(self) -> None:
        if not self.ctx.instrument:
            return
        p = self.engine.portfolio
        metrics.EQUITY.labels(p.account).set(float(p.equity))
        metrics.CASH.labels(p.account).set(float(p.cash))
        metrics.DRAWDOWN.labels(p.account).set(p.drawdown)
        metrics.DRAWDOWN_LIMIT.labels(p.account).set(float(self.risk_settings.max_drawdown_pct))
        metrics.PNL_REALIZED.labels(p.account).set(float(p.realized_pnl - p.fees))
        metrics.PNL_UNREALIZED.labels(p.account).set(float(p.unrealized_pnl))
        for position in p.positions.values():
            metrics.POSITION_QUANTITY.labels(p.account, position.symbol).set(float(position.quantity))
            metrics.EXPOSURE.labels(p.account, position.symbol).set(float(position.market_value))
        for state, name in _STATE_CODE.items():
            metrics.TRADING_STATE.labels(name).set(1 if state is self.engine.state else 0)
        var = self.engine.var
        if var is not None:
            for measure, conf, value in (
                ("var", "95", var.var95),
                ("cvar", "95", var.cvar95),
                ("var", "99", var.var99),
                ("cvar", "99", var.cvar99),
            ):
                metrics.VALUE_AT_RISK.labels(p.account, measure, conf).set(value)


async def build(ctx: AgentContext) -> Agent:
    """The risk agent from the environment (fills history from PostgreSQL to rebuild the portfolio)."""
    from infrastructure.database.timescale import Database, PostgresExecutionStore, apply_migrations

    settings = RiskSettings()
    db = Database(ctx.settings.postgres_dsn.get_secret_value())
    await db.connect()
    await apply_migrations(db)
    return RiskAgent(ctx, settings, history=PostgresExecutionStore(db, settings.account))
