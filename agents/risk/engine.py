"""The risk engine: portfolio view, sizing, limits, trading state. Pure (no I/O, no clock calls).

The agent feeds it candles (marks, ATR, VaR), fills, order updates and compliance decisions, and
asks it to decide on intents. Approved quantities are *reserved* until the order ends (filled,
cancelled, rejected) so a flood of intents cannot together exceed a limit before fills arrive.
Every path that cannot decide rejects (fail closed).

ATR and the VaR return windows are kept per series ``(venue, symbol, timeframe)``: an intent is sized
on the ATR of its own timeframe. The trading state is what the commands asked (ACTIVE, REDUCING,
HALTED) combined with the drawdown breaker, which lifts by ``drawdown_recovery`` (see
:meth:`RiskEngine._after_mark`); every change of state raises an alert carrying the new state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from agents.risk.settings import RiskSettings
from agents.risk.sizing import (
    AtrTracker,
    NetPnl,
    TradeStats,
    fixed_fraction,
    half_kelly_fraction,
    risk_size,
    round_down,
)
from agents.risk.var import ReturnWindow, SeriesKey, VarFigures, portfolio_figures
from core.domain import DecisionVerdict, Direction, OrderStatus, Severity, Side, TradingState
from core.ids import content_id
from core.messages.control import RiskAlert
from core.messages.decisions import RiskDecision
from core.messages.orders import Fill
from core.messages.signals import TradeIntent
from core.trading.portfolio import ZERO, Portfolio
from core.trading.retention import ExpiryQueue, grace_of

BPS = Decimal(10_000)
MIN_VAR_RETURNS = 20
"""Returns a series needs before it enters the portfolio VaR."""

_BREAKER_MARGIN = Decimal("1e-9")


@dataclass(slots=True)
class Reservation:
    """Quantity approved for an intent but not yet filled or ended."""

    venue: str
    symbol: str
    side: Side
    remaining: Decimal
    price: Decimal
    expires_at: datetime

    @property
    def signed(self) -> Decimal:
        """Signed remaining quantity."""
        return self.remaining if self.side is Side.BUY else -self.remaining


@dataclass(slots=True)
class Verdict:
    """What :meth:`RiskEngine.decide` produced: the decision and any alerts."""

    decision: RiskDecision
    alerts: list[RiskAlert]


class RiskEngine:
    """Decides on trade intents against the portfolio and the configured limits."""

    def __init__(
        self, settings: RiskSettings, portfolio: Portfolio | None = None, decision_cache: int = 100_000
    ) -> None:
        self.settings = settings
        self.portfolio = portfolio or Portfolio(settings.initial_cash, settings.account)
        self.state = TradingState.ACTIVE
        """The effective trading state: :attr:`commanded` combined with the drawdown breaker."""
        self.commanded = TradingState.ACTIVE
        """What the commands asked (HALT, PAUSE / FLATTEN, RESUME)."""
        self.breaker_tripped = False
        """The drawdown breaker holds the state at REDUCING until ``drawdown_recovery`` lifts it."""
        self.reservations: dict[UUID, Reservation] = {}
        self.last_price: dict[tuple[str, str], Decimal] = {}
        self.atr: dict[SeriesKey, AtrTracker] = {}
        self.stats = TradeStats()
        self._net_pnl = NetPnl()
        self.returns: dict[SeriesKey, ReturnWindow] = {}
        self.var: VarFigures | None = None
        self._decided: OrderedDict[UUID, RiskDecision] = OrderedDict()
        self._decision_cache = decision_cache
        grace = grace_of(settings.retention_grace_s)
        self._expiry: ExpiryQueue[UUID] | None = ExpiryQueue(grace) if grace is not None else None
        """With a retention grace: decided intents by expiry, to forget them (see :meth:`_remember`)."""
        self._fill_expiry: ExpiryQueue[str] | None = ExpiryQueue(grace) if grace is not None else None
        """With a retention grace: applied fill ids by fill time, forgotten one grace later."""
        self._day: date | None = None
        self._day_start_equity = settings.initial_cash
        self._daily_limit = settings.daily_loss_limit_pct
        self._daily_floor = settings.initial_cash * (1 - settings.daily_loss_limit_pct)
        self._max_drawdown = float(settings.max_drawdown_pct)
        self._resume_level = float(settings.drawdown_resume_pct)
        self._breaker_peak: Decimal | None = None
        self._breaker_floor = ZERO
        self._var_every = settings.var_every
        self._track_atr = settings.sizing == "volatility"
        self._daily_loss_hit = False
        self._marks = 0
        self._var_alerted = False

    # --- inputs --------------------------------------------------------------------------------
    def on_candle(
        self, venue: str, symbol: str, timeframe: str, ts: datetime, high: Decimal, low: Decimal, close: Decimal
    ) -> list[RiskAlert]:
        """Mark to market, update the series' ATR (volatility sizing only) and returns, daily PnL,
        drawdown (and the breaker's recovery) and VaR; returns the alerts raised."""
        self.last_price[(venue, symbol)] = close
        series = (venue, symbol, timeframe)
        if self._track_atr:
            tracker = self.atr.get(series)
            if tracker is None:
                tracker = self.atr[series] = AtrTracker(self.settings.atr_period)
            tracker.update(high, low, close)
        window = self.returns.get(series)
        if window is None:
            window = self.returns[series] = ReturnWindow(self.settings.var_window)
        window.add_price(float(close))
        self.portfolio.mark(venue, symbol, close)
        return self._after_mark(ts)

    def _after_mark(self, ts: datetime) -> list[RiskAlert]:
        alerts: list[RiskAlert] = []
        portfolio = self.portfolio
        equity = portfolio.equity
        day = ts.date()
        if day != self._day:
            self._day = day
            if self.breaker_tripped and self.settings.drawdown_recovery == "next_day":
                # the breaker lifts at the first mark of a new UTC day; the drawdown restarts from here
                portfolio.peak_equity = equity
                alerts.append(self._lift_breaker(portfolio.drawdown_at(equity), "a new trading day"))
            self._day_start_equity = equity
            self._daily_floor = equity * (1 - self._daily_limit)
            self._daily_loss_hit = False
        if not self._daily_loss_hit and equity <= self._daily_floor:
            self._daily_loss_hit = True
            alerts.append(
                self._alert(
                    Severity.WARNING,
                    "daily_loss_limit",
                    "daily loss limit reached: no new entries today",
                    float(self._day_start_equity - equity),
                    float(self._day_start_equity * self.settings.daily_loss_limit_pct),
                )
            )
        if self.breaker_tripped:
            if self.settings.drawdown_recovery == "recovered" and portfolio.drawdown_at(equity) <= self._resume_level:
                alerts.append(self._lift_breaker(portfolio.drawdown_at(equity), "the drawdown recovered"))
        elif (
            equity < portfolio.peak_equity
            and not self._surely_above_breaker(equity, portfolio.peak_equity)
            and portfolio.drawdown_at(equity) >= self._max_drawdown
        ):
            alerts.append(self._trip_breaker(portfolio.drawdown_at(equity)))
        self._marks += 1
        if self._marks % self._var_every == 0:
            var = self._portfolio_var()
            if var is not None:
                self.var = var
                over = var.var99 > self.settings.var_limit_pct
                if over and not self._var_alerted:
                    alerts.append(
                        self._alert(
                            Severity.WARNING,
                            "var_limit",
                            f"99% historical VaR of the positions ({var.timeframe} horizon) above its limit",
                            var.var99,
                            self.settings.var_limit_pct,
                        )
                    )
                self._var_alerted = over
        return alerts

    def _portfolio_var(self) -> VarFigures | None:
        """Historical-simulation VaR of the open positions (:func:`agents.risk.var.portfolio_figures`)."""
        portfolio = self.portfolio
        equity = portfolio.equity
        if equity <= ZERO:
            return None
        weights = {key: float(p.market_value / equity) for key, p in portfolio.positions.items() if p.is_open}
        return portfolio_figures(weights, self.returns, MIN_VAR_RETURNS)

    # --- trading state ---------------------------------------------------------------------------
    def _effective_state(self) -> TradingState:
        if self.commanded is TradingState.HALTED:
            return TradingState.HALTED
        if self.commanded is TradingState.REDUCING or self.breaker_tripped:
            return TradingState.REDUCING
        return TradingState.ACTIVE

    def _trip_breaker(self, drawdown: float) -> RiskAlert:
        """The drawdown breaker trips: exits only until ``drawdown_recovery`` lifts it."""
        self.breaker_tripped = True
        self.state = self._effective_state()
        recovery = {
            "next_day": "until the next UTC day",
            "recovered": f"until the drawdown is back at {self.settings.drawdown_resume_pct:%}",
            "manual": "until a RESUME command",
        }[self.settings.drawdown_recovery]
        return self._alert(
            Severity.CRITICAL,
            "max_drawdown",
            f"drawdown circuit breaker: exits only {recovery}",
            drawdown,
            float(self.settings.max_drawdown_pct),
            trading_state=self.state,
        )

    def _lift_breaker(self, drawdown: float, why: str) -> RiskAlert:
        self.breaker_tripped = False
        self.state = self._effective_state()
        return self._alert(
            Severity.INFO,
            "drawdown_breaker_lifted",
            f"drawdown circuit breaker lifted ({why}): trading state {self.state.value}",
            drawdown,
            float(self.settings.max_drawdown_pct),
            trading_state=self.state,
        )

    def _surely_above_breaker(self, equity: Decimal, peak: Decimal) -> bool:
        """Whether ``equity`` is clearly (by 1e-9 of the peak) above the drawdown breaker's level.

        The exact drawdown (a 28-digit Decimal division) costs ~2 us and would run on every candle
        below the peak; this comparison against a floor cached per peak settles almost all of them,
        and only candles within 1e-9 of the level (or a non-positive peak) take the exact test.
        """
        if peak <= ZERO:
            return False
        if peak is not self._breaker_peak:
            self._breaker_peak = peak
            self._breaker_floor = peak * (1 - self.settings.max_drawdown_pct + _BREAKER_MARGIN)
        return equity > self._breaker_floor

    @property
    def daily_loss_floor(self) -> Decimal:
        """Equity below which no new entry is allowed today."""
        return self._daily_floor

    def _daily_loss_reached(self, equity: Decimal) -> bool:
        return equity <= self._daily_floor

    def on_fill(self, fill: Fill) -> None:
        """Apply a fill to the portfolio (once per fill id) and consume the intent's reservation.

        With a retention grace a fill id is remembered until one grace after the fill's time (no fill
        is reported again that late in the runs that set it: backtests)."""
        before = self.portfolio.position(fill.venue, fill.symbol)
        new = self.portfolio.apply_fill(
            fill.fill_id, fill.venue, fill.symbol, fill.side, fill.quantity, fill.price, fill.fee
        )
        if new is None:
            return
        if self._fill_expiry is not None:
            self._fill_expiry.add(fill.fill_id, fill.ts)
            self.portfolio.forget_fills(self._fill_expiry.due(fill.ts))
        self.last_price.setdefault((fill.venue, fill.symbol), fill.price)
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        net = self._net_pnl.on_fill(
            (fill.venue, fill.symbol), before.quantity, signed, fill.fee, new.realized_pnl - before.realized_pnl
        )
        if net is not None:
            self.stats.record(net)
        res = self.reservations.get(fill.intent_id)
        if res is not None:
            res.remaining -= fill.quantity
            if res.remaining <= ZERO:
                del self.reservations[fill.intent_id]

    def on_order_status(self, intent_id: UUID, status: OrderStatus) -> None:
        """Release the reservation of an order that can no longer fill."""
        if status.is_terminal:
            self.reservations.pop(intent_id, None)

    def on_compliance_reject(self, intent_id: UUID) -> None:
        """Compliance blocked an approved intent: release its reservation."""
        self.reservations.pop(intent_id, None)

    def set_state(self, state: TradingState) -> RiskAlert | None:
        """Set the commanded trading state (HALT, PAUSE, RESUME); RESUME also lifts the drawdown
        breaker and resets the drawdown peak to current equity. Returns the alert announcing a change
        of the effective state (``None`` when it did not change)."""
        before = self.state
        if state is TradingState.ACTIVE and before is not TradingState.ACTIVE:
            self.portfolio.peak_equity = self.portfolio.equity
            self.breaker_tripped = False
        self.commanded = state
        self.state = self._effective_state()
        if self.state is before:
            return None
        return self._alert(
            Severity.INFO if self.state is TradingState.ACTIVE else Severity.WARNING,
            "trading_state",
            f"trading state {before.value} -> {self.state.value} (command)",
            None,
            None,
            trading_state=self.state,
        )

    def expire_reservations(self, now: datetime) -> None:
        """Drop reservations nobody reported on long after their intent expired."""
        grace = timedelta(seconds=self.settings.reservation_ttl_s)
        for intent_id in [i for i, r in self.reservations.items() if r.expires_at + grace < now]:
            del self.reservations[intent_id]

    # --- the decision --------------------------------------------------------------------------
    def decide(self, intent: TradeIntent, now: datetime) -> Verdict:
        """Approve, adjust or reject ``intent`` at time ``now``. The same intent gets the same answer."""
        cached = self._decided.get(intent.intent_id)
        if cached is not None:
            return Verdict(cached, [])
        self.expire_reservations(now)
        alerts: list[RiskAlert] = []
        decision = self._decide(intent, now, alerts)
        self._remember(decision, now)
        if decision.approved and decision.quantity is not None:
            self.reservations[intent.intent_id] = Reservation(
                intent.venue, intent.symbol, decision.side, decision.quantity, intent.reference_price, intent.expires_at
            )
        return Verdict(decision, alerts)

    def _remember(self, decision: RiskDecision, now: datetime) -> None:
        """Cache a decision (the same intent gets the same answer), at most ``decision_cache`` of them.

        With a retention grace (``RiskSettings.retention_grace_s``, set by backtests) a decision is also
        forgotten once its intent expired more than the grace ago and holds no reservation: a
        redelivery of it then is rejected as stale, and nothing it approved can still execute
        (:mod:`core.trading.retention`)."""
        decided = self._decided
        decided[decision.intent_id] = decision
        if len(decided) > self._decision_cache:
            decided.popitem(last=False)
        expiry = self._expiry
        if expiry is None:
            return
        expiry.add(decision.intent_id, decision.expires_at)
        for intent_id in expiry.due(now):
            if intent_id in self.reservations:
                expiry.add(intent_id, now)
            else:
                decided.pop(intent_id, None)

    def _reject(self, intent: TradeIntent, reason: str, detail: str = "", side: Side | None = None) -> RiskDecision:
        return RiskDecision(
            intent_id=intent.intent_id,
            verdict=DecisionVerdict.REJECT,
            reason=reason,
            detail=detail,
            venue=intent.venue,
            symbol=intent.symbol,
            side=side or intent.side,
            direction=intent.direction,
            reference_price=intent.reference_price,
            expires_at=intent.expires_at,
        )

    def _decide(self, intent: TradeIntent, now: datetime, alerts: list[RiskAlert]) -> RiskDecision:
        s = self.settings
        if now >= intent.expires_at:
            return self._reject(intent, "stale_intent", f"expired at {intent.expires_at.isoformat()}")
        if self.state is TradingState.HALTED:
            return self._reject(intent, "trading_halted")
        key = (intent.venue, intent.symbol)
        pos = self.portfolio.position(*key)
        reserved = sum((r.signed for r in self.reservations.values() if (r.venue, r.symbol) == key), ZERO)
        projected = pos.quantity + reserved
        price = intent.reference_price

        is_exit = intent.direction in (Direction.EXIT, Direction.FLAT)
        if not is_exit and intent.side is Side.SELL and not s.allow_short:
            if projected <= ZERO:
                return self._reject(intent, "short_not_allowed")
            is_exit = True  # a short signal while long closes the long (spot: reduce only)
        if not is_exit and intent.side is Side.BUY and projected < ZERO:
            is_exit = True  # a long signal while short covers the short
        if is_exit:
            # close what is held net of exits already pending; pending entries are not sold ahead
            pending_exits = sum(
                (
                    r.signed
                    for r in self.reservations.values()
                    if (r.venue, r.symbol) == key and (r.signed > ZERO) != (pos.quantity > ZERO)
                ),
                ZERO,
            )
            return self._exit(intent, pos.quantity + pending_exits if pos.quantity != ZERO else ZERO)

        if self.state is TradingState.REDUCING:
            return self._reject(intent, "reducing_only", "drawdown breaker or command: exits only")
        equity = self.portfolio.equity
        if equity <= ZERO:
            return self._reject(intent, "no_equity")
        if self._daily_loss_hit or self._daily_loss_reached(equity):
            self._daily_loss_hit = True
            return self._reject(intent, "daily_loss_limit")
        drawdown = self.portfolio.drawdown
        if Decimal(str(drawdown)) >= s.max_drawdown_pct:  # fills since the last mark (fees) took it there
            alerts.append(self._trip_breaker(drawdown))
            return self._reject(intent, "drawdown_breaker")
        open_symbols = {k for k, p in self.portfolio.positions.items() if p.is_open}
        open_symbols |= {(r.venue, r.symbol) for r in self.reservations.values()}
        if key not in open_symbols and len(open_symbols) >= s.max_open_positions:
            return self._reject(intent, "max_open_positions", f"{len(open_symbols)} open")

        # protective levels first: volatility sizing risks RISK_PER_TRADE at the stop it attaches
        sign = Decimal(1) if intent.side is Side.BUY else Decimal(-1)
        stop_loss = intent.stop_loss
        atr = self.atr.get((intent.venue, intent.symbol, intent.timeframe))
        if s.sizing == "volatility" and (atr is None or atr.value is None):
            return self._reject(intent, "no_volatility", f"ATR of {intent.timeframe} not warmed up")
        if stop_loss is None and s.sizing == "volatility" and s.use_atr_stops and atr is not None and atr.value:
            level = price - sign * atr.value * s.atr_multiple
            stop_loss = level if level > ZERO else None
        if stop_loss is None and s.stop_loss_pct is not None:
            level = price * (1 - sign * s.stop_loss_pct)
            stop_loss = level if level > ZERO else None
        take_profit = intent.take_profit
        if take_profit is None and s.take_profit_pct is not None:
            level = price * (1 + sign * s.take_profit_pct)
            take_profit = level if level > ZERO else None

        # sizing: an allocation the intent asks for (the AI desk's), else the configured method
        if intent.allocation_pct is not None:
            requested = fixed_fraction(equity, price, Decimal(repr(intent.allocation_pct)), s.fee_reserve_bps)
        elif s.sizing == "fixed_fraction":
            requested = fixed_fraction(equity, price, s.fixed_fraction, s.fee_reserve_bps)
        elif s.sizing == "volatility":
            if atr is None or atr.value is None:  # checked above; keeps the type checker informed
                return self._reject(intent, "no_volatility")
            # the loss at the stop the entry carries; without any stop, at an ATR_MULTIPLE move
            distance = abs(price - stop_loss) if stop_loss is not None else atr.value * s.atr_multiple
            requested = risk_size(equity, distance, s.risk_per_trade)
        else:
            win_rate, payoff = self.stats.estimate(s.kelly_win_rate, s.kelly_payoff, s.kelly_min_trades)
            fraction = half_kelly_fraction(win_rate, payoff, s.kelly_cap)
            if fraction <= ZERO:
                return self._reject(
                    intent, "no_edge", f"kelly (net of fees) win_rate={win_rate:.3f} payoff={payoff:.3f}"
                )
            requested = fixed_fraction(equity, price, fraction, s.fee_reserve_bps)
        requested = round_down(requested, s.quantity_step)
        if requested < s.min_quantity:
            return self._reject(intent, "below_min_quantity", f"sized {requested}")

        # limits: each caps the quantity; the reason of the tightest cap is reported
        qty, reason = requested, "approved"
        max_pos_qty = s.max_position_pct * equity / price - abs(projected)
        if qty > max_pos_qty:
            qty, reason = max_pos_qty, "max_position"
        reserved_notional = sum((r.remaining * r.price for r in self.reservations.values() if self._increases(r)), ZERO)
        gross_room = (s.max_gross_exposure_pct * equity - self.portfolio.gross_exposure - reserved_notional) / price
        if qty > gross_room:
            qty, reason = gross_room, "max_gross_exposure"
        if sign > 0:
            reserved_cash = sum((r.remaining * r.price for r in self.reservations.values() if r.side is Side.BUY), ZERO)
            fee_factor = 1 + s.fee_reserve_bps / BPS
            cash_room = (self.portfolio.cash - reserved_cash * fee_factor) / (price * fee_factor)
            if qty > cash_room:
                qty, reason = cash_room, "insufficient_cash"
        qty = round_down(qty, s.quantity_step)
        if qty < s.min_quantity:
            return self._reject(intent, reason if reason != "approved" else "below_min_quantity", f"room {qty}")
        return RiskDecision(
            intent_id=intent.intent_id,
            verdict=DecisionVerdict.APPROVE if qty == requested else DecisionVerdict.ADJUST,
            reason=reason,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            direction=intent.direction,
            quantity=qty,
            requested_quantity=requested,
            reference_price=price,
            stop_loss=stop_loss,
            take_profit=take_profit,
            trailing_stop_pct=s.trailing_stop_pct,
            expires_at=intent.expires_at,
        )

    # --- flatten -------------------------------------------------------------------------------
    def closable(self) -> dict[tuple[str, str], Decimal]:
        """The signed quantity of every position big enough to close (at least ``min_quantity``)."""
        step, minimum = self.settings.quantity_step, self.settings.min_quantity
        return {
            key: p.quantity
            for key, p in self.portfolio.positions.items()
            if p.is_open and round_down(abs(p.quantity), step) >= minimum
        }

    def pending_exits(self, now: datetime) -> set[UUID]:
        """The intents whose approved quantity reduces a position and may still trade: not filled or
        ended, and not expired (execution refuses, and cancels, an order whose intent expired; a
        reservation whose order news never comes, e.g. a redelivered intent compliance refused as a
        duplicate, would otherwise look alive until ``reservation_ttl_s``)."""
        return {i for i, r in self.reservations.items() if r.expires_at > now and not self._increases(r)}

    def pending_entries(self) -> set[UUID]:
        """The intents whose approved quantity opens or increases a position (not yet filled)."""
        return {i for i, r in self.reservations.items() if self._increases(r)}

    def flatten(self, tag: object, now: datetime, ttl: timedelta) -> list[RiskDecision]:
        """Exits-only from now on, and one approved reduce-only exit decision for the whole of every open
        position, to be published like any approval: compliance turns each into an order. Exits
        approved before are not netted out (their reservation may be stale, e.g. a duplicate refused
        by compliance): execution caps a reduce-only order to what its own book still holds. The
        intent ids derive from ``tag`` (the command id), so a redelivered command repeats the same
        decisions and compliance refuses the duplicates."""
        if self.commanded is TradingState.ACTIVE:
            self.commanded = TradingState.REDUCING
            self.state = self._effective_state()
        decisions: list[RiskDecision] = []
        for (venue, symbol), quantity in sorted(self.closable().items()):
            intent_id = content_id("flatten", tag, venue, symbol)
            cached = self._decided.get(intent_id)
            if cached is not None:
                decisions.append(cached)
                continue
            qty = round_down(abs(quantity), self.settings.quantity_step)
            price = self.last_price.get((venue, symbol)) or self.portfolio.position(venue, symbol).mark
            side = Side.SELL if quantity > ZERO else Side.BUY
            decision = RiskDecision(
                intent_id=intent_id,
                verdict=DecisionVerdict.APPROVE,
                reason="exit",
                detail="flatten",
                venue=venue,
                symbol=symbol,
                side=side,
                direction=Direction.EXIT,
                quantity=qty,
                requested_quantity=qty,
                reference_price=price,
                expires_at=now + ttl,
            )
            self._remember(decision, now)
            self.reservations[intent_id] = Reservation(venue, symbol, side, qty, price, decision.expires_at)
            decisions.append(decision)
        return decisions

    def _increases(self, r: Reservation) -> bool:
        pos = self.portfolio.position(r.venue, r.symbol).quantity
        return pos == ZERO or (pos > ZERO) == (r.side is Side.BUY)

    def _exit(self, intent: TradeIntent, projected: Decimal) -> RiskDecision:
        """Close what is held (net of exits already approved); never flips the position."""
        if projected == ZERO:
            return self._reject(intent, "no_position", "nothing to exit")
        side = Side.SELL if projected > ZERO else Side.BUY
        qty = round_down(abs(projected), self.settings.quantity_step)
        if qty < self.settings.min_quantity:
            return self._reject(intent, "no_position", "nothing to exit", side=side)
        return RiskDecision(
            intent_id=intent.intent_id,
            verdict=DecisionVerdict.APPROVE,
            reason="exit",
            venue=intent.venue,
            symbol=intent.symbol,
            side=side,
            direction=Direction.EXIT,
            quantity=qty,
            requested_quantity=qty,
            reference_price=intent.reference_price,
            expires_at=intent.expires_at,
        )

    def _alert(
        self,
        severity: Severity,
        code: str,
        message: str,
        value: float | None,
        limit: float | None,
        *,
        trading_state: TradingState | None = None,
    ) -> RiskAlert:
        return RiskAlert(
            severity=severity, code=code, message=message, value=value, limit=limit, trading_state=trading_state
        )
