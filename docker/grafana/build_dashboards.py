"""Generate the Grafana dashboards of tradeswarm (System, Trading, Risk, Market) as JSON.

The dashboards are data: each panel is one short spec below, and this script writes the JSON files
Grafana provisions from ``docker/grafana/dashboards``. Regenerate after an edit with::

    python docker/grafana/build_dashboards.py

``tests/deploy/test_grafana.py`` fails when the committed JSON drifts from this script, and checks
that every query names only metrics from the catalogue (``infrastructure/observability/metrics.py``)
and only InfluxDB measurements / PostgreSQL tables that the stores write.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
INFLUXDB = {"type": "influxdb", "uid": "influxdb"}
TIMESCALEDB = {"type": "grafana-postgresql-datasource", "uid": "timescaledb"}

SCHEMA_VERSION = 39
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    """One query of a panel: PromQL (``expr``), Flux or SQL (``text``), with a legend (PromQL) or
    the result format (SQL: ``table`` or ``time_series``)."""

    text: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel spec: title, type, size and queries; the datasource decides the query language."""

    title: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    datasource: dict[str, str] = field(default_factory=lambda: PROMETHEUS)
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    mappings: tuple[dict[str, Any], ...] = ()
    thresholds: tuple[tuple[float | None, str], ...] = ()


def prom(*queries: tuple[str, str]) -> tuple[Query, ...]:
    """PromQL queries from ``(expr, legend)`` pairs."""
    return tuple(Query(text=expr, legend=legend) for expr, legend in queries)


def quantile(q: float, metric: str, by: str) -> str:
    """PromQL for the ``q`` quantile of histogram ``metric`` per ``by``."""
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[{RATE}])))"


def _target(panel: Panel, query: Query, ref: str) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": ref, "datasource": panel.datasource}
    if panel.datasource is PROMETHEUS:
        target.update({"expr": query.text, "legendFormat": query.legend or "__auto", "range": True})
    elif panel.datasource is INFLUXDB:
        target["query"] = query.text
    else:
        target.update({"rawSql": query.text, "rawQuery": True, "editorMode": "code", "format": query.legend or "table"})
    return target


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for value, color in panel.thresholds] or [
        {"color": "green", "value": None}
    ]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "mappings": list(panel.mappings),
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    if panel.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    options: dict[str, Any] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    if panel.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
        }
    elif panel.kind == "table":
        options = {"showHeader": True}
    options.update(panel.options)
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": panel.datasource,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [_target(panel, q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)],
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A dashboard: panels flow left to right, wrapping at Grafana's 24 columns."""
    laid_out: list[dict[str, Any]] = []
    x = y = row_height = 0
    for index, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel_json(panel, index, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["tradeswarm"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "links": [
            {
                "type": "dashboards",
                "tags": ["tradeswarm"],
                "asDropdown": False,
                "title": "tradeswarm",
                "icon": "external link",
            }
        ],
        "templating": {"list": variables or []},
        "annotations": {"list": []},
        "panels": laid_out,
    }


# SQL of the TimescaleDB panels: columns of infrastructure/database/timescale/migrations (checked by
# running every query against the migrated schema in tests/deploy/test_grafana.py).
SQL_EQUITY_HISTORY = (
    'SELECT ts AS "time", account AS metric, equity, cash, drawdown FROM portfolio_snapshots '
    "WHERE $__timeFilter(ts) ORDER BY ts"
)
SQL_POSITIONS = (
    "SELECT account, venue, symbol, quantity, average_price, mark_price, realized_pnl, fees, updated_at "
    "FROM positions WHERE quantity <> 0 ORDER BY venue, symbol"
)
SQL_FILLS = (
    'SELECT ts AS "time", venue, symbol, side, quantity, price, fee, fee_currency, liquidity, client_order_id '
    "FROM fills WHERE $__timeFilter(ts) ORDER BY ts DESC LIMIT 100"
)
SQL_DECISIONS = (
    'SELECT ts AS "time", stage, verdict, reason, intent_id FROM decisions '
    "WHERE $__timeFilter(ts) ORDER BY ts DESC LIMIT 100"
)
SQL_LLM_CALLS = (
    'SELECT ts AS "time", decision_id, agent AS role, symbol, model, outcome, tokens_in, tokens_out, cost_usd, '
    "latency_s, error FROM agent_logs WHERE $__timeFilter(ts) ORDER BY ts DESC LIMIT 100"
)

UP_DOWN = (
    {"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}},
)
READY = (
    {
        "type": "value",
        "options": {"0": {"text": "NOT READY", "color": "orange"}, "1": {"text": "READY", "color": "green"}},
    },
)


def system() -> dict[str, Any]:
    """Agents up, message rates per routing-key domain, handler latency, queues and DLQs, restarts."""
    panels = [
        Panel(
            "Agents up",
            prom(('up{job="tradeswarm-agents"}', "{{service}}")),
            kind="stat",
            width=12,
            height=4,
            mappings=UP_DOWN,
            thresholds=((None, "red"), (1, "green")),
            description="Prometheus scrape of every agent's /metrics (TradeswarmAgentDown fires after 1 minute).",
        ),
        Panel(
            "Agents ready",
            prom(("max by (agent) (tradeswarm_agent_ready)", "{{agent}}")),
            kind="stat",
            width=12,
            height=4,
            mappings=READY,
            thresholds=((None, "orange"), (1, "green")),
            description="1 when the agent is connected to the broker and consuming (/readyz).",
        ),
        Panel(
            "Messages published / s by routing-key domain",
            prom((f"sum by (domain) (rate(tradeswarm_messages_published_total[{RATE}]))", "{{domain}}")),
            unit="ops",
        ),
        Panel(
            "Messages handled / s by agent",
            prom((f"sum by (agent) (rate(tradeswarm_messages_consumed_total[{RATE}]))", "{{agent}}")),
            unit="ops",
        ),
        Panel(
            "Handler latency p50 / p99",
            prom(
                (
                    quantile(0.5, "tradeswarm_handler_seconds", "agent"),
                    "p50 {{agent}}",
                ),
                (
                    quantile(0.99, "tradeswarm_handler_seconds", "agent"),
                    "p99 {{agent}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Handler failures and dead letters / s",
            prom(
                (f"sum by (agent) (rate(tradeswarm_messages_failed_total[{RATE}]))", "failed {{agent}}"),
                (f"sum by (agent) (rate(tradeswarm_messages_dead_lettered_total[{RATE}]))", "dead-lettered {{agent}}"),
            ),
            unit="ops",
        ),
        Panel(
            "Queue depth (ready messages)",
            prom(('sum by (vhost, queue) (rabbitmq_queue_messages_ready{queue!~".+\\\\.dlq"})', "{{vhost}}/{{queue}}")),
            description="Consumer lag per queue (TradeswarmConsumerLag fires above 1000 for 5 minutes).",
        ),
        Panel(
            "Dead-letter queues",
            prom(('sum by (vhost, queue) (rabbitmq_queue_messages{queue=~".+\\\\.dlq"})', "{{vhost}}/{{queue}}")),
            description="Messages waiting in a DLQ; the reason is in their x-tradeswarm-reason header.",
        ),
        Panel(
            "Consumers per queue",
            prom(("sum by (vhost, queue) (rabbitmq_queue_consumers)", "{{vhost}}/{{queue}}")),
            width=8,
        ),
        Panel(
            "Restarts (last hour)",
            prom(('changes(process_start_time_seconds{job="tradeswarm-agents"}[1h])', "{{service}}")),
            width=8,
        ),
        Panel(
            "Broker reconnects (last hour)",
            prom(("sum by (agent) (increase(tradeswarm_bus_reconnects_total[1h]))", "{{agent}}")),
            width=8,
        ),
        Panel(
            "Resident memory",
            prom(('process_resident_memory_bytes{job="tradeswarm-agents"}', "{{service}}")),
            unit="bytes",
        ),
        Panel(
            "CPU",
            prom((f'rate(process_cpu_seconds_total{{job="tradeswarm-agents"}}[{RATE}])', "{{service}}")),
            unit="percentunit",
        ),
    ]
    return dashboard("ts-system", "tradeswarm / System", "Health of the swarm: agents, messages, queues.", panels)


def trading() -> dict[str, Any]:
    """Equity, PnL, positions, orders and fills, slippage, fees."""
    panels = [
        Panel("Equity", prom(("sum(tradeswarm_equity)", "equity")), kind="stat", width=6, height=4),
        Panel("Cash", prom(("sum(tradeswarm_cash)", "cash")), kind="stat", width=6, height=4),
        Panel(
            "Realised PnL",
            prom(("sum(tradeswarm_pnl_realized)", "realised")),
            kind="stat",
            width=6,
            height=4,
            thresholds=((None, "red"), (0, "green")),
        ),
        Panel(
            "Unrealised PnL",
            prom(("sum(tradeswarm_pnl_unrealized)", "unrealised")),
            kind="stat",
            width=6,
            height=4,
            thresholds=((None, "red"), (0, "green")),
        ),
        Panel("Equity curve", prom(("tradeswarm_equity", "{{account}}")), width=12),
        Panel(
            "PnL",
            prom(
                ("sum by (account) (tradeswarm_pnl_realized)", "realised {{account}}"),
                ("sum by (account) (tradeswarm_pnl_unrealized)", "unrealised {{account}}"),
            ),
        ),
        Panel("Positions (base units)", prom(("tradeswarm_position_quantity", "{{symbol}}"))),
        Panel("Exposure by symbol", prom(("tradeswarm_exposure", "{{symbol}}"))),
        Panel(
            "Orders and fills / min",
            prom(
                (
                    f"sum by (symbol, side) (rate(tradeswarm_orders_submitted_total[{RATE}])) * 60",
                    "orders {{symbol}} {{side}}",
                ),
                (f"sum by (symbol, side) (rate(tradeswarm_fills_total[{RATE}])) * 60", "fills {{symbol}} {{side}}"),
                (f"sum by (reason) (rate(tradeswarm_orders_rejected_total[{RATE}])) * 60", "rejected {{reason}}"),
            ),
            unit="opm",
        ),
        Panel(
            "Slippage p50 / p95 (bps, adverse positive)",
            prom(
                (
                    quantile(0.5, "tradeswarm_slippage_bps", "symbol"),
                    "p50 {{symbol}}",
                ),
                (
                    quantile(0.95, "tradeswarm_slippage_bps", "symbol"),
                    "p95 {{symbol}}",
                ),
            ),
        ),
        Panel(
            "Traded notional and fees (per hour)",
            prom(
                ("sum by (symbol) (increase(tradeswarm_filled_notional_total[1h]))", "notional {{symbol}}"),
                ("sum by (symbol) (increase(tradeswarm_fees_paid_total[1h]))", "fees {{symbol}}"),
            ),
        ),
        Panel(
            "Order latency p50 / p99 (approved order to venue ack)",
            prom(
                (
                    quantile(0.5, "tradeswarm_order_latency_seconds", "venue"),
                    "p50 {{venue}}",
                ),
                (
                    quantile(0.99, "tradeswarm_order_latency_seconds", "venue"),
                    "p99 {{venue}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Equity and drawdown history (portfolio snapshots)",
            (Query(SQL_EQUITY_HISTORY, "time_series"),),
            datasource=TIMESCALEDB,
            width=24,
            description="Portfolio snapshots stored by the risk agent (TimescaleDB); longer history than Prometheus.",
        ),
        Panel(
            "Open positions",
            (Query(SQL_POSITIONS),),
            kind="table",
            datasource=TIMESCALEDB,
            width=24,
            description="The positions table (TimescaleDB), written by the execution agent.",
        ),
        Panel(
            "Recent fills",
            (Query(SQL_FILLS),),
            kind="table",
            datasource=TIMESCALEDB,
            width=24,
            height=10,
            description="The last 100 fills in the time range (TimescaleDB).",
        ),
        Panel(
            "AI desk: LLM tokens / min by role",
            prom(
                (
                    f"sum by (role, direction) (rate(tradeswarm_llm_tokens_total[{RATE}])) * 60",
                    "{{role}} {{direction}}",
                )
            ),
            description="Tokens the desk's model calls used (docs/llm.md); the daily budget: tradeswarm llm usage.",
        ),
        Panel(
            "AI desk: LLM cost (USD, last 24 h) by model",
            prom(("sum by (model) (increase(tradeswarm_llm_cost_usd_total[24h]))", "{{model}}")),
            unit="currencyUSD",
            description="Estimated from the price table (LLM_PRICES).",
        ),
        Panel(
            "AI desk: LLM latency p50 / p99 by role",
            prom(
                (quantile(0.5, "tradeswarm_llm_latency_seconds", "role"), "p50 {{role}}"),
                (quantile(0.99, "tradeswarm_llm_latency_seconds", "role"), "p99 {{role}}"),
            ),
            unit="s",
        ),
        Panel(
            "AI desk: LLM failures by outcome",
            prom((f"sum by (role, outcome) (increase(tradeswarm_llm_failures_total[{RATE}]))", "{{role}} {{outcome}}")),
            description="invalid (after the repair call), error (transport), budget (refused), replay_miss.",
        ),
        Panel(
            "AI desk: recent LLM calls",
            (Query(SQL_LLM_CALLS),),
            kind="table",
            datasource=TIMESCALEDB,
            width=24,
            height=10,
            description="The call log (agent_logs): the last 100 model calls in the time range.",
        ),
    ]
    return dashboard("ts-trading", "tradeswarm / Trading", "Equity, PnL, positions, orders, fills, costs.", panels)


TRADING_STATES = (
    {
        "type": "value",
        "options": {
            "ACTIVE": {"text": "ACTIVE", "color": "green"},
            "REDUCING": {"text": "REDUCING", "color": "orange"},
            "HALTED": {"text": "HALTED", "color": "red"},
        },
    },
)


def risk() -> dict[str, Any]:
    """Exposure, VaR/CVaR, drawdown, rejections by reason, trading state."""
    panels = [
        Panel(
            "Trading state",
            prom(("tradeswarm_trading_state == 1", "{{state}}")),
            kind="stat",
            width=8,
            height=4,
            options={"textMode": "name", "colorMode": "background"},
            mappings=TRADING_STATES,
            description="ACTIVE, REDUCING (exits only) or HALTED (kill switch: no new orders).",
        ),
        Panel(
            "Drawdown",
            prom(("max(tradeswarm_drawdown_ratio)", "drawdown")),
            kind="stat",
            width=8,
            height=4,
            unit="percentunit",
            thresholds=((None, "green"), (0.05, "orange"), (0.1, "red")),
        ),
        Panel(
            "Gross exposure / equity",
            prom(
                (
                    "sum by (account) (abs(tradeswarm_exposure)) / on (account) sum by (account) (tradeswarm_equity)",
                    "{{account}}",
                )
            ),
            kind="stat",
            width=8,
            height=4,
            unit="percentunit",
        ),
        Panel(
            "Drawdown against its limit",
            prom(
                ("max by (account) (tradeswarm_drawdown_ratio)", "drawdown {{account}}"),
                ("max by (account) (tradeswarm_drawdown_limit_ratio)", "limit {{account}}"),
            ),
            unit="percentunit",
        ),
        Panel(
            "VaR / CVaR",
            prom(("tradeswarm_value_at_risk", "{{measure}} {{confidence}}")),
            description="Value at risk and conditional VaR over the risk horizon, in the quote currency.",
        ),
        Panel("Exposure by symbol", prom(("tradeswarm_exposure", "{{symbol}}"))),
        Panel(
            "Risk decisions / min by outcome",
            prom((f"sum by (outcome) (rate(tradeswarm_risk_decisions_total[{RATE}])) * 60", "{{outcome}}")),
            unit="opm",
        ),
        Panel(
            "Rejections by reason (last hour)",
            prom(
                (
                    'sum by (reason) (increase(tradeswarm_risk_decisions_total{outcome="rejected"}[1h]))',
                    "risk: {{reason}}",
                ),
                (
                    'sum by (reason) (increase(tradeswarm_compliance_decisions_total{outcome="rejected"}[1h]))',
                    "compliance: {{reason}}",
                ),
                ("sum by (reason) (increase(tradeswarm_orders_rejected_total[1h]))", "venue: {{reason}}"),
            ),
            width=12,
        ),
        Panel(
            "Trading state over time",
            prom(("max by (state) (tradeswarm_trading_state)", "{{state}}")),
            width=12,
        ),
        Panel(
            "Recent decisions",
            (Query(SQL_DECISIONS),),
            kind="table",
            datasource=TIMESCALEDB,
            width=24,
            height=10,
            description="Risk and compliance decisions with their reasons (TimescaleDB).",
        ),
    ]
    return dashboard("ts-risk", "tradeswarm / Risk", "Exposure, VaR, drawdown, rejections, trading state.", panels)


def _flux_tag_variable(tag: str, label: str) -> dict[str, Any]:
    query = (
        'import "influxdata/influxdb/schema"\n'
        f'schema.measurementTagValues(bucket: v.defaultBucket, measurement: "candles", tag: "{tag}")'
    )
    return {
        "name": tag,
        "label": label,
        "type": "query",
        "datasource": INFLUXDB,
        "query": query,
        "definition": query,
        "refresh": 1,
        "includeAll": False,
        "multi": False,
        "current": {},
        "options": [],
        "sort": 1,
    }


def _flux_candles(field_name: str, fn: str) -> str:
    return (
        "from(bucket: v.defaultBucket)\n"
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
        f'  |> filter(fn: (r) => r._measurement == "candles" and r._field == "{field_name}")\n'
        '  |> filter(fn: (r) => r.venue == "${venue}" and r.symbol == "${symbol}" and r.timeframe == "${timeframe}")\n'
        f"  |> aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)\n"
        f'  |> yield(name: "{field_name}")'
    )


def market() -> dict[str, Any]:
    """Prices and volumes from InfluxDB, feed rates and staleness from Prometheus."""
    panels = [
        Panel(
            "Price (close, high, low)",
            (
                Query(_flux_candles("close", "last")),
                Query(_flux_candles("high", "max")),
                Query(_flux_candles("low", "min")),
            ),
            datasource=INFLUXDB,
            width=24,
            height=10,
            description="Candles written by the data collection agent (InfluxDB measurement `candles`).",
        ),
        Panel(
            "Volume",
            (Query(_flux_candles("volume", "sum")),),
            datasource=INFLUXDB,
            width=24,
        ),
        Panel(
            "Market events / s",
            prom((f"sum by (symbol, kind) (rate(tradeswarm_market_events_total[{RATE}]))", "{{symbol}} {{kind}}")),
            unit="ops",
        ),
        Panel(
            "Feed staleness",
            prom(
                (
                    "time() - max by (venue, symbol) (tradeswarm_feed_last_event_timestamp_seconds)",
                    "{{venue}} {{symbol}}",
                )
            ),
            unit="s",
            thresholds=((None, "green"), (60, "orange"), (120, "red")),
            description="Seconds since the last market event per feed (TradeswarmFeedStale fires above 120 s).",
        ),
    ]
    variables = [
        _flux_tag_variable("venue", "Venue"),
        _flux_tag_variable("symbol", "Symbol"),
        _flux_tag_variable("timeframe", "Timeframe"),
    ]
    return dashboard(
        "ts-market", "tradeswarm / Market", "Prices and volumes from InfluxDB; feed health.", panels, variables
    )


DASHBOARDS = {"system": system, "trading": trading, "risk": risk, "market": market}


def render() -> dict[str, str]:
    """Every dashboard file name mapped to its JSON text."""
    return {f"{name}.json": json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    """Write the dashboards to ``docker/grafana/dashboards``."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {OUT_DIR / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
