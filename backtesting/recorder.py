"""The backtest's observer on the bus: fills, orders, decisions, alerts and (optionally) the flow.

It is an ordinary subscriber like any agent: it sees exactly what the swarm published. The engine
asks it for the account value at each bar close (cash plus positions at the last closes), so the
equity curve is computed from the fills on the bus with the same accounting conventions as the
portfolio (a buy pays notional + fee, a sell receives notional - fee). It counts every rejection,
adjustment and alert by reason and the trading-state changes (:class:`backtesting.outcomes.Outcomes`)
— a handful of messages per order, none per candle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agents.base import Agent, AgentContext, Subscription
from backtesting.outcomes import Outcomes
from backtesting.trades import FillRecord
from core.domain import Side
from core.messages import (
    ComplianceDecision,
    ConsensusDecision,
    Envelope,
    Fill,
    OrderRequest,
    OrderUpdate,
    PortfolioSnapshot,
    ReviewRequest,
    RiskAlert,
    RiskDecision,
    TradeIntent,
)
from core.routing import (
    ALERTS,
    COMPLIANCE_DECISIONS,
    CONSENSUS,
    FILLS,
    INTENTS,
    ORDER_UPDATES,
    ORDERS_APPROVED,
    PORTFOLIO,
    REVIEW_REQUESTS,
    RISK_APPROVED,
    RISK_REJECTED,
)

ZERO = Decimal(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order request as published by compliance (what parity compares)."""

    client_order_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    reference_price: Decimal
    ts_event: str


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One line of the live view's event log."""

    ts: str
    kind: str
    text: str


class Recorder(Agent):
    """Collects fills and orders; with ``observe_flow`` also decisions for the live view."""

    kind = "backtest"

    def __init__(self, ctx: AgentContext, initial_cash: Decimal, *, observe_flow: bool = False,
                 on_event: Callable[[FeedEvent], None] | None = None) -> None:  # fmt: skip
        super().__init__(ctx)
        self.cash = initial_cash
        self.positions: dict[str, Decimal] = {}
        self.fills: list[FillRecord] = []
        self.orders: list[OrderRecord] = []
        self.fees = ZERO
        self.traded_notional = ZERO
        self.observe_flow = observe_flow
        self.events: deque[FeedEvent] = deque(maxlen=200)
        self.counts: dict[str, int] = {}
        self.last_snapshot: PortfolioSnapshot | None = None
        self._on_event = on_event
        self._open = 0
        self._cash_float: float | None = None
        self.outcomes = Outcomes()
        self.min_cash = initial_cash
        """The lowest cash after any fill (a spot account without credit never goes below zero)."""

    def subscriptions(self) -> Sequence[Subscription]:
        """Fills, approved orders, decisions and outputs; the intents too when observing the flow."""
        subs = [
            Subscription("fills", (FILLS.all(),), {Fill: self.on_fill}),
            Subscription("orders", (ORDERS_APPROVED.all(),), {OrderRequest: self.on_order}),
            # outputs no trading agent consumes (the orchestrator does in a full deployment): bound
            # here so that mandatory publishing finds a queue, counted, and shown by the live view
            Subscription(
                "outputs",
                (CONSENSUS.all(), ALERTS.all(), PORTFOLIO.all(), REVIEW_REQUESTS.all()),
                {
                    ConsensusDecision: self.on_output,
                    RiskAlert: self.on_output,
                    PortfolioSnapshot: self.on_flow,
                    ReviewRequest: self.on_review,
                },
            ),
            Subscription(
                "decisions",
                (RISK_APPROVED.all(), RISK_REJECTED.all(), COMPLIANCE_DECISIONS.all(), ORDER_UPDATES.all()),
                {RiskDecision: self.on_decision, ComplianceDecision: self.on_decision, OrderUpdate: self.on_decision},
            ),
        ]
        if self.observe_flow:
            subs.append(Subscription("flow", (INTENTS.all(),), {TradeIntent: self.on_flow}))
        return subs

    async def on_decision(self, payload: RiskDecision | ComplianceDecision | OrderUpdate, envelope: Envelope) -> None:
        """Count a decision or an order's end by reason (shown by the live view when observing)."""
        if isinstance(payload, RiskDecision):
            self.outcomes.on_risk(payload)
        elif isinstance(payload, ComplianceDecision):
            self.outcomes.on_compliance(payload)
        else:
            self.outcomes.on_order(payload)
        if self.observe_flow:
            await self.on_flow(payload, envelope)

    async def on_review(self, request: ReviewRequest, envelope: Envelope) -> None:
        """A MANUAL_REVIEW queued for a person: nobody reviews in a backtest, so it expires (counted)."""
        self.outcomes.reviews_requested += 1
        await self.on_flow(request, envelope)

    async def on_output(self, payload: ConsensusDecision | RiskAlert, envelope: Envelope) -> None:
        """Count consensus outcomes and alerts (with the trading-state changes they carry)."""
        if isinstance(payload, RiskAlert):
            self.outcomes.on_alert(payload, _ms(envelope.ts_event))
        else:
            self.outcomes.on_consensus(payload)
        await self.on_flow(payload, envelope)

    async def on_fill(self, fill: Fill, envelope: Envelope) -> None:
        """Move cash and the position; keep the fill for the round trips."""
        notional = fill.price * fill.quantity
        if fill.side is Side.BUY:
            self.cash -= notional + fill.fee
            signed = fill.quantity
        else:
            self.cash += notional - fill.fee
            signed = -fill.quantity
        self.min_cash = min(self.min_cash, self.cash)
        self.positions[fill.symbol] = self.positions.get(fill.symbol, ZERO) + signed
        self._open = sum(1 for q in self.positions.values() if q)
        self._cash_float = None
        self.fees += fill.fee
        self.traded_notional += notional
        self.fills.append(FillRecord(fill.symbol, fill.side, fill.price, fill.quantity, fill.fee, fill.ts,
                                     fill.client_order_id))  # fmt: skip
        if self.observe_flow:
            self._event(
                envelope, "fill", f"{fill.side.value} {fill.quantity} {fill.symbol} @ {fill.price} fee {fill.fee:.4f}"
            )

    async def on_order(self, order: OrderRequest, envelope: Envelope) -> None:
        """Keep the approved order."""
        self.orders.append(
            OrderRecord(
                order.client_order_id,
                order.symbol,
                order.side.value,
                order.order_type.value,
                order.quantity,
                order.reference_price,
                envelope.ts_event.isoformat(),
            )
        )
        if self.observe_flow:
            self._event(
                envelope, "order", f"{order.side.value} {order.quantity} {order.symbol} ({order.order_type.value})"
            )

    async def on_flow(self, payload: Any, envelope: Envelope) -> None:
        """Decisions for the live view."""
        kind = envelope.type
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if isinstance(payload, PortfolioSnapshot):
            self.last_snapshot = payload
            return
        if not self.observe_flow:
            return
        if isinstance(payload, ConsensusDecision):
            text = (
                f"{payload.symbol} {payload.outcome.value} {payload.direction.value} score {payload.weighted_score:.0f}"
            )
        elif isinstance(payload, TradeIntent):
            text = f"{payload.symbol} {payload.side.value} ({payload.direction.value}) @ {payload.reference_price}"
        elif isinstance(payload, RiskDecision | ComplianceDecision):
            text = f"{payload.symbol} {payload.verdict.value}: {payload.reason}"
        elif isinstance(payload, OrderUpdate):
            text = f"{payload.symbol} {payload.client_order_id} {payload.status.value}"
        elif isinstance(payload, RiskAlert):
            text = f"{payload.severity.value} {payload.code}: {payload.message}"
        elif isinstance(payload, ReviewRequest):
            text = f"{payload.symbol} {payload.side.value} ({payload.direction.value}) waits for a person"
        else:  # pragma: no cover - every subscribed type is handled above
            text = kind
        self._event(envelope, kind, text)

    def _event(self, envelope: Envelope, kind: str, text: str) -> None:
        event = FeedEvent(envelope.ts_event.strftime("%Y-%m-%d %H:%M"), kind, text)
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def equity(self, closes: dict[str, Decimal]) -> Decimal:
        """Cash plus every position at its last close."""
        value = self.cash
        for symbol, qty in self.positions.items():
            if qty:
                value += qty * closes[symbol]
        return value

    def in_market(self) -> bool:
        """Any position open."""
        return self._open > 0

    def cash_float(self) -> float:
        """Cash as a float (cached between fills: the equity of a flat account)."""
        if self._cash_float is None:
            self._cash_float = float(self.cash)
        return self._cash_float
