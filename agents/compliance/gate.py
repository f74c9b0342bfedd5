"""The compliance gate: the last pre-trade check before an order exists. Pure.

Checks, in order (the first failure is the reason): kill switch, risk verdict, staleness, duplicate
intent, venue/symbol allow-list, trading-hours window, a last price (fail closed without one),
price collar, max quantity and notional per order, order-rate throttle, trades and notional volume
per day (per symbol and total). An approval becomes an :class:`OrderRequest` with the client order
id derived from the intent id; counters move only on approval.

An exit (``direction=exit``: risk sizes it to reduce what is held, never to flip, and execution caps
the reduce-only order to its own book) only reduces exposure: the caps meant to limit risk-taking
(quantity and notional per order, order rate, trades and volume per day) never block it — an exit
cannot exceed what is held, whatever its size; it still counts in the counters. The kill switch,
staleness, duplicates, the allow-list, the trading window, the reference price and the price collar
apply to exits too.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from uuid import UUID

from agents.compliance.settings import ComplianceSettings
from core.domain import DecisionVerdict, Direction, OrderType
from core.ids import client_order_id
from core.messages.decisions import ComplianceDecision, RiskDecision
from core.messages.orders import OrderRequest
from core.trading.retention import ExpiryQueue, grace_of

BPS = Decimal(10_000)
ZERO = Decimal(0)


def is_exit(decision: RiskDecision) -> bool:
    """Whether a risk decision only reduces exposure (an exit or a FLATTEN's closing order)."""
    return decision.direction is Direction.EXIT


def in_trading_window(now: datetime, start: time, end: time, days: Sequence[int]) -> bool:
    """Whether ``now`` (UTC) is inside the trading window. ``start > end`` is a window across
    midnight (22:00-02:00): its part after midnight belongs to the session opened the day before, so
    ``days`` names the day each session opens on."""
    t = now.time().replace(tzinfo=None)
    if start <= end:
        return now.weekday() in days and start <= t <= end
    if t >= start:
        return now.weekday() in days
    if t <= end:
        return (now.weekday() - 1) % 7 in days
    return False


@dataclass(frozen=True, slots=True)
class Approval:
    """An approval made before (to restore the gate's state after a restart)."""

    intent_id: UUID
    symbol: str
    notional: Decimal
    ts: datetime


@dataclass(frozen=True, slots=True)
class GateResult:
    """The decision, and the order when approved."""

    decision: ComplianceDecision
    order: OrderRequest | None


class ComplianceGate:
    """Stateful pre-trade checks (see the module docstring)."""

    def __init__(self, settings: ComplianceSettings) -> None:
        self.settings = settings
        self.halted = False
        self.halt_reason = ""
        self.last_price: dict[tuple[str, str], Decimal] = {}
        self._seen: OrderedDict[UUID, GateResult | None] = OrderedDict()
        grace = grace_of(settings.retention_grace_s)
        self._expiry: ExpiryQueue[UUID] | None = ExpiryQueue(grace) if grace is not None else None
        """With a retention grace: approved intents by expiry, to forget them once long expired."""
        self._recent: deque[datetime] = deque()
        self._day: date | None = None
        self.trades_today = 0
        self.volume_today = ZERO
        self.trades_by_symbol: dict[str, int] = {}
        self.volume_by_symbol: dict[str, Decimal] = {}
        self._allowed_symbols = frozenset(settings.allowed_symbols)
        self._allowed_venues = frozenset(settings.allowed_venues)

    def on_price(self, venue: str, symbol: str, price: Decimal) -> None:
        """Record the last traded/close price of a symbol (for the collar and notional)."""
        self.last_price[(venue, symbol)] = price

    def halt(self, reason: str) -> None:
        """Kill switch on: every new decision is rejected until :meth:`resume`."""
        self.halted = True
        self.halt_reason = reason

    def resume(self) -> None:
        """Kill switch off."""
        self.halted = False
        self.halt_reason = ""

    def _roll_day(self, now: datetime) -> None:
        day = now.date()
        if day != self._day:
            self._day = day
            self.trades_today = 0
            self.volume_today = ZERO
            self.trades_by_symbol.clear()
            self.volume_by_symbol.clear()

    def check(self, decision: RiskDecision, now: datetime) -> GateResult:
        """Approve or reject a risk decision. A repeated intent id gets ``duplicate_intent``."""
        if decision.intent_id in self._seen:
            return GateResult(self._decision(decision, "duplicate_intent", "intent already decided", reject=True), None)
        result = self._check(decision, now)
        if decision.approved:
            self._seen[decision.intent_id] = result
            if len(self._seen) > self.settings.dedupe_window:
                self._seen.popitem(last=False)
            if self._expiry is not None:
                self._forget_expired(decision, now)
        return result

    def _forget_expired(self, decision: RiskDecision, now: datetime) -> None:
        """Track an approved intent and forget those that expired more than the retention grace ago:
        a redelivery of one is then rejected as ``stale_intent`` instead of ``duplicate_intent``
        (a rejection either way, :mod:`core.trading.retention`)."""
        expiry = self._expiry
        if expiry is None:
            return
        expiry.add(decision.intent_id, decision.expires_at)
        for intent_id in expiry.due(now):
            self._seen.pop(intent_id, None)

    def restore(self, approvals: Sequence[Approval], now: datetime) -> None:
        """Rebuild the duplicate memory, today's counters and the rate window after a restart from
        the approvals already made (the ``decisions`` table)."""
        self._roll_day(now)
        window = self.settings.rate_window_s
        for a in sorted(approvals, key=lambda x: x.ts):
            self._seen[a.intent_id] = None
            if a.ts.date() == now.date():
                self.trades_today += 1
                self.volume_today += a.notional
                self.trades_by_symbol[a.symbol] = self.trades_by_symbol.get(a.symbol, 0) + 1
                self.volume_by_symbol[a.symbol] = self.volume_by_symbol.get(a.symbol, ZERO) + a.notional
            if (now - a.ts).total_seconds() < window:
                self._recent.append(a.ts)

    def _decision(
        self, d: RiskDecision, reason: str, detail: str = "", *, reject: bool, checks: tuple[str, ...] = ()
    ) -> ComplianceDecision:
        return ComplianceDecision(
            intent_id=d.intent_id,
            verdict=DecisionVerdict.REJECT if reject else DecisionVerdict.APPROVE,
            reason=reason,
            detail=detail[:2000],
            venue=d.venue,
            symbol=d.symbol,
            side=d.side,
            quantity=None if reject else d.quantity,
            client_order_id=None if reject else client_order_id(d.intent_id),
            checks=checks,
        )

    def _cap(self, symbol: str, notional: Decimal) -> tuple[str, str] | None:
        """The first risk-taking cap an entry of ``notional`` breaks (reason, detail), else None."""
        s = self.settings
        if notional > s.max_order_notional:
            return "max_order_notional", f"{notional} > {s.max_order_notional}"
        if len(self._recent) >= s.max_orders_per_window:
            return "order_rate", f"{len(self._recent)} orders in {s.rate_window_s}s"
        if self.trades_today + 1 > s.max_trades_per_day:
            return "max_trades_per_day", str(self.trades_today)
        if self.trades_by_symbol.get(symbol, 0) + 1 > s.max_trades_per_day_per_symbol:
            return "max_trades_per_day_symbol", str(self.trades_by_symbol.get(symbol, 0))
        if self.volume_today + notional > s.max_volume_per_day:
            return "max_volume_per_day", str(self.volume_today)
        if self.volume_by_symbol.get(symbol, ZERO) + notional > s.max_volume_per_day_per_symbol:
            return "max_volume_per_day_symbol", str(self.volume_by_symbol.get(symbol, ZERO))
        return None

    def _check(self, d: RiskDecision, now: datetime) -> GateResult:
        s = self.settings

        def reject(reason: str, detail: str = "") -> GateResult:
            return GateResult(self._decision(d, reason, detail, reject=True), None)

        if self.halted:
            return reject("kill_switch", self.halt_reason)
        if not d.approved or d.quantity is None:
            return reject("risk_rejected", d.reason)
        if now >= d.expires_at:
            return reject("stale_intent", f"expired at {d.expires_at.isoformat()}")
        if d.venue not in self._allowed_venues:
            return reject("venue_not_allowed", d.venue)
        if d.symbol not in self._allowed_symbols:
            return reject("symbol_not_allowed", d.symbol)
        if not in_trading_window(now, s.trading_start, s.trading_end, s.trading_days):
            return reject("outside_trading_hours", now.isoformat())
        last = self.last_price.get((d.venue, d.symbol))
        if last is None:
            return reject("no_reference_price", "no market price seen yet")
        deviation = abs(d.reference_price - last) / last
        if deviation > s.price_collar_pct:
            return reject("price_collar", f"reference {d.reference_price} vs last {last}")
        qty = d.quantity
        limit_price: Decimal | None = None
        if s.order_type == "limit":
            offset = s.limit_offset_bps / BPS
            limit_price = (
                d.reference_price * (1 + offset) if d.side.value == "buy" else d.reference_price * (1 - offset)
            )
            if abs(limit_price - last) / last > s.price_collar_pct:
                return reject("price_collar", f"limit {limit_price} vs last {last}")
        if qty > s.max_order_quantity and not is_exit(d):
            return reject("max_order_quantity", f"{qty} > {s.max_order_quantity}")
        notional = qty * max(last, d.reference_price)
        while self._recent and (now - self._recent[0]).total_seconds() >= s.rate_window_s:
            self._recent.popleft()
        self._roll_day(now)
        if not is_exit(d):  # caps on risk-taking: an exit only reduces exposure
            capped = self._cap(d.symbol, notional)
            if capped is not None:
                return reject(*capped)

        self._recent.append(now)
        self.trades_today += 1
        self.volume_today += notional
        self.trades_by_symbol[d.symbol] = self.trades_by_symbol.get(d.symbol, 0) + 1
        self.volume_by_symbol[d.symbol] = self.volume_by_symbol.get(d.symbol, ZERO) + notional
        order = OrderRequest(
            client_order_id=client_order_id(d.intent_id),
            intent_id=d.intent_id,
            venue=d.venue,
            symbol=d.symbol,
            side=d.side,
            order_type=OrderType.LIMIT if limit_price is not None else OrderType.MARKET,
            quantity=qty,
            limit_price=limit_price,
            reference_price=d.reference_price,
            stop_loss=d.stop_loss,
            take_profit=d.take_profit,
            trailing_stop_pct=d.trailing_stop_pct,
            reduce_only=is_exit(d),
            expires_at=d.expires_at,
        )
        checks = (
            "kill_switch",
            "stale",
            "duplicate",
            "allow_list",
            "trading_hours",
            "price_collar",
            "max_order_quantity",
            "max_order_notional",
            "order_rate",
            "daily_trades",
            "daily_volume",
        )
        return GateResult(self._decision(d, "approved", reject=False, checks=checks), order)
