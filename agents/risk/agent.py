"""The risk agent: sizes and approves, adjusts or rejects every trade intent.

Queues: ``risk.intents`` (trade intents), ``risk.market`` (candles: marks, ATR, VaR) and
``risk.portfolio`` (fills, order updates and compliance decisions, to keep the portfolio and the
reservations of approved-but-unfilled quantity). A handler that fails to decide publishes a
rejection with reason ``risk_error``: fail closed.

FLATTEN: exits only from then on (REDUCING), and one approved reduce-only exit decision per open
position, published like any approval (compliance gates and audits it and turns it into an order).
An entry approved before the FLATTEN that fills while it is in progress is closed too. The command is
acknowledged once the positions are flat (from the fills). When the closing orders ended and a
position is left (execution caps a reduce-only order to what an exit already working leaves), risk
waits for the exits approved before to end, then closes the rest in another round; it acknowledges
with ``ok=False`` after five rounds or when a HALT stops it. A FLATTEN while halted is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from agents.base import Agent, AgentContext, CommandFailed, Subscription
from agents.risk import quiet
from agents.risk.engine import RiskEngine
from agents.risk.ledger import IntentLedger
from agents.risk.settings import RiskSettings
from core.columns import Column
from core.domain import CommandKind, DecisionVerdict, TradingState
from core.errors import UnroutableMessage
from core.ids import uuid7
from core.messages import (
    Candle,
    Command,
    ComplianceDecision,
    Envelope,
    Fill,
    OrderUpdate,
    RiskAlert,
    RiskDecision,
    TradeIntent,
)
from core.routing import CANDLES, COMPLIANCE_DECISIONS, FILLS, INTENTS, ORDER_UPDATES
from core.trading.retention import grace_of
from core.trading.stores import ExecutionStore
from core.wake import WakeOn
from infrastructure.observability import metrics

MAX_FLATTEN_ROUNDS = 5
CAPPED = "reduce_only_nothing_to_reduce"
"""Execution's rejection of a reduce-only order that other exits already cover."""
"""Closing rounds a FLATTEN tries (one per position left after the previous round ended) before failing."""

_STATE_CODE = {TradingState.ACTIVE: "ACTIVE", TradingState.REDUCING: "REDUCING", TradingState.HALTED: "HALTED"}


@dataclass(slots=True)
class Flattening:
    """A FLATTEN in progress: the closing intents it waits for and how those that ended, ended."""

    command: Command
    envelope: Envelope
    intents: set[UUID]
    entries: set[UUID]
    """Entries approved before the FLATTEN: a position they open while it is in progress is closed too."""
    ended: dict[UUID, str] = field(default_factory=dict)
    rounds: int = 1
    waiting_for: set[UUID] = field(default_factory=set)
    last_round: set[UUID] = field(default_factory=set)
    """The closing intents of the latest round."""
    """Exits approved before the FLATTEN that it waits for (logged when the set changes)."""


class RiskAgent(Agent):
    """See the module docstring."""

    kind = "risk"

    def __init__(
        self,
        ctx: AgentContext,
        settings: RiskSettings | None = None,
        history: ExecutionStore | None = None,
        ledger: IntentLedger | None = None,
    ) -> None:
        super().__init__(ctx)
        self.risk_settings = settings or RiskSettings()
        self.engine = RiskEngine(self.risk_settings)
        self.history = history
        self.ledger = (
            ledger if ledger is not None else IntentLedger(grace=grace_of(self.risk_settings.retention_grace_s))
        )
        """The first decision of every intent: a duplicate intent is decided once."""
        self.flattening: Flattening | None = None
        self.incarnation = uuid7()
        """This process's part of its closing intents' ids: a FLATTEN the orchestrator sends again to a
        restarted risk agent must not be refused as a duplicate of the closing orders the previous
        process sent (execution's reduce-only cap keeps two generations from over-closing)."""
        """The FLATTEN waiting for the positions to be flat (acknowledged then)."""
        self.resources: list[Any] = []
        """Things with an async ``close()`` (the database pool), closed in :meth:`on_stop`."""
        self._run: quiet.Run | None = None
        """The last quiet run :meth:`_next_candle` simulated (applied by :meth:`_skip_candles`)."""

    def subscriptions(self) -> Sequence[Subscription]:
        """Intents, candles, and the order path's feedback."""
        return [
            Subscription("intents", (INTENTS.all(),), {TradeIntent: self.on_intent}),
            Subscription(
                "market",
                (CANDLES.all(),),
                {Candle: self.on_candle},
                wake=WakeOn(self._next_candle, self._skip_candles, cost=10, take_wake_rows=True),
            ),
            Subscription(
                "portfolio",
                (FILLS.all(), ORDER_UPDATES.all(), COMPLIANCE_DECISIONS.all()),
                {Fill: self.on_fill, OrderUpdate: self.on_order_update, ComplianceDecision: self.on_compliance},
            ),
        ]

    # -- wake condition: only the candles that raise an alert ------------------------------------

    def _next_candle(self, column: Column, sids: Sequence[int], start: int, stop: int) -> int:
        """The first candle in ``[start, stop)`` of a column that :meth:`on_candle` must handle: one
        that raises an alert (the others move state only, applied by :meth:`_skip_candles`). Every
        candle while a FLATTEN is in progress or with volatility sizing (its ATR)."""
        if self.flattening is not None or self.ctx.instrument or self.engine._track_atr:
            return column.first_row(sids, start, stop)
        run = quiet.simulate(self.engine, column, sids, start, stop)
        self._run = run
        return run.end

    def _skip_candles(self, column: Column, sids: Sequence[int], start: int, stop: int) -> None:
        """Apply quiet candles: marks, peak, trading day, returns window, VaR (:mod:`agents.risk.quiet`)."""
        run = self._run
        if run is None or run.column is not column or run.start != start or run.end != stop:
            run = quiet.simulate(self.engine, column, sids, start, stop)
            assert run.end == stop, "a candle the wake condition let through raises an alert"
        self._run = None
        quiet.apply(self.engine, run)

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
        """Decide and publish the decision (a rejection when deciding fails), once per intent id
        (:mod:`agents.risk.ledger`: a duplicate is counted and dropped, a redelivery of the decided
        message publishes the same decision again)."""
        first = await self.ledger.first(intent.intent_id)
        if first is not None:
            message_id, decided = first
            if message_id == envelope.message_id:
                await self.publish(decided, cause=envelope)
            else:
                self._duplicate(intent, decided)
            return
        now = self.ctx.clock.now()
        alerts: Sequence[RiskAlert] = ()
        try:
            verdict = self.engine.decide(intent, now)
            decision, alerts = verdict.decision, verdict.alerts
        except Exception as exc:
            self.log.exception("risk could not decide: rejecting")
            decision = self.engine._reject(intent, "risk_error", str(exc)[:500])
        if not await self.ledger.record(envelope.message_id, decision, intent.expires_at, now):
            self._duplicate(intent, decision)  # another risk process decided it first
            return
        await self.publish(decision, cause=envelope)
        await self._publish_alerts(alerts, envelope)
        if self.ctx.instrument:
            outcome = {DecisionVerdict.APPROVE: "approved", DecisionVerdict.ADJUST: "adjusted"}.get(
                decision.verdict, "rejected"
            )
            metrics.RISK_DECISIONS.labels(outcome, decision.reason).inc()

    def _duplicate(self, intent: TradeIntent, decided: RiskDecision) -> None:
        self.log.warning(
            "duplicate intent: decided once already",
            intent_id=str(intent.intent_id),
            symbol=intent.symbol,
            first_decision=decided.verdict.value,
        )
        if self.ctx.instrument:
            metrics.RISK_DUPLICATE_INTENTS.inc()

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        """Mark to market; publish any alert raised."""
        alerts = self.engine.on_candle(
            candle.venue, candle.symbol, candle.timeframe, candle.close_time, candle.high, candle.low, candle.close
        )
        if alerts:
            await self._publish_alerts(alerts, envelope)
        elif self.ctx.instrument:
            self._export_state()
        if self.flattening is not None:  # an exit it waits for may have expired; the next round is due
            await self._settle_flatten(at_candle=True)

    async def _publish_alerts(self, alerts: Sequence[RiskAlert], envelope: Envelope | None) -> None:
        """Publish alerts, then export the state. Alerts are informational: with no consumer bound
        (a test, a partial deployment) one is logged instead, and the handler goes on."""
        if not alerts:
            return
        for alert in alerts:
            try:
                await self.publish(alert, cause=envelope)
            except UnroutableMessage:
                self.log.warning("alert not delivered: no consumer is bound", code=alert.code, detail=alert.message)
            if self.ctx.instrument:
                metrics.RISK_ALERTS.labels(alert.severity.value, alert.code).inc()
        self._export_state()

    async def on_fill(self, fill: Fill, envelope: Envelope) -> None:
        """Apply a fill to the risk view of the portfolio."""
        self.engine.on_fill(fill)
        self._export_state()
        watch = self.flattening
        if watch is not None:
            if fill.intent_id in watch.entries:  # an entry in flight at the FLATTEN filled: close it too
                await self._close(watch, self._next_round(watch))
            await self._settle_flatten()

    async def on_order_update(self, update: OrderUpdate, envelope: Envelope) -> None:
        """Release reservations of orders that ended."""
        self.engine.on_order_status(update.intent_id, update.status)
        watch = self.flattening
        if watch is not None and update.status.is_terminal:
            watch.entries.discard(update.intent_id)
            if update.intent_id in watch.intents:
                watch.ended[update.intent_id] = f"{update.symbol} {update.status.value} {update.reason}".strip()
                self.log.info(
                    "flatten_closing_order_ended",
                    intent_id=str(update.intent_id),
                    outcome=watch.ended[update.intent_id],
                )
            await self._settle_flatten()

    async def on_compliance(self, decision: ComplianceDecision, envelope: Envelope) -> None:
        """Release the reservation of an intent compliance blocked (not for duplicate notices)."""
        if decision.verdict is DecisionVerdict.REJECT and decision.reason != "duplicate_intent":
            self.engine.on_compliance_reject(decision.intent_id)
            watch = self.flattening
            if watch is not None:
                watch.entries.discard(decision.intent_id)
                if decision.intent_id in watch.intents:
                    watch.ended[decision.intent_id] = f"{decision.symbol} refused by compliance: {decision.reason}"
                await self._settle_flatten()

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        """HALT -> HALTED, PAUSE -> REDUCING (exits only), RESUME -> ACTIVE, FLATTEN -> REDUCING and
        close every position (acknowledged when flat, see the module docstring)."""
        if command.kind is CommandKind.FLATTEN:
            return await self._flatten(command, envelope)
        state = {
            CommandKind.HALT: TradingState.HALTED,
            CommandKind.PAUSE: TradingState.REDUCING,
            CommandKind.RESUME: TradingState.ACTIVE,
        }[command.kind]
        alert = self.engine.set_state(state)
        self.halted = state is TradingState.HALTED
        self.paused = state is TradingState.REDUCING
        self._export_state()
        if alert is not None:
            await self._publish_alerts([alert], envelope)
        return f"trading state {self.engine.state.value}"

    async def _flatten(self, command: Command, envelope: Envelope) -> str | None:
        """Exits only, and a closing decision per open position; the ack waits for the fills."""
        if self.engine.state is TradingState.HALTED:
            raise CommandFailed("trading is halted: every order is refused, closing ones included; RESUME first")
        previous = self.flattening
        if previous is not None and previous.command.command_id != command.command_id:
            self.flattening = None
            await self.acknowledge(previous.command, "superseded by a newer flatten", ok=False, cause=previous.envelope)
        decisions = self.engine.flatten((command.command_id, self.incarnation), *self._ttl())
        self.paused = True
        self._export_state()
        if not self.engine.closable():
            return "flat: no open position"
        watch = Flattening(command, envelope, set(), self.engine.pending_entries())
        self.flattening = watch
        await self._close(watch, decisions)
        self.log.warning("flattening", closing_orders=len(decisions), entries=len(watch.entries))
        await self._settle_flatten()
        return None

    def _ttl(self) -> tuple[datetime, timedelta]:
        return self.ctx.clock.now(), timedelta(seconds=self.risk_settings.flatten_ttl_s)

    async def _close(self, watch: Flattening, decisions: Sequence[RiskDecision]) -> None:
        """Publish closing decisions (compliance turns them into reduce-only orders) and watch them."""
        watch.last_round = {d.intent_id for d in decisions}
        for decision in decisions:
            watch.intents.add(decision.intent_id)
            await self.publish(decision, cause=watch.envelope)

    def _next_round(self, watch: Flattening) -> list[RiskDecision]:
        watch.rounds += 1
        return self.engine.flatten((watch.command.command_id, self.incarnation, watch.rounds), *self._ttl())

    async def _settle_flatten(self, *, at_candle: bool = False) -> None:
        """Acknowledge the FLATTEN once flat, or as failed once every closing order ended without it."""
        watch = self.flattening
        if watch is None:
            return
        if not self.engine.closable():
            self.flattening = None
            detail = f"flat: every position closed ({len(watch.intents)} closing order(s))"
            await self.acknowledge(watch.command, detail, cause=watch.envelope)
        elif watch.intents <= watch.ended.keys():
            # the closing orders ended and a position is left: an exit decided before the FLATTEN may
            # still be working (execution then capped the closing order to nothing): let it finish,
            # then close what is left in another round; fail only when the rounds are spent
            now = self.ctx.clock.now()
            self.engine.expire_reservations(now)
            halted = self.engine.state is TradingState.HALTED
            working = self.engine.pending_exits(now) - watch.intents
            if not halted and working:
                if working != watch.waiting_for:
                    watch.waiting_for = working
                    self.log.info("flatten_waits_for_exits", intents=sorted(str(i) for i in working))
                return
            if not halted and watch.rounds < MAX_FLATTEN_ROUNDS:
                capped = all(CAPPED in watch.ended.get(i, "") for i in watch.last_round)
                if capped and not at_candle:
                    # execution capped the round to nothing: an exit this process does not know of is
                    # working (one a previous risk process approved): the next round waits for a candle
                    return
                self.log.info("flatten_next_round", round=watch.rounds + 1, left=self._open_positions())
                await self._close(watch, self._next_round(watch))
                return
            self.flattening = None
            ended = "; ".join(sorted(watch.ended.values()))
            detail = f"not flat: {self._open_positions()} still open after the closing orders ended ({ended})"
            await self.acknowledge(watch.command, detail, ok=False, cause=watch.envelope)

    def _open_positions(self) -> str:
        return ", ".join(f"{symbol} {quantity}" for (_, symbol), quantity in sorted(self.engine.closable().items()))

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
    from infrastructure.database.timescale.control_store import PostgresRiskLedger

    settings = RiskSettings()
    db = Database(ctx.settings.postgres_dsn.get_secret_value())
    await db.connect()
    await apply_migrations(db)
    ledger = IntentLedger(PostgresRiskLedger(db), grace=grace_of(settings.retention_grace_s))
    agent = RiskAgent(ctx, settings, history=PostgresExecutionStore(db, settings.account), ledger=ledger)
    agent.resources.append(db)
    return agent
