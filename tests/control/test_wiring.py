"""``agents.orchestrator.wiring.build``: the real API server over HTTP, the database, the runner."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from agents.orchestrator.agent import OrchestratorAgent
from agents.orchestrator.wiring import build, load_backtest_runner
from core.clock import WallClock
from core.settings import Settings
from infrastructure.api.server import ApiServer
from infrastructure.messaging.memory import InMemoryBus
from tests.control.helpers import context


def test_backtest_runner_is_resolved_by_name(tmp_path: Path) -> None:
    assert load_backtest_runner("", tmp_path) is None
    assert load_backtest_runner("no_such_package.runner:make", tmp_path) is None
    assert callable(load_backtest_runner("infrastructure.api.backtests:engine_runner", tmp_path))


@pytest.mark.integration
async def test_build_serves_the_api_over_http(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESWARM_ORCHESTRATOR_API_PORT", "0")
    monkeypatch.setenv("TRADESWARM_ORCHESTRATOR_STATE_STORE", "memory")  # no migrations: tables stay missing
    bus = InMemoryBus()
    await bus.start()
    settings = Settings(postgres_dsn=SecretStr(postgres_dsn), api_token=SecretStr("t0ken"))
    ctx = context(bus, WallClock(), "orchestrator-1", settings)
    agent = await build(ctx)
    assert isinstance(agent, OrchestratorAgent)
    await agent.start()
    try:
        (server,) = [s for s in agent.services if isinstance(s, ApiServer)]
        assert server.port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "empty"
            docs = await client.get("/docs")
            assert docs.status_code == 200
            assert "swagger" in docs.text.lower()
            refused = await client.post("/control/halt")
            assert refused.status_code == 401
            # the orchestrator migrated the fresh database (it owns the review queue's table)
            assert (await client.get("/reviews")).json()["total"] == 0
            assert (await client.get("/orders")).json()["total"] == 0
            # a table gone: a JSON 500, no traceback
            import asyncpg

            conn = await asyncpg.connect(postgres_dsn)
            try:
                await conn.execute("DROP TABLE orders CASCADE")
            finally:
                await conn.close()
            orders = await client.get("/orders")
            assert orders.status_code == 500
            assert orders.json()["message"].startswith("internal error")
    finally:
        await agent.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{server.port}/health")


async def test_api_server_refuses_a_taken_port() -> None:
    from fastapi import FastAPI

    first = ApiServer(FastAPI(), "127.0.0.1", 0)
    port = await first.start()
    try:
        with pytest.raises(OSError):
            await ApiServer(FastAPI(), "127.0.0.1", port).start()
    finally:
        await first.stop()
