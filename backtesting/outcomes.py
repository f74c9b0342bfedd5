"""What the limits did during a backtest: rejections, adjustments and alerts by reason, the time
spent in each trading state, and the effective limits. Pure.

The backtest's recorder counts the decisions it sees on the bus (:class:`Outcomes`); the result
turns the trading-state changes (the risk alerts that carry ``trading_state``) into durations
(:func:`state_durations`) and lists the settings the agents really ran with
(:func:`effective_limits`), so a summary never hides a limit that shaped the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.domain import ConsensusOutcome, DecisionVerdict, OrderStatus, TradingState

if TYPE_CHECKING:
    from backtesting.config import AgentSettings
    from core.messages import ComplianceDecision, ConsensusDecision, OrderUpdate, RiskAlert, RiskDecision

_ENDED_UNFILLED = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED})

RISK_LIMITS = (
    "sizing", "fixed_fraction", "fee_reserve_bps", "risk_per_trade", "atr_multiple", "kelly_cap",
    "max_position_pct", "max_gross_exposure_pct", "max_open_positions", "daily_loss_limit_pct",
    "max_drawdown_pct", "drawdown_recovery", "drawdown_resume_pct", "var_limit_pct", "stop_loss_pct",
    "take_profit_pct", "trailing_stop_pct", "allow_short",
)  # fmt: skip
"""The risk settings a summary lists as the effective limits."""
COMPLIANCE_LIMITS = (
    "price_collar_pct", "max_order_quantity", "max_order_notional", "max_trades_per_day",
    "max_trades_per_day_per_symbol", "max_volume_per_day", "max_volume_per_day_per_symbol",
    "max_orders_per_window", "rate_window_s", "trading_start", "trading_end", "trading_days",
)  # fmt: skip
STRATEGY_LIMITS = ("threshold", "variance_limit", "intent_ttl_s", "stop_atr_multiple", "take_profit_atr_multiple")
EXECUTION_LIMITS = (
    "taker_fee_bps", "maker_fee_bps", "slippage_bps", "spread_bps", "participation", "paper_credit", "intrabar",
)  # fmt: skip


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


@dataclass(slots=True)
class Outcomes:
    """Counters of what the order path decided, by stage and reason, and the trading-state changes."""

    risk_rejected: dict[str, int] = field(default_factory=dict)
    risk_adjusted: dict[str, int] = field(default_factory=dict)
    risk_approved: int = 0
    compliance_rejected: dict[str, int] = field(default_factory=dict)
    orders_unfilled: dict[str, int] = field(default_factory=dict)
    """Orders that ended without filling completely: ``<status>: <reason>``."""
    alerts: dict[str, int] = field(default_factory=dict)
    """``<severity>.<code>`` -> count."""
    consensus: dict[str, int] = field(default_factory=dict)
    reviews_requested: int = 0
    """MANUAL_REVIEW decisions queued for a person (in a backtest nobody reviews: they expire)."""
    state_changes: list[tuple[int, TradingState]] = field(default_factory=list)
    """``(market time in epoch ms, new state)`` from the alerts that changed the trading state."""

    def on_risk(self, decision: RiskDecision) -> None:
        """Count a risk decision."""
        if decision.verdict is DecisionVerdict.REJECT:
            _bump(self.risk_rejected, decision.reason)
        elif decision.verdict is DecisionVerdict.ADJUST:
            _bump(self.risk_adjusted, decision.reason)
        else:
            self.risk_approved += 1

    def on_compliance(self, decision: ComplianceDecision) -> None:
        """Count a compliance rejection."""
        if decision.verdict is DecisionVerdict.REJECT:
            _bump(self.compliance_rejected, decision.reason)

    def on_order(self, update: OrderUpdate) -> None:
        """Count an order that ended without filling completely."""
        if update.status in _ENDED_UNFILLED:
            _bump(self.orders_unfilled, f"{update.status.value}: {update.reason or 'no reason given'}")

    def on_alert(self, alert: RiskAlert, ts_ms: int) -> None:
        """Count an alert; remember a change of trading state."""
        _bump(self.alerts, f"{alert.severity.value}.{alert.code}")
        if alert.trading_state is not None:
            self.state_changes.append((ts_ms, alert.trading_state))

    def on_consensus(self, decision: ConsensusDecision) -> None:
        """Count a consensus outcome."""
        _bump(self.consensus, decision.outcome.value)

    def as_dict(self) -> dict[str, Any]:
        """The counters, sorted by reason (JSON-ready)."""
        return {
            "rejections": {
                "risk": dict(sorted(self.risk_rejected.items())),
                "compliance": dict(sorted(self.compliance_rejected.items())),
                "orders": dict(sorted(self.orders_unfilled.items())),
            },
            "adjustments": {"risk": dict(sorted(self.risk_adjusted.items()))},
            "approved": {"risk": self.risk_approved},
            "alerts": dict(sorted(self.alerts.items())),
            "consensus": {o.value: self.consensus.get(o.value, 0) for o in ConsensusOutcome},
            "reviews": {"requested": self.reviews_requested, "expired_unreviewed": self.reviews_requested},
        }


def state_durations(
    changes: Iterable[tuple[int, TradingState]], start_ms: int, end_ms: int
) -> dict[str, dict[str, float]]:
    """Seconds and share of ``[start_ms, end_ms]`` spent in each trading state, starting ACTIVE and
    following ``changes`` (in time order; changes outside the span are clipped to it)."""
    seconds = dict.fromkeys((s.value for s in TradingState), 0.0)
    span = max(0, end_ms - start_ms)
    state, since = TradingState.ACTIVE, start_ms
    for ts, new in changes:
        at = min(max(ts, start_ms), end_ms)
        seconds[state.value] += (at - since) / 1000
        state, since = new, at
    seconds[state.value] += (end_ms - since) / 1000 if end_ms > since else 0.0
    return {
        name: {"seconds": round(value, 3), "share": round(value * 1000 / span, 6) if span else 0.0}
        for name, value in seconds.items()
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _pick(model: Any, names: Iterable[str]) -> dict[str, Any]:
    return {name: _plain(getattr(model, name)) for name in names}


def effective_limits(settings: AgentSettings) -> dict[str, dict[str, Any]]:
    """The limits and costs the agents of a run really used (after defaults, ``no_limits`` and
    overrides)."""
    return {
        "risk": _pick(settings.risk, RISK_LIMITS),
        "compliance": _pick(settings.compliance, COMPLIANCE_LIMITS),
        "strategy": _pick(settings.strategy, STRATEGY_LIMITS),
        "execution": _pick(settings.execution, EXECUTION_LIMITS),
    }


def reason_rows(outcomes: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """``(stage, reason, count)`` rows of a summary's rejections, adjustments and alerts, for tables."""
    rows: list[tuple[str, str, int]] = []
    for stage, reasons in outcomes.get("rejections", {}).items():
        rows += [(f"{stage} rejected", reason, n) for reason, n in reasons.items()]
    for stage, reasons in outcomes.get("adjustments", {}).items():
        rows += [(f"{stage} adjusted", reason, n) for reason, n in reasons.items()]
    rows += [("alert", code, n) for code, n in outcomes.get("alerts", {}).items()]
    return rows
