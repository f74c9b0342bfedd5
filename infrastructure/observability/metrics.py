"""The metric catalogue: every Prometheus metric tradeswarm exports is defined here, once.

Grafana dashboards and alert rules are checked against :data:`CATALOGUE` in the tests, so the code
and the dashboards cannot drift apart. Add a metric here (never ad hoc in an agent) and use it
through the module-level object. Label values must stay low-cardinality (agent kinds, message
types, symbols, reasons: never ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A catalogue entry: the exported name(s) of one metric and its labels."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str

    def exported_names(self) -> tuple[str, ...]:
        """Every series name Prometheus sees for this metric."""
        if self.kind == "counter":
            return (f"{self.name}_total", f"{self.name}_created")
        if self.kind == "histogram":
            return tuple(f"{self.name}_{s}" for s in ("bucket", "count", "sum", "created"))
        return (self.name,)


CATALOGUE: dict[str, MetricSpec] = {}


def _register(metric: MetricWrapperBase, kind: str, labels: tuple[str, ...]) -> None:
    name = metric._name
    CATALOGUE[name] = MetricSpec(name=name, kind=kind, labels=labels, help=metric._documentation)


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    """Define a counter and list it in the catalogue."""
    metric = Counter(name, doc, labels)
    _register(metric, "counter", labels)
    return metric


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    """Define a gauge and list it in the catalogue."""
    metric = Gauge(name, doc, labels)
    _register(metric, "gauge", labels)
    return metric


def histogram(name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None) -> Histogram:
    """Define a histogram and list it in the catalogue."""
    metric = Histogram(name, doc, labels, buckets=buckets) if buckets else Histogram(name, doc, labels)
    _register(metric, "histogram", labels)
    return metric


LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# --- runtime (every agent) -------------------------------------------------------------------
MESSAGES_CONSUMED = counter(
    "tradeswarm_messages_consumed", "Messages handled successfully, by agent kind and message type.", ("agent", "type")
)
MESSAGES_PUBLISHED = counter(
    "tradeswarm_messages_published",
    "Messages published, by agent kind, message type and routing-key domain.",
    ("agent", "type", "domain"),
)
MESSAGES_FAILED = counter(
    "tradeswarm_messages_failed",
    "Handler failures (each retry counts), by agent kind and message type.",
    ("agent", "type"),
)
MESSAGES_DEAD_LETTERED = counter(
    "tradeswarm_messages_dead_lettered",
    "Messages sent to a dead-letter queue, by agent kind and queue.",
    ("agent", "queue"),
)
HANDLER_SECONDS = histogram(
    "tradeswarm_handler_seconds",
    "Handler latency in seconds, by agent kind and message type.",
    ("agent", "type"),
    buckets=LATENCY_BUCKETS,
)
AGENT_UP = gauge("tradeswarm_agent_up", "1 while the agent process runs.", ("agent", "agent_id"))
AGENT_READY = gauge("tradeswarm_agent_ready", "1 when the agent is connected and consuming.", ("agent", "agent_id"))
AGENT_INFO = gauge(
    "tradeswarm_agent_info", "Constant 1, labelled with the agent's version.", ("agent", "agent_id", "version")
)
HEARTBEATS_SENT = counter("tradeswarm_heartbeats_sent", "Heartbeats published.", ("agent",))
BUS_RECONNECTS = counter("tradeswarm_bus_reconnects", "Broker reconnections after a dropped connection.", ("agent",))
BUS_BLOCKED = gauge(
    "tradeswarm_bus_blocked",
    "1 while the broker blocks the agent's publishing (connection.blocked: memory or disk alarm).",
    ("agent",),
)
CONTROL_REFUSED = counter(
    "tradeswarm_control_refused",
    "Control messages (commands, partition assignments) refused because the broker-verified sender is not "
    "the orchestrator, by agent kind and message type.",
    ("agent", "type"),
)


# --- trading / risk (dashboards) -------------------------------------------------------------
# Charted by the Grafana dashboards (docker/grafana/dashboards) and used by the alert rules
# (docker/prometheus/rules); the agent named in brackets exports each. Prices and amounts are in
# the account's quote currency; ratios are 0..1.
SLIPPAGE_BUCKETS = (-50.0, -20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
EQUITY = gauge("tradeswarm_equity", "Portfolio equity (risk).", ("account",))
CASH = gauge("tradeswarm_cash", "Free cash (risk).", ("account",))
PNL_REALIZED = gauge("tradeswarm_pnl_realized", "Realised PnL since start, net of fees (risk).", ("account",))
PNL_UNREALIZED = gauge(
    "tradeswarm_pnl_unrealized", "Unrealised PnL of open positions at the last mark (risk).", ("account",)
)
DRAWDOWN = gauge("tradeswarm_drawdown_ratio", "Drawdown from the equity peak, 0..1 (risk).", ("account",))
DRAWDOWN_LIMIT = gauge("tradeswarm_drawdown_limit_ratio", "Configured maximum drawdown, 0..1 (risk).", ("account",))
POSITION_QUANTITY = gauge(
    "tradeswarm_position_quantity", "Signed position size in base units (risk).", ("account", "symbol")
)
EXPOSURE = gauge("tradeswarm_exposure", "Signed notional exposure per symbol (risk).", ("account", "symbol"))
VALUE_AT_RISK = gauge(
    "tradeswarm_value_at_risk",
    "Value at risk over the risk horizon, by measure (var, cvar) and confidence (risk).",
    ("account", "measure", "confidence"),
)
TRADING_STATE = gauge(
    "tradeswarm_trading_state",
    "1 for the current trading state (ACTIVE, REDUCING, HALTED), 0 for the others (risk).",
    ("state",),
)
RISK_DECISIONS = counter(
    "tradeswarm_risk_decisions",
    "Risk decisions by outcome (approved, adjusted, rejected) and reason (risk).",
    ("outcome", "reason"),
)
COMPLIANCE_DECISIONS = counter(
    "tradeswarm_compliance_decisions",
    "Compliance decisions by outcome (approved, rejected) and reason (compliance).",
    ("outcome", "reason"),
)
ORDERS_SUBMITTED = counter(
    "tradeswarm_orders_submitted", "Orders sent to the venue (execution).", ("venue", "symbol", "side")
)
ORDERS_REJECTED = counter(
    "tradeswarm_orders_rejected", "Orders the venue rejected, by reason (execution).", ("venue", "reason")
)
FILLS = counter("tradeswarm_fills", "Fills received (execution).", ("venue", "symbol", "side"))
FILLED_NOTIONAL = counter("tradeswarm_filled_notional", "Traded notional (execution).", ("venue", "symbol", "side"))
FEES_PAID = counter("tradeswarm_fees_paid", "Fees paid (execution).", ("venue", "symbol"))
SLIPPAGE_BPS = histogram(
    "tradeswarm_slippage_bps",
    "Fill price against decision price in basis points, adverse positive (execution).",
    ("venue", "symbol"),
    buckets=SLIPPAGE_BUCKETS,
)
ORDER_LATENCY = histogram(
    "tradeswarm_order_latency_seconds",
    "Approved order to venue acknowledgement (execution).",
    ("venue",),
    buckets=LATENCY_BUCKETS,
)
MARKET_EVENTS = counter(
    "tradeswarm_market_events",
    "Market events received, by kind (candle, trade, book) (data_collection).",
    ("venue", "symbol", "kind"),
)
FEED_LAST_EVENT = gauge(
    "tradeswarm_feed_last_event_timestamp_seconds",
    "Unix time of the last market event per feed (data_collection).",
    ("venue", "symbol", "kind"),
)
CANDLES_GAP_FILLED = counter(
    "tradeswarm_candles_backfilled",
    "Missing candles fetched through REST after a gap (data_collection).",
    ("venue", "symbol", "timeframe"),
)
CANDLES_DUPLICATES = counter(
    "tradeswarm_candles_duplicates_dropped",
    "Repeated candles dropped before publishing (data_collection).",
    ("venue", "symbol", "timeframe"),
)
FEED_STALE = counter(
    "tradeswarm_feed_stale",
    "Feeds found stale (no data for N intervals) and resubscribed (data_collection).",
    ("venue", "symbol", "kind"),
)
GATEWAY_REQUESTS = counter(
    "tradeswarm_gateway_requests", "Venue calls made through the gateway, by method.", ("venue", "method")
)
GATEWAY_ERRORS = counter(
    "tradeswarm_gateway_errors",
    "Venue call failures, by kind (temporary, rate_limited, permanent).",
    ("venue", "method", "kind"),
)
TICKSTORE_POINTS = counter(
    "tradeswarm_tickstore_points_written",
    "Points written to the tick store (InfluxDB), by measurement.",
    ("measurement",),
)
TICKSTORE_WRITE_FAILURES = counter(
    "tradeswarm_tickstore_write_failures", "Failed tick-store write attempts (each retry counts).", ("measurement",)
)

# --- order path: risk, compliance, execution (issue 5) ----------------------------------------
RISK_DUPLICATE_INTENTS = counter(
    "tradeswarm_risk_duplicate_intents",
    "[risk] Trade intents received again under an intent id already decided (not decided again).",
)
RISK_ALERTS = counter(
    "tradeswarm_risk_alerts", "Risk alerts raised, by severity and code (risk).", ("severity", "code")
)
COMPLIANCE_HALTED = gauge("tradeswarm_compliance_halted", "1 while the kill switch is engaged (compliance).", ())
AUDIT_RECORDS = counter("tradeswarm_audit_records", "Audit trail records appended, by kind (compliance).", ("kind",))
ORDER_UPDATES = counter(
    "tradeswarm_order_updates",
    "Order state changes recorded, by venue and new status (execution).",
    ("venue", "status"),
)
EXECUTION_FILL_RATIO = histogram(
    "tradeswarm_execution_fill_ratio",
    "Filled / ordered quantity of orders that reached a final state (execution).",
    ("venue",),
    buckets=(0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0),
)
EXECUTION_FILL_LATENCY = histogram(
    "tradeswarm_execution_fill_latency_seconds",
    "Order accepted to first fill, in clock seconds (market time in backtests) (execution).",
    ("venue",),
    buckets=(0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0),
)
DB_RETRIES = counter(
    "tradeswarm_db_retries", "PostgreSQL operations retried after a connection failure, by operation.", ("operation",)
)

# --- signals: technical analysis and strategy (issue 4) -------------------------------------
CANDLES_SKIPPED = counter(
    "tradeswarm_ta_candles_skipped",
    "Candles the technical analysis agent did not use, by reason (duplicate, out_of_order, max_series).",
    ("reason",),
)
STRATEGY_ERRORS = counter(
    "tradeswarm_strategy_errors", "Strategy votes dropped because the strategy raised, by strategy.", ("strategy",)
)
CONSENSUS_DECISIONS = counter(
    "tradeswarm_consensus_decisions",
    "Consensus decisions made, by outcome and method (strategy).",
    ("outcome", "method"),
)

# --- the AI desk (issue 14) ----------------------------------------------------------------------
DESK_DECISIONS = counter(
    "tradeswarm_desk_decisions",
    "AI desk decisions, by verdict (APPROVE, ADJUST, REJECT, NO_TRADE), action and provider (rules, openai, replay).",
    ("verdict", "action", "provider"),
)
DESK_ROLE_FAILURES = counter(
    "tradeswarm_desk_role_failures",
    "Desk roles that gave no answer (unavailable analysts, failed strong-tier roles), by role and status.",
    ("role", "status"),
)

# --- control plane: orchestrator (issue 7) -----------------------------------------------------
ORCHESTRATOR_AGENTS = gauge(
    "tradeswarm_orchestrator_agents", "Agents known to the orchestrator, by state (up, degraded, down).", ("state",)
)
ORCHESTRATOR_COMMANDS = counter(
    "tradeswarm_orchestrator_commands", "Control commands issued by the orchestrator, by kind.", ("kind",)
)
REVIEWS_DECIDED = counter(
    "tradeswarm_reviews_decided", "MANUAL_REVIEW decisions approved or rejected by a person.", ("verdict",)
)


# --- LLM client: the AI desk's model calls (issue 14) ----------------------------------------
LLM_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
LLM_CALLS = counter(
    "tradeswarm_llm_calls",
    "Model calls (each HTTP completion, incl. repair calls), by desk role, model and outcome.",
    ("role", "model", "outcome"),
)
LLM_TOKENS = counter(
    "tradeswarm_llm_tokens",
    "Tokens used by model calls, by desk role, model and direction (in, out).",
    ("role", "model", "direction"),
)
LLM_COST = counter(
    "tradeswarm_llm_cost_usd",
    "Estimated cost of model calls in USD (price table), by role and model.",
    ("role", "model"),
)
LLM_LATENCY = histogram(
    "tradeswarm_llm_latency_seconds",
    "Latency of one model call in seconds, by desk role and model.",
    ("role", "model"),
    buckets=LLM_LATENCY_BUCKETS,
)
LLM_FAILURES = counter(
    "tradeswarm_llm_failures",
    "Questions a role could not get answered, by role, model and outcome (invalid, error, budget, replay_miss).",
    ("role", "model", "outcome"),
)


class _NoOp:
    """A metric child that records nothing (instrumentation off)."""

    def inc(self, amount: float = 1) -> None:
        """Nothing."""

    def observe(self, amount: float) -> None:
        """Nothing."""

    def set(self, value: float) -> None:
        """Nothing."""


NOOP = _NoOp()


class Handles:
    """Children of labelled metrics, resolved once per label values: ``labels()`` costs a few
    microseconds and hot paths (an order) would call it several times. With ``enabled=False`` every
    handle is a no-op, so an uninstrumented run (a backtest) does no metrics work at all."""

    __slots__ = ("_cache", "enabled")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._cache: dict[tuple[int, tuple[str, ...]], Any] = {}

    def __call__(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """The child of ``metric`` for ``labels`` (a no-op when disabled)."""
        if not self.enabled:
            return NOOP
        key = (id(metric), labels)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*labels)
        return child
