"""Grafana: provisioned datasources and dashboards; every query names only what the code writes.

- PromQL: only metrics of the catalogue (infrastructure/observability/metrics.py) plus the
  allow-listed RabbitMQ/standard series (tests/deploy/_promql.py).
- Flux (InfluxDB): only the measurements, fields and tags the market-data store writes.
- SQL (TimescaleDB): only tables that the migrations create (infrastructure/database/timescale/*.sql
  when present, else the agreed list of tables).
The committed JSON must equal what docker/grafana/build_dashboards.py generates.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from core.domain import Side
from core.messages import Trade
from infrastructure.database.influx.line_protocol import candle_line, trade_line
from infrastructure.database.timescale.migrate import apply_migrations
from infrastructure.database.timescale.pool import Database
from tests.deploy._promql import exported_names, metric_names
from tests.deploy._support import ROOT, load_yaml
from tests.factories import T0, candle

GRAFANA = ROOT / "docker/grafana"
DASHBOARDS = GRAFANA / "dashboards"
MIGRATIONS = ROOT / "infrastructure/database/timescale"


def influx_schema() -> dict[str, tuple[set[str], set[str]]]:
    """measurement -> (tags, fields), read from the line protocol the market-data store really writes."""
    trade = Trade(
        venue="binance", symbol="BTC/USDT", ts=T0, price=Decimal("60000"), amount=Decimal("0.1"), side=Side.BUY,
        trade_id="1",
    )  # fmt: skip
    schema = {}
    for line in (candle_line(candle()), trade_line(trade)):
        series, fields, _timestamp = line.split(" ")
        measurement, *tags = series.split(",")
        schema[measurement] = ({t.split("=")[0] for t in tags}, {f.split("=")[0] for f in fields.split(",")})
    return schema


INFLUX_SCHEMA = influx_schema()
AGREED_TABLES = {
    "orders",
    "fills",
    "positions",
    "portfolio_snapshots",
    "signals",
    "decisions",
    "audit_log",
    "heartbeats",
}
REQUIRED_PANELS = {
    "system": ["agents up", "published", "latency p50 / p99", "queue depth", "dead-letter", "restarts"],
    "trading": ["equity", "pnl", "positions", "orders and fills", "slippage", "fees"],
    "risk": ["exposure", "var / cvar", "drawdown", "rejections by reason", "trading state"],
    "market": ["price", "volume"],
}


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def targets(kind: str) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, query text) of every query of a datasource type, variables included."""
    found = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == kind:
                    text = target.get("expr") or target.get("query") or target.get("rawSql") or ""
                    found.append((name, panel["title"], text))
        for variable in board["templating"]["list"]:
            if variable.get("datasource", {}).get("type") == kind:
                found.append((name, f"variable {variable['name']}", variable["query"]))
    return found


def migration_tables() -> set[str]:
    """Tables the SQL migrations create; the agreed list while no migration exists yet."""
    files = sorted(MIGRATIONS.rglob("*.sql")) if MIGRATIONS.exists() else []
    if not files:
        return AGREED_TABLES
    text = "\n".join(f.read_text(encoding="utf-8") for f in files)
    return set(re.findall(r"(?i)create\s+table\s+(?:if\s+not\s+exists\s+)?(?:\w+\.)?\"?(\w+)\"?", text))


def test_committed_dashboards_match_the_generator() -> None:
    rendered = load_builder().render()
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    assert set(rendered) == set(committed)
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} drifted: run python docker/grafana/build_dashboards.py"


def test_the_four_dashboards_exist_with_their_panels() -> None:
    boards = dashboards()
    assert set(boards) == set(REQUIRED_PANELS)
    for name, wanted in REQUIRED_PANELS.items():
        titles = " | ".join(p["title"].lower() for p in boards[name]["panels"])
        for word in wanted:
            assert word in titles, f"{name} dashboard has no {word!r} panel"
    assert len({b["uid"] for b in boards.values()}) == 4


def test_panels_are_laid_out_on_the_grid() -> None:
    for name, board in dashboards().items():
        cells: set[tuple[int, int]] = set()
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0, (name, panel["title"])
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not area & cells, f"{name}: {panel['title']} overlaps another panel"
            cells |= area


def test_datasources_are_provisioned() -> None:
    data = load_yaml(GRAFANA / "provisioning/datasources/datasources.yml")
    assert isinstance(data, dict)
    provisioned = {d["uid"]: d for d in data["datasources"]}
    assert {d["type"] for d in provisioned.values()} == {"prometheus", "influxdb", "grafana-postgresql-datasource"}
    for source in provisioned.values():
        for value in source.get("secureJsonData", {}).values():
            assert re.fullmatch(r"\$\{\w+\}", value), "secrets come from the environment"
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(compose, dict)
    grafana_env = compose["services"]["grafana"]["environment"]
    text = (GRAFANA / "provisioning/datasources/datasources.yml").read_text()
    for variable in re.findall(r"\$\{(\w+)\}", text):
        assert variable in grafana_env, f"{variable} is not passed to the grafana container"
    for name, board in dashboards().items():
        for panel in board["panels"]:
            uid = panel["datasource"]["uid"]
            assert uid in provisioned, f"{name}/{panel['title']}: unknown datasource {uid}"
            assert panel["datasource"]["type"] == provisioned[uid]["type"]


def test_dashboard_provider_points_at_the_mounted_folder() -> None:
    data = load_yaml(GRAFANA / "provisioning/dashboards/dashboards.yml")
    assert isinstance(data, dict)
    path = data["providers"][0]["options"]["path"]
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(compose, dict)
    assert f"./docker/grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]


def test_prometheus_panels_use_only_exported_metrics() -> None:
    known = exported_names()
    queries = targets("prometheus")
    assert len(queries) > 20
    problems = []
    for board, title, expr in queries:
        names = metric_names(expr)
        assert names, f"{board}/{title}: no metric found in {expr!r}"
        unknown = names - known
        if unknown:
            problems.append(f"{board}/{title}: {sorted(unknown)}")
    assert not problems, "metrics not in the catalogue (add them to metrics.py):\n" + "\n".join(problems)


def test_an_unknown_metric_would_be_caught() -> None:
    assert metric_names("sum(rate(tradeswarm_not_a_metric_total[5m]))") - exported_names()


def test_influx_panels_use_only_written_measurements_fields_and_tags() -> None:
    queries = targets("influxdb")
    assert queries
    for board, title, flux in queries:
        measurements = set(re.findall(r'_measurement\s*==\s*"(\w+)"', flux))
        measurements |= set(re.findall(r'measurement:\s*"(\w+)"', flux))
        assert measurements, f"{board}/{title}: no measurement filter"
        assert measurements <= set(INFLUX_SCHEMA), f"{board}/{title}: unknown measurement {measurements}"
        tags = set().union(*(INFLUX_SCHEMA[m][0] for m in measurements))
        fields = set().union(*(INFLUX_SCHEMA[m][1] for m in measurements))
        used_fields = set(re.findall(r'_field\s*==\s*"(\w+)"', flux))
        assert used_fields <= fields, f"{board}/{title}: unknown fields {used_fields - fields}"
        used_tags = set(re.findall(r"\br\.(\w+)", flux)) | set(re.findall(r'\br\["(\w+)"\]', flux))
        used_tags |= set(re.findall(r'\btag:\s*"(\w+)"', flux))
        used_tags -= {"_measurement", "_field", "_value", "_time"}
        assert used_tags <= tags, f"{board}/{title}: unknown tags {used_tags - tags}"


def test_sql_panels_use_only_tables_the_migrations_create() -> None:
    tables = migration_tables()
    queries = targets("grafana-postgresql-datasource")
    assert queries
    for board, title, sql in queries:
        used = set(re.findall(r"(?i)\b(?:from|join)\s+(?:\w+\.)?\"?(\w+)", sql))
        assert used, f"{board}/{title}: no table"
        assert used <= tables, f"{board}/{title}: unknown tables {used - tables}"


def test_influx_schema_is_read_from_the_store() -> None:
    tags, fields = INFLUX_SCHEMA["candles"]
    assert {"venue", "symbol", "timeframe"} <= tags
    assert {"open", "high", "low", "close", "volume"} <= fields


GRAFANA_SQL_MACROS = {
    r"\$__timeFilter\((\w+)\)": r"\1 BETWEEN now() - interval '6 hours' AND now()",
    r"\$__timeFrom\(\)": "now() - interval '6 hours'",
    r"\$__timeTo\(\)": "now()",
}


@pytest.mark.integration
async def test_sql_panels_run_against_the_migrated_schema(postgres_dsn: str) -> None:
    """Every SQL panel query runs on a database migrated by the real migrations (columns included)."""
    db = Database(postgres_dsn, retry_for_s=5)
    await db.connect()
    try:
        await apply_migrations(db)
        queries = targets("grafana-postgresql-datasource")
        assert len(queries) >= 3
        for board, title, raw_sql in queries:
            sql = raw_sql
            for macro, replacement in GRAFANA_SQL_MACROS.items():
                sql = re.sub(macro, replacement, sql)
            assert "$" not in sql, f"{board}/{title}: unknown Grafana macro in {sql}"

            async def run(conn: Any, query: str = sql) -> object:
                return await conn.fetch(query)

            try:
                await db.run("grafana-panel", run)
            except Exception as exc:
                pytest.fail(f"{board}/{title}: {exc}\n{sql}")
    finally:
        await db.close()


@pytest.mark.parametrize("board", sorted(REQUIRED_PANELS))
def test_dashboards_are_read_only_and_tagged(board: str) -> None:
    data = dashboards()[board]
    assert data["editable"] is False
    assert "tradeswarm" in data["tags"]
    assert Path(DASHBOARDS / f"{board}.json").exists()


def test_docs_show_the_dashboard_layout_image() -> None:
    image = ROOT / "docs/images/dashboard_layout.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "images/dashboard_layout.png" in (ROOT / "docs/monitoring.md").read_text(encoding="utf-8")
    titles = {board["title"] for board in dashboards().values()}
    assert titles == {"tradeswarm / System", "tradeswarm / Trading", "tradeswarm / Risk", "tradeswarm / Market"}
