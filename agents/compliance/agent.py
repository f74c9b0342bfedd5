"""The compliance agent: the final pre-trade gate, the kill switch, and the audit trail.

Queues: ``compliance.decisions`` (risk decisions -> ``OrderRequest`` + ``ComplianceDecision``),
``compliance.market`` (candles, trades, book: last prices for the collar), ``compliance.audit``
(intents, order updates and fills, appended to the hash-chained audit trail). Commands: HALT and
PAUSE engage the kill switch, RESUME releases it; each is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from agents.base import Agent, AgentContext, Subscription
from agents.compliance.audit import AuditTrail
from agents.compliance.gate import Approval, ComplianceGate, is_exit
from agents.compliance.settings import ComplianceSettings
from core.domain import CommandKind, DecisionVerdict, Severity
from core.messages import (
    BookTop,
    Candle,
    Command,
    Envelope,
    Fill,
    OrderUpdate,
    Payload,
    RiskAlert,
    RiskDecision,
    Trade,
    TradeIntent,
)
from core.routing import BOOK, CANDLES, FILLS, INTENTS, ORDER_UPDATES, RISK_APPROVED, RISK_REJECTED, TRADES
from core.trading.stores import AuditStore, DecisionStore, InMemoryAuditStore
from core.wake import LatestPerKey
from infrastructure.observability import metrics


def _ref(payload: Payload) -> str:
    for name in ("client_order_id", "intent_id"):
        value = getattr(payload, name, None)
        if value is not None:
            return str(value)
    return ""


class ComplianceAgent(Agent):
    """See the module docstring."""

    kind = "compliance"

    def __init__(
        self,
        ctx: AgentContext,
        settings: ComplianceSettings | None = None,
        audit_store: AuditStore | None = None,
        decisions: DecisionStore | None = None,
    ) -> None:
        super().__init__(ctx)
        self.compliance_settings = settings or ComplianceSettings()
        self.gate = ComplianceGate(self.compliance_settings)
        cs = self.compliance_settings
        self.audit = (
            AuditTrail(
                audit_store or InMemoryAuditStore(),
                key=cs.audit_key_bytes(),
                period=timedelta(seconds=cs.audit_checkpoint_s),
            )
            if cs.audit
            else None
        )
        self.decisions = decisions
        self._ticker: asyncio.Task[None] | None = None
        self.resources: list[Any] = []
        """Things with an async ``close()`` (the database pool), closed in :meth:`on_stop`."""

    def subscriptions(self) -> Sequence[Subscription]:
        """Risk decisions, market prices, and everything audited."""
        return [
            Subscription(
                "decisions", (RISK_APPROVED.all(), RISK_REJECTED.all()), {RiskDecision: self.on_risk_decision}
            ),
            Subscription(
                "market",
                (CANDLES.all(), TRADES.all(), BOOK.all()),
                {Candle: self.on_candle, Trade: self.on_trade, BookTop: self.on_book},
                # only the last price per series matters: a backtest hands over the newest one before
                # the agent's next delivery (core.wake); RabbitMQ delivers every one
                wake=LatestPerKey(),
            ),
            Subscription(
                "audit",
                (INTENTS.all(), ORDER_UPDATES.all(), FILLS.all()),
                {TradeIntent: self.on_audited, OrderUpdate: self.on_audited, Fill: self.on_audited},
            ),
        ]

    async def on_start(self) -> None:
        """Continue the audit chain after its last stored record; restore the duplicate memory, today's
        counters and the rate window from the approvals already stored."""
        if self.audit is not None:
            await self.audit.load(self.ctx.clock.now())
            if self.audit.key is not None:
                self._ticker = asyncio.create_task(self._tick_checkpoints(), name="audit-checkpoints")
            else:
                self.log.warning(
                    "audit chain not anchored: no audit key (TRADESWARM_COMPLIANCE_AUDIT_SECRET / _SECRET_FILE), a "
                    "recomputed chain or a cut tail cannot be detected"
                )
        if self.decisions is not None:
            now = self.ctx.clock.now()
            since = now - timedelta(days=self.compliance_settings.restore_days)
            rows = await self.decisions.approvals_since(since)
            self.gate.restore([Approval(i, sym, notional, ts) for i, sym, notional, ts in rows], now)
            self.log.info("compliance state restored", approvals=len(rows), trades_today=self.gate.trades_today)

    async def on_stop(self) -> None:
        """Sign the audit chain's ``stop`` checkpoint; close the database pool."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.audit is not None:
            await self.audit.close(self.ctx.clock.now())
        for resource in self.resources:
            await resource.close()

    async def _tick_checkpoints(self) -> None:
        """Sign a periodic checkpoint when one is due, also when no message comes (wall-clock loop)."""
        audit = self.audit
        assert audit is not None
        every = min(self.compliance_settings.audit_checkpoint_s / 2, 30.0)
        while True:
            await asyncio.sleep(every)
            try:
                await audit.tick(self.ctx.clock.now())
            except Exception as exc:  # noqa: BLE001 - the next tick retries; the verifier shows a gap
                self.log.error("audit checkpoint failed", error=str(exc))

    async def _record(self, kind: str, payload: Payload, envelope: Envelope | None = None) -> None:
        if self.audit is None:
            return
        body: dict[str, Any] = payload.model_dump(mode="json")
        if envelope is not None:
            body = {"message_id": str(envelope.message_id), "payload": body}
        await self.audit.append(self.ctx.clock.now(), kind, _ref(payload), body)
        if self.ctx.instrument:
            metrics.AUDIT_RECORDS.labels(kind).inc()

    async def on_risk_decision(self, decision: RiskDecision, envelope: Envelope) -> None:
        """Gate a risk decision; publish the order (if approved) and the compliance decision."""
        now = self.ctx.clock.now()
        await self._record("risk_decision", decision, envelope)
        result = self.gate.check(decision, now)
        if decision.approved or result.decision.reason == "kill_switch":
            await self._record("compliance_decision", result.decision)
        if self.decisions is not None:
            await self.decisions.record_decision(
                decision.intent_id,
                "risk",
                now,
                decision.verdict.value,
                decision.reason,
                decision.model_dump(mode="json"),
            )
            await self.decisions.record_decision(
                result.decision.intent_id,
                "compliance",
                now,
                result.decision.verdict.value,
                result.decision.reason,
                result.decision.model_dump(mode="json"),
            )
        if result.order is not None:
            await self._record("order_request", result.order)
            await self.publish(result.order, cause=envelope)
        if decision.approved:
            await self.publish(result.decision, cause=envelope)
        if result.order is None and decision.approved and is_exit(decision):
            await self._exit_refused(decision, result.decision.reason, result.decision.detail, envelope)
        if self.ctx.instrument and decision.approved:
            outcome = "approved" if result.decision.verdict is DecisionVerdict.APPROVE else "rejected"
            metrics.COMPLIANCE_DECISIONS.labels(outcome, result.decision.reason).inc()

    async def _exit_refused(self, decision: RiskDecision, reason: str, detail: str, envelope: Envelope) -> None:
        """A refused exit leaves exposure the swarm meant to close: a critical alert, not a log line. A
        redelivered exit refused as a duplicate is not one (its first delivery went through)."""
        if reason == "duplicate_intent":
            return
        message = f"exit {decision.intent_id} refused: {reason}" + (f" ({detail})" if detail else "")
        self.log.error("exit_refused", intent_id=str(decision.intent_id), reason=reason, detail=detail)
        alert = RiskAlert(
            severity=Severity.CRITICAL,
            code="exit_refused",
            message=message[:2000],
            venue=decision.venue,
            symbol=decision.symbol,
        )
        await self._record("alert", alert)
        await self.publish(alert, cause=envelope)

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        """Last price = the candle's close; a signed audit checkpoint when one is due."""
        self.gate.on_price(candle.venue, candle.symbol, candle.close)
        audit = self.audit
        if audit is not None and audit.key is not None:
            await audit.tick(self.ctx.clock.now())

    def on_trade(self, trade: Trade, envelope: Envelope) -> None:
        """Last price = the trade's price."""
        self.gate.on_price(trade.venue, trade.symbol, trade.price)

    def on_book(self, book: BookTop, envelope: Envelope) -> None:
        """Last price = the book's last, else its mid."""
        self.gate.on_price(book.venue, book.symbol, book.last or (book.bid + book.ask) / 2)

    async def on_audited(self, payload: Payload, envelope: Envelope) -> None:
        """Append intents, order updates and fills to the audit trail (and intents to ``signals``)."""
        await self._record(payload.TYPE, payload, envelope)
        if isinstance(payload, TradeIntent) and self.decisions is not None:
            await self.decisions.record_signal(payload.intent_id, payload.decided_at, payload.model_dump(mode="json"))

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        """HALT/PAUSE engage the kill switch, RESUME releases it; FLATTEN is not ours."""
        if command.kind in (CommandKind.HALT, CommandKind.PAUSE):
            self.gate.halt(command.reason or command.kind.value)
            self.halted = True
        elif command.kind is CommandKind.RESUME:
            self.gate.resume()
            self.halted = False
        else:
            return None
        await self._record("command", command, envelope)
        if self.ctx.instrument:
            metrics.COMPLIANCE_HALTED.set(1 if self.halted else 0)
        return "kill switch engaged" if self.halted else "kill switch released"


async def build(ctx: AgentContext) -> Agent:
    """The compliance agent with its audit trail and decisions in PostgreSQL."""
    from infrastructure.database.timescale import Database, PostgresAuditStore, PostgresDecisionStore, apply_migrations

    db = Database(ctx.settings.postgres_dsn.get_secret_value())
    await db.connect()
    await apply_migrations(db)
    agent = ComplianceAgent(ctx, ComplianceSettings(), PostgresAuditStore(db), PostgresDecisionStore(db))
    agent.resources.append(db)
    return agent
