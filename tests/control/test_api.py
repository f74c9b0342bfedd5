"""The REST API over the real orchestrator (in-memory bus), real PostgreSQL and a real backtest runner."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agents.orchestrator.agent import OrchestratorAgent
from core.clock import SimulatedClock
from core.messages import Envelope
from infrastructure.api.app import create_app
from infrastructure.api.jobs import BacktestJobs
from infrastructure.api.queries import PostgresReadModel
from infrastructure.api.schemas import BacktestRequest, BacktestResult, EquityPoint
from infrastructure.database.timescale.migrate import apply_migrations
from infrastructure.database.timescale.pool import Database
from infrastructure.messaging.memory import InMemoryBus
from tests.control.data import CSV, candles, snapshots
from tests.control.helpers import Obedient, obedient_agents, orchestrator
from tests.factories import T0

TOKEN = "s3cret-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def buy_and_hold(request: BacktestRequest) -> BacktestResult:
    """A small real runner: buy at the first real close, hold, mark to market every candle."""
    series = candles(200, request.symbol)
    if request.start is not None:
        series = [c for c in series if c.open_time >= request.start]
    if not series:
        raise ValueError("no candles in the requested window")
    quantity = request.initial_cash / series[0].close
    curve = [EquityPoint(ts=c.close_time, equity=(quantity * c.close).quantize(Decimal("0.01"))) for c in series]
    final = curve[-1].equity
    return BacktestResult(
        summary={"candles": len(series), "total_return": float(final / request.initial_cash - 1)},
        equity_curve=curve,
        trades=[
            {"side": "buy", "price": str(series[0].close), "quantity": str(quantity), "ts": str(series[0].close_time)}
        ],
    )


async def failing_runner(request: BacktestRequest) -> BacktestResult:
    raise ValueError(f"no data for {request.symbol}")


@dataclass
class World:
    client: httpx.AsyncClient
    orch: OrchestratorAgent
    agents: list[Obedient]
    clock: SimulatedClock
    jobs: BacktestJobs


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[Database]:
    database = Database(postgres_dsn)
    await database.connect()
    await apply_migrations(database)
    await _seed(database)
    yield database
    await database.close()


async def _seed(db: Database) -> None:
    """25 orders and fills, 2 positions (one flat), 3 portfolio snapshots, signals and decisions."""
    real = candles(30)

    async def run(conn: Any) -> None:
        for i, c in enumerate(real[:25]):
            intent = uuid.UUID(int=i + 1)
            side = "buy" if i % 2 == 0 else "sell"
            status = "filled" if i < 20 else "accepted"
            await conn.execute(
                "INSERT INTO orders (client_order_id, intent_id, account, venue, symbol, side, order_type, quantity,"
                " status, filled_quantity, average_price, request, created_at, updated_at)"
                " VALUES ($1,$2,'paper','binance','BTC/USDT',$3,'market',0.01,$4,$5,$6,'{}'::jsonb,$7,$7)",
                f"ts-{i:04d}", intent, side, status, Decimal("0.01") if i < 20 else Decimal(0),
                c.close if i < 20 else None, c.close_time,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO fills (venue, fill_id, ts, account, client_order_id, intent_id, symbol, side, price,"
                " quantity, fee, fee_currency, liquidity)"
                " VALUES ('binance',$1,$2,'paper',$3,$4,'BTC/USDT',$5,$6,0.01,0.6,'USDT','taker')",
                f"f-{i:04d}", c.close_time, f"ts-{i:04d}", intent, side, c.close,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO signals (intent_id, ts, venue, symbol, payload) VALUES ($1,$2,'binance','BTC/USDT',$3)",
                intent, c.close_time, json.dumps({"side": side, "score": 70}),
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO decisions (intent_id, stage, ts, verdict, reason, payload)"
                " VALUES ($1,'risk',$2,'approve','within limits: 10% of equity',$3)",
                intent, c.close_time, json.dumps({"quantity": "0.01"}),
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO decisions (intent_id, stage, ts, verdict, reason, payload)"
                " VALUES ($1,'compliance',$2,'approve','collar ok, limits ok',$3)",
                intent, c.close_time + timedelta(seconds=1), json.dumps({}),
            )  # fmt: skip
        await conn.execute(
            "INSERT INTO positions (account, venue, symbol, quantity, average_price, realized_pnl, fees, mark_price)"
            " VALUES ('paper','binance','BTC/USDT',0.01,$1,12.5,1.2,$2),"
            " ('paper','binance','ETH/USDT',0,0,-3,0.4,NULL)",
            real[0].close, real[24].close,
        )  # fmt: skip
        for i in range(3):
            await conn.execute(
                "INSERT INTO portfolio_snapshots (account, ts, cash, equity, peak_equity, gross_exposure, net_exposure,"
                " realized_pnl, unrealized_pnl, fees, drawdown, open_positions, trading_state, positions)"
                " VALUES ('paper',$1,$2,10010,10020,600,600,12.5,-2.5,1.2,0.001,1,'active','[]'::jsonb)",
                real[i].close_time, Decimal(9400 + i),
            )  # fmt: skip

    await db.transaction("seed", run)


SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"


async def _world(db: Database | None, runner: Any = buy_and_hold, token: str | None = TOKEN) -> World:
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    agents = await obedient_agents(bus, clock)
    for agent in agents:
        await agent.publish(agent.heartbeat(clock, T0))
    for snap in snapshots(10):
        await bus.publish(Envelope.wrap(snap, source="technical-analysis-1", clock=clock, ts_event=snap.close_time))
    jobs = BacktestJobs(runner, now=clock.now)
    desk = None
    if db is not None:  # the AI desk's endpoints on the same database (docs/agents/desk.md)
        from backtesting.desk_api import DeskAnalyzerService
        from infrastructure.api.desk import DeskApi
        from infrastructure.database.timescale.desk_store import PostgresDeskStore

        store = PostgresDeskStore(db)
        desk = DeskApi(store, DeskAnalyzerService(SAMPLES_DIR, store))
    app = create_app(orch, PostgresReadModel(db) if db else None, jobs, api_token=SecretStr(token) if token else None,
                     desk=desk)  # fmt: skip
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    return World(client, orch, agents, clock, jobs)


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    w = await _world(db)
    yield w
    await w.client.aclose()
    await w.orch.stop()


@pytest.fixture
async def live_world() -> AsyncIterator[World]:
    """No database: the live endpoints only."""
    w = await _world(None)
    yield w
    await w.client.aclose()
    await w.orch.stop()


# ---------------------------------------------------------------------------------- live state


async def test_health_and_agents(live_world: World) -> None:
    health = (await live_world.client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["trading"] == "active"
    assert health["agents_total"] == 4 + 1 - 1  # four obedient agents (the orchestrator's host is not running)
    agents = (await live_world.client.get("/agents")).json()
    assert sorted(a["kind"] for a in agents) == ["compliance", "execution", "risk", "strategy"]
    assert all(a["state"] == "up" for a in agents)

    live_world.clock.advance(timedelta(seconds=10))
    await live_world.orch.check()
    health = (await live_world.client.get("/health")).json()
    assert health["status"] == "down"
    assert health["agents_down"] == 4


async def test_market_endpoints(live_world: World) -> None:
    symbols = (await live_world.client.get("/market/symbols")).json()
    assert symbols == [
        {
            "venue": "binance",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "snapshots": 10,
            "last_close_time": snapshots(10)[-1].close_time.isoformat().replace("+00:00", "Z"),
        }
    ]
    for path in ("/market/BTC/USDT/latest", "/market/BTC-USDT/latest", "/market/BTC%2FUSDT/latest"):
        response = await live_world.client.get(path, params={"limit": 4})
        assert response.status_code == 200, path
        body = response.json()
        assert len(body) == 4
        assert body[-1]["close"] == str(snapshots(10)[-1].close)
        assert "sma_3" in body[-1]["indicators"]
    missing = await live_world.client.get("/market/ETH-USDT/latest")
    assert missing.status_code == 404
    assert missing.json() == {"status": 404, "message": "no snapshots for ETH-USDT"}


async def test_without_database_trading_endpoints_answer_503(live_world: World) -> None:
    response = await live_world.client.get("/orders")
    assert response.status_code == 503
    assert response.json()["message"] == "no database is configured for the API"


# ---------------------------------------------------------------------------------- control


@pytest.mark.parametrize(
    "path", ["/control/halt", "/control/pause", "/control/resume", "/control/flatten", "/backtests"]
)
async def test_mutating_endpoints_refuse_without_the_token(live_world: World, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await live_world.client.post(path, headers=headers, json={})
        assert response.status_code == 401, (path, headers)
        assert response.json() == {"status": 401, "message": "missing or invalid bearer token"}
    assert live_world.orch.commands(10) == []
    assert not any(a.commands for a in live_world.agents)


async def test_without_a_configured_token_mutations_are_disabled() -> None:
    w = await _world(None, token=None)
    try:
        response = await w.client.post("/control/halt", headers=AUTH)
        assert response.status_code == 503
        assert "TRADESWARM_API_TOKEN" in response.json()["message"]
    finally:
        await w.client.aclose()
        await w.orch.stop()


async def test_halt_then_resume(live_world: World) -> None:
    response = await live_world.client.post("/control/halt", headers=AUTH, json={"reason": "drill"})
    assert response.status_code == 202
    halt = response.json()
    assert halt["kind"] == "halt"
    assert halt["reason"] == "drill"
    status = (await live_world.client.get(f"/control/commands/{halt['command_id']}")).json()
    assert status["complete"] is True
    assert sorted(status["acknowledged"]) == ["compliance-1", "execution-1", "risk-1", "strategy-1"]
    assert all(a.halted for a in live_world.agents)
    health = (await live_world.client.get("/health")).json()
    assert health["trading"] == "halted"
    assert health["last_halt"]["complete"] is True

    resume = (await live_world.client.post("/control/resume", headers=AUTH)).json()
    assert (await live_world.client.get(f"/control/commands/{resume['command_id']}")).json()["complete"]
    assert not any(a.halted for a in live_world.agents)
    assert (await live_world.client.get("/health")).json()["trading"] == "active"
    listed = (await live_world.client.get("/control/commands")).json()
    assert [c["kind"] for c in listed] == ["resume", "halt"]


async def test_pause_and_flatten_are_published(live_world: World) -> None:
    for kind in ("pause", "flatten"):
        response = await live_world.client.post(f"/control/{kind}", headers=AUTH)
        assert response.status_code == 202
    for agent in live_world.agents:
        assert [c.value for c in agent.commands] == ["pause", "flatten"]


async def test_bad_requests_are_json_errors(live_world: World) -> None:
    unknown = await live_world.client.post("/control/explode", headers=AUTH)
    assert unknown.status_code == 422
    assert unknown.json()["status"] == 422
    assert unknown.json()["message"].startswith("invalid request:")
    assert (await live_world.client.get(f"/control/commands/{uuid.uuid4()}")).status_code == 404
    nothing = await live_world.client.get("/nothing-here")
    assert nothing.json() == {"status": 404, "message": "Not Found"}
    # /control/commands is read-only: not a command named "commands"
    listing = await live_world.client.post("/control/commands", headers=AUTH)
    assert (listing.status_code, listing.headers["allow"]) == (405, "GET")
    # a path served by two routes lists the methods of both
    options = await live_world.client.options("/backtests", headers=AUTH)
    assert (options.status_code, options.headers["allow"]) == (405, "GET, POST")
    # a command for a kind no agent has is not found (never a 5xx)
    nobody = await live_world.client.post("/control/pause", headers=AUTH, json={"target": "nobody"})
    assert nobody.status_code == 404, nobody.text
    # a body that is not even UTF-8 is a documented 400
    garbage = await live_world.client.post(
        "/control/pause", headers={**AUTH, "Content-Type": "application/json"}, content=b"_\xc3("
    )
    assert garbage.status_code == 400
    # filters with a NUL never reach PostgreSQL
    for path in ("/portfolio", "/portfolio/equity", "/positions"):  # schemathesis found /portfolio/equity
        assert (await live_world.client.get(path, params={"account": "a\x00b"})).status_code == 422, path


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"end": 0}, "body.end"),
        ({"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "end must be after start"),
        ({"start": "2024-02-01T00:00:00"}, "body.start"),  # no offset: ambiguous
        ({"initial_cash": "1E+4"}, "body.initial_cash"),
        ({"initial_cash": "0"}, "body.initial_cash"),
        ({"initial_cash": True}, "body.initial_cash"),
    ],
)
async def test_backtest_requests_the_schema_refuses_are_refused(
    live_world: World, body: dict[str, Any], problem: str
) -> None:
    response = await live_world.client.post("/backtests", headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    assert problem in response.json()["message"]


def test_money_is_written_as_plain_decimals() -> None:
    from infrastructure.api.schemas import PortfolioView

    view = PortfolioView(
        account="paper", ts=T0, cash=Decimal("1E+4"), equity=Decimal("1.2E-7"), peak_equity=Decimal("10000.50"),
        gross_exposure=Decimal(0), net_exposure=Decimal("-0E-8"), realized_pnl=Decimal(0), unrealized_pnl=Decimal(0),
        fees=Decimal("0.60"), drawdown=0.0, open_positions=0, trading_state="active",
    )  # fmt: skip
    body = json.loads(view.model_dump_json())
    assert (body["cash"], body["equity"], body["peak_equity"], body["fees"]) == (
        "10000",
        "0.00000012",
        "10000.50",
        "0.60",
    )
    assert "E" not in json.dumps(body)


# ---------------------------------------------------------------------------------- backtests


async def test_backtest_job_runs_to_completion(live_world: World) -> None:
    response = await live_world.client.post("/backtests", headers=AUTH, json={"symbol": "BTC/USDT", "timeframe": "1h"})
    assert response.status_code == 202
    job = response.json()
    assert job["state"] in ("queued", "running")
    await live_world.jobs.wait(uuid.UUID(job["job_id"]))
    done = (await live_world.client.get(f"/backtests/{job['job_id']}")).json()
    assert done["state"] == "succeeded", done
    assert done["result"]["summary"]["candles"] == 200
    assert len(done["result"]["equity_curve"]) == 200
    assert done["result"]["trades"][0]["side"] == "buy"
    assert (await live_world.client.get(f"/backtests/{uuid.uuid4()}")).status_code == 404
    invalid = await live_world.client.post("/backtests", headers=AUTH, json={"symbol": "btc"})
    assert invalid.status_code == 422


async def test_failed_backtest_is_reported() -> None:
    w = await _world(None, runner=failing_runner)
    try:
        job = (await w.client.post("/backtests", headers=AUTH, json={})).json()
        await w.jobs.wait(uuid.UUID(job["job_id"]))
        done = (await w.client.get(f"/backtests/{job['job_id']}")).json()
        assert done["state"] == "failed"
        assert done["error"] == "ValueError: no data for BTC/USDT"
    finally:
        await w.client.aclose()
        await w.orch.stop()


# ---------------------------------------------------------------------------------- stored state


@pytest.mark.integration
async def test_orders_are_paginated_newest_first(world: World) -> None:
    first = (await world.client.get("/orders", params={"limit": 10})).json()
    assert first["total"] == 25
    assert [o["client_order_id"] for o in first["items"]] == [f"ts-{i:04d}" for i in range(24, 14, -1)]
    third = (await world.client.get("/orders", params={"limit": 10, "offset": 20})).json()
    assert [o["client_order_id"] for o in third["items"]] == [f"ts-{i:04d}" for i in range(4, -1, -1)]
    accepted = (await world.client.get("/orders", params={"status": "accepted"})).json()
    assert accepted["total"] == 5
    assert (await world.client.get("/orders", params={"limit": 0})).status_code == 422
    assert (await world.client.get("/orders", params={"limit": 501})).status_code == 422


@pytest.mark.integration
async def test_trades_signals_decisions(world: World) -> None:
    trades = (await world.client.get("/trades", params={"limit": 5, "offset": 5})).json()
    assert trades["total"] == 25
    assert [t["fill_id"] for t in trades["items"]] == [f"f-{i:04d}" for i in range(19, 14, -1)]
    assert trades["items"][0]["price"] == str(candles(25)[19].close)
    signals = (await world.client.get("/signals", params={"limit": 3})).json()
    assert signals["total"] == 25
    assert signals["items"][0]["payload"] == {"side": "buy", "score": 70}
    decisions = (await world.client.get("/decisions", params={"limit": 2})).json()
    assert decisions["total"] == 50
    assert decisions["items"][0]["stage"] == "compliance"
    assert decisions["items"][0]["rationale"] == "collar ok, limits ok"
    risk = (await world.client.get("/decisions", params={"stage": "risk", "limit": 1})).json()
    assert risk["total"] == 25
    assert risk["items"][0]["rationale"] == "within limits: 10% of equity"
    assert (await world.client.get("/decisions", params={"stage": "nope"})).status_code == 422


@pytest.mark.integration
async def test_portfolio_and_positions(world: World) -> None:
    portfolio = (await world.client.get("/portfolio")).json()
    assert portfolio["cash"] == "9402"  # the newest of three snapshots
    assert portfolio["trading_state"] == "active"
    positions = (await world.client.get("/positions")).json()
    assert [p["symbol"] for p in positions] == ["BTC/USDT"]
    everything = (await world.client.get("/positions", params={"include_flat": "true"})).json()
    assert [p["symbol"] for p in everything] == ["BTC/USDT", "ETH/USDT"]
    assert (await world.client.get("/portfolio", params={"account": "nobody"})).status_code == 404


async def test_the_orchestrators_runner_backtests_real_candles(tmp_path: Any) -> None:
    """The production runner (the backtester's engine) on 400 real BTC/USDT hours."""
    import shutil

    from infrastructure.api.backtests import engine_runner

    shutil.copy(CSV, tmp_path / "binance_BTC-USDT_1h.csv")
    runner = engine_runner(tmp_path, max_candles=400)
    w = await _world(None, runner=runner)
    try:
        body = {
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "params": {
                "strategies": ["sma_cross"],
                "params": {"sma_cross": {"fast": 5, "slow": 20}},
                "no_limits": True,
            },
        }
        job = (await w.client.post("/backtests", headers=AUTH, json=body)).json()
        await w.jobs.wait(uuid.UUID(job["job_id"]))
        done = (await w.client.get(f"/backtests/{job['job_id']}")).json()
        assert done["state"] == "succeeded", done.get("error")
        result = done["result"]
        assert result["summary"]["bars"] == 400
        assert result["summary"]["fills"] >= 2
        assert len(result["equity_curve"]) >= 2
        assert result["trades"]
        assert {"entry_price", "pnl"} <= set(result["trades"][0])
        # what the limits did comes with it: no_limits lifted the position cap, nothing was cut
        limits = result["limits"]
        assert limits["limits"]["risk"]["max_position_pct"] == 1.0
        assert limits["adjustments"] == {"risk": {}}
        assert set(limits["trading_states"]) == {"active", "reducing", "halted"}
        assert limits["cash_min"] >= 0
        missing = (await w.client.post("/backtests", headers=AUTH, json={**body, "symbol": "ETH/USDT"})).json()
        await w.jobs.wait(uuid.UUID(missing["job_id"]))
        failed = (await w.client.get(f"/backtests/{missing['job_id']}")).json()
        assert failed["state"] == "failed"
        assert "no candle file binance_ETH-USDT_1h.csv" in failed["error"]
    finally:
        await w.client.aclose()
        await w.orch.stop()
