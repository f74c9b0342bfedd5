"""API contract fuzzing (issue 17): schemathesis against the running API finds nothing.

The real API (uvicorn on a loopback port) over the real orchestrator (in-memory bus, agents'
heartbeats, indicator snapshots), a seeded PostgreSQL read model, a backtest runner on real candles
and the AI desk (its offline rules model on the shipped samples, decisions stored in PostgreSQL);
schemathesis reads the served ``/openapi.json`` and runs every check on every operation (examples,
coverage and fuzzing phases, valid and invalid data, with and without the token): any response
that disagrees with the schema (status, body, headers, an accepted invalid request, a 5xx) is a
finding, and the test fails with schemathesis' report.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from backtesting.desk_api import DeskAnalyzerService
from infrastructure.api.app import create_app
from infrastructure.api.desk import DeskApi
from infrastructure.api.queries import PostgresReadModel
from infrastructure.api.server import ApiServer
from infrastructure.database.timescale.desk_store import PostgresDeskStore
from infrastructure.database.timescale.migrate import apply_migrations
from infrastructure.database.timescale.pool import Database
from tests.control.test_api import AUTH, TOKEN, _seed, _world
from tests.desk.test_api import SAMPLES, live_snapshots

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("TRADESWARM_FUZZ_EXAMPLES", "40"))
"""Test cases per operation and phase (more locally with TRADESWARM_FUZZ_EXAMPLES)."""


@pytest.fixture
async def served_api(postgres_dsn: str) -> AsyncIterator[str]:
    """The API served on a free loopback port; yields its base URL."""
    db = Database(postgres_dsn)
    await db.connect()
    await apply_migrations(db)
    await _seed(db)
    world = await _world(db)
    store = PostgresDeskStore(db)
    published: list[object] = []

    async def publish(payload: object) -> None:
        published.append(payload)

    analyzer = DeskAnalyzerService(SAMPLES, store, publish, lambda symbol, n: live_snapshots(n))
    app = create_app(
        world.orch, PostgresReadModel(db), world.jobs, api_token=SecretStr(TOKEN), desk=DeskApi(store, analyzer)
    )
    server = ApiServer(app, "127.0.0.1", 0)
    port = await server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()
        await world.client.aclose()
        await world.orch.stop()
        await analyzer.close()
        await db.close()


async def test_schemathesis_finds_nothing(served_api: str, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("schemathesis")
    assert exe.exists(), "schemathesis is a dev dependency: pip install -e '.[dev]'"
    proc = await asyncio.create_subprocess_exec(
        str(exe), "run", f"{served_api}/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--header", f"Authorization: {AUTH['Authorization']}",
        "--workers", "2",
        "--request-timeout", "30",
        "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.control.fuzz_hooks", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    if os.environ.get("TRADESWARM_FUZZ_REPORT"):  # keep the whole report (local runs)
        Path(os.environ["TRADESWARM_FUZZ_REPORT"]).write_text(report)
    assert TOKEN not in report.replace(AUTH["Authorization"], "")
    assert proc.returncode == 0, report[-20000:]
