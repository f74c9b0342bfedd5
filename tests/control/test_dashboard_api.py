"""The dashboard's side of the API: static files at ``/``, the live event stream fed from the bus,
alerts, consensus, queue depths, the equity curve, the backtest job list and its progress.

Real orchestrator on the in-memory bus, real PostgreSQL for the read model, and a real uvicorn
server for the server-sent events (a stream is read over TCP as a browser reads it).
"""

from __future__ import annotations

import asyncio
import json
import tomllib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from core.clock import SimulatedClock
from core.domain import ConsensusOutcome, Direction, Severity, Side
from core.messages import ConsensusDecision, Envelope, Fill, RiskAlert, StrategyVote
from infrastructure.api.app import create_app
from infrastructure.api.dashboard import STATIC_DIR
from infrastructure.api.events import EventHub
from infrastructure.api.jobs import JOB_PROGRESS, JOB_TOTAL, BacktestJobs
from infrastructure.api.queries import PostgresReadModel
from infrastructure.api.queues import management_queue_depths, memory_queue_depths, public_url, vhost_of
from infrastructure.api.schemas import BacktestRequest, BacktestResult, EquityPoint
from infrastructure.api.server import ApiServer
from infrastructure.database.timescale.pool import Database
from infrastructure.messaging.memory import InMemoryBus
from tests.control.helpers import obedient_agents, orchestrator
from tests.control.test_api import AUTH, TOKEN, buy_and_hold, db  # noqa: F401 - the seeded database fixture
from tests.factories import T0, free_port

ROOT = Path(__file__).resolve().parents[2]


async def _app(read_db: Database | None, runner=buy_and_hold):
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    agents = await obedient_agents(bus, clock)
    jobs = BacktestJobs(runner, now=clock.now)
    app = create_app(
        orch, PostgresReadModel(read_db) if read_db else None, jobs, api_token=SecretStr(TOKEN),
        events=orch.events, queues=memory_queue_depths(bus), links={"rabbitmq": "http://mq:15672", "grafana": ""},
    )  # fmt: skip
    return bus, clock, orch, agents, jobs, app


@pytest.fixture
async def live() -> AsyncIterator[tuple[Any, ...]]:
    bus, clock, orch, _agents, jobs, app = await _app(None)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    yield bus, clock, orch, client, jobs
    await client.aclose()
    await orch.stop()


def _fill(n: int = 1) -> Fill:
    return Fill(
        fill_id=f"fill-{n}", client_order_id=f"ts-{n}", intent_id=uuid.UUID(int=n), venue="binance",
        symbol="BTC/USDT", side=Side.BUY, price=Decimal("60000.5"), quantity=Decimal("0.01"), fee=Decimal("0.6"),
        fee_currency="USDT", ts=T0,
    )  # fmt: skip


def _consensus(symbol: str, outcome: ConsensusOutcome) -> ConsensusDecision:
    vote = StrategyVote(strategy="sma_cross", venue="binance", symbol=symbol, timeframe="1h", direction=Direction.LONG,
                        score=80.0, confidence=0.9, rationale="fast above slow")  # fmt: skip
    return ConsensusDecision(
        venue="binance", symbol=symbol, timeframe="1h", method="weighted", outcome=outcome, direction=Direction.LONG,
        weighted_score=80.0, variance=0.0, votes=(vote,), rationale="one vote",
    )  # fmt: skip


async def _publish(bus: InMemoryBus, clock: SimulatedClock, payload) -> None:
    from core.routing import routing_key

    await bus.publish(Envelope.wrap(payload, source="test", clock=clock, ts_event=T0), routing_key(payload))


# ---------------------------------------------------------------------------------- static files


async def test_the_dashboard_is_served_at_the_root_with_its_vendored_chart_library(live) -> None:
    *_, client, _ = live
    index = await client.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/vendor/lightweight-charts.standalone.production.js">' in index.text
    assert "http" not in index.text.split("<body>")[0], "no CDN: every asset is served by the API itself"
    assert "script-src 'self'" in index.headers["content-security-policy"]
    library = await client.get("/ui/vendor/lightweight-charts.standalone.production.js")
    assert library.status_code == 200
    assert "Licensed under Apache License 2.0" in library.text[:400]
    assert "Apache License" in (await client.get("/ui/vendor/LICENSE-lightweight-charts.txt")).text
    for module in ("app.js", "core.js", "charts.js", "views/dashboard.js", "views/system.js"):
        assert (await client.get(f"/ui/js/{module}")).status_code == 200, module
    assert (await client.get("/ui/js/nothing.js")).status_code == 404


def test_every_dashboard_file_is_package_data() -> None:
    """A wheel built from pyproject.toml ships every file the dashboard needs (no Node at install)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["infrastructure.api"]
    package = ROOT / "infrastructure" / "api"
    files = [p.relative_to(package).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert len(files) >= 10
    missing = [f for f in files if not any(fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert missing == []


async def test_dashboard_config_says_what_this_server_offers(live) -> None:
    *_, client, _ = live
    config = (await client.get("/dashboard/config")).json()
    assert config["live_events"] is True
    assert config["token_required"] is True
    assert config["desk"] is False  # no /analyze on this app: the dashboard shows the consensus instead
    assert "sma_cross" in config["strategies"]
    assert config["links"] == {"rabbitmq": "http://mq:15672", "grafana": ""}


# ---------------------------------------------------------------------------------- bus-fed endpoints


async def test_alerts_and_consensus_come_from_the_bus(live) -> None:
    bus, clock, _, client, _ = live
    assert (await client.get("/alerts")).json() == []
    await _publish(bus, clock, RiskAlert(severity=Severity.WARNING, code="drawdown_soft", message="5% drawdown"))
    await _publish(bus, clock, _consensus("BTC/USDT", ConsensusOutcome.EXECUTE))
    await _publish(bus, clock, _consensus("ETH/USDT", ConsensusOutcome.REJECT))
    alerts = (await client.get("/alerts")).json()
    assert [(a["type"], a["data"]["code"]) for a in alerts] == [("risk_alert", "drawdown_soft")]
    everything = (await client.get("/consensus")).json()
    assert [e["data"]["symbol"] for e in everything] == ["ETH/USDT", "BTC/USDT"]  # newest first
    btc = (await client.get("/consensus", params={"symbol": "BTC/USDT"})).json()
    assert btc[0]["data"]["votes"][0]["strategy"] == "sma_cross"
    assert (await client.get("/consensus", params={"outcome": "reject"})).json()[0]["data"]["symbol"] == "ETH/USDT"
    assert (await client.get("/consensus", params={"outcome": "maybe"})).status_code == 422


async def test_queue_depths_of_the_in_memory_bus(live) -> None:
    *_, client, _ = live
    queues = (await client.get("/queues")).json()
    assert queues["available"] is True
    names = {q["name"] for q in queues["queues"]}
    assert {"orchestrator.feed", "orchestrator.heartbeats"} <= names


async def test_queue_depths_explain_why_they_are_missing() -> None:
    _bus, _, orch, _, _, _ = await _app(None)
    try:
        app = create_app(orch, None, None, api_token=None)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            body = (await client.get("/queues")).json()
        assert body["available"] is False
        assert "TRADESWARM_ORCHESTRATOR_RABBITMQ_MANAGEMENT_URL" in body["message"]
        unreachable = await management_queue_depths(f"http://guest:guest@127.0.0.1:{free_port()}", "/", 1.0)()
        assert unreachable.available is False
        assert "unreachable" in unreachable.message
    finally:
        await orch.stop()


def test_management_url_helpers() -> None:
    assert public_url("http://user:secret@rabbitmq:15672/") == "http://rabbitmq:15672/"
    assert vhost_of("amqp://u:p@host:5672/paper") == "paper"
    assert vhost_of("amqp://u:p@host:5672/") == "/"
    assert vhost_of("amqp://u:p@host:5672/%2F") == "/"


async def test_equity_curve_of_the_stored_snapshots(db: Database) -> None:  # noqa: F811
    *_, orch, _, _, app = await _app(db)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            curve = (await client.get("/portfolio/equity")).json()
            assert len(curve) == 3
            assert curve == sorted(curve, key=lambda p: p["ts"])
            assert {p["equity"] for p in curve} == {"10010"}
            latest = (await client.get("/portfolio/equity", params={"limit": 2})).json()
            assert latest == curve[1:]
            assert (await client.get("/portfolio/equity", params={"limit": 0})).status_code == 422
    finally:
        await orch.stop()


# ---------------------------------------------------------------------------------- backtest jobs


async def test_backtest_jobs_are_listed_without_their_results(live) -> None:
    *_, client, jobs = live
    assert (await client.get("/backtests")).json() == []
    ids = []
    for symbol in ("BTC/USDT", "ETH/USDT"):
        job = (await client.post("/backtests", headers=AUTH, json={"symbol": symbol})).json()
        await jobs.wait(uuid.UUID(job["job_id"]))
        ids.append(job["job_id"])
    listed = (await client.get("/backtests")).json()
    assert [j["job_id"] for j in listed] == ids[::-1]
    assert listed[0]["state"] == "succeeded"
    assert listed[0]["result"]["summary"]["candles"] == 200
    assert listed[0]["result"]["equity_curve"] == []  # the list stays small: GET /backtests/{id} has it all
    full = (await client.get(f"/backtests/{ids[0]}")).json()
    assert len(full["result"]["equity_curve"]) == 200


async def test_a_running_job_reports_its_progress() -> None:
    release = asyncio.Event()

    async def slow(request: BacktestRequest) -> BacktestResult:
        report, total = JOB_PROGRESS.get(), JOB_TOTAL.get()
        assert report is not None
        assert total is not None
        total(5000)
        await asyncio.to_thread(report, 1234)  # runners report from their worker thread
        await release.wait()
        return BacktestResult(summary={}, equity_curve=[EquityPoint(ts=T0, equity=Decimal(1))], trades=[])

    jobs = BacktestJobs(slow)
    job = jobs.submit(BacktestRequest())
    for _ in range(200):
        view = jobs.get(job.job_id)
        if view is not None and view.progress == 1234:
            break
        await asyncio.sleep(0.01)
    running = jobs.get(job.job_id)
    assert running is not None
    assert (running.progress, running.progress_total) == (1234, 5000)
    release.set()
    done = await jobs.wait(job.job_id)
    assert done is not None
    assert done.state == "succeeded"
    assert done.progress is None


# ---------------------------------------------------------------------------------- live stream


async def _read_event(lines: AsyncIterator[str], name: str) -> dict[str, Any]:
    current = None
    async for line in lines:
        if line.startswith("event: "):
            current = line.removeprefix("event: ")
        elif line.startswith("data: ") and current == name:
            return json.loads(line.removeprefix("data: "))
    raise AssertionError(f"the stream ended before a {name} event")


async def test_bus_messages_reach_an_open_event_stream() -> None:
    bus, clock, orch, _, _, app = await _app(None)
    server = ApiServer(app, "127.0.0.1", 0)
    port = await server.start()
    try:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/events") as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            await asyncio.wait_for(_read_event(lines, "hello"), 10)
            await _publish(bus, clock, _fill(7))
            event = await asyncio.wait_for(_read_event(lines, "fill"), 10)
            assert event["data"]["fill_id"] == "fill-7"
            assert event["data"]["price"] == "60000.5"
            assert event["ts"].startswith("2024-09-14")
            halt = await orch.issue("halt", reason="drill")
            ack = await asyncio.wait_for(_read_event(lines, "command_ack"), 10)
            assert ack["data"]["command_id"] == str(halt.command_id)
            orch.events.close()  # at shutdown every stream ends (uvicorn would otherwise wait for it)
            async for _ in lines:
                pass
    finally:
        await server.stop()
        await orch.stop()


async def test_a_slow_subscriber_loses_its_oldest_events_and_is_told() -> None:
    hub = EventHub(queue_size=3)
    stream = hub.stream(keepalive_s=0.05)
    assert (await anext(stream)).startswith(b"retry:")
    for n in range(10):
        hub.publish("fill", {"n": n})
    received = []
    for _ in range(3):
        received.append(await anext(stream))
    text = b"".join(received).decode()
    assert "event: lagged" in text
    assert '"n":9' in text
    assert '"n":0' not in text
    hub.close()
    assert [chunk async for chunk in stream] == []
    assert hub.subscribers == 0


async def test_the_real_runner_reports_its_total_progress_and_candles(tmp_path: Path) -> None:
    """The production runner on 400 real BTC/USDT hours: the total is known before it starts,
    progress only grows up to it, and the candles come back for the candlestick chart."""
    import shutil

    from infrastructure.api.backtests import engine_runner
    from tests.control.data import CSV

    shutil.copy(CSV, tmp_path / "binance_BTC-USDT_1h.csv")
    totals: list[int] = []
    done: list[int] = []
    t1, t2 = JOB_TOTAL.set(totals.append), JOB_PROGRESS.set(done.append)
    try:
        result = await engine_runner(tmp_path, max_candles=400)(
            BacktestRequest(params={"strategies": ["sma_cross"], "params": {"sma_cross": {"fast": 5, "slow": 20}}})
        )
    finally:
        JOB_TOTAL.reset(t1)
        JOB_PROGRESS.reset(t2)
    assert totals == [400]
    assert done == sorted(done)
    assert done
    assert 0 < done[-1] <= 400
    assert len(result.candles) == 400
    assert result.candles == sorted(result.candles, key=lambda c: c.open_time)
    assert {c.symbol for c in result.candles} == {"BTC/USDT"}
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) for c in result.candles)
