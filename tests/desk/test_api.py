"""The desk's API on PostgreSQL: POST /analyze, GET /desk/decisions[/{id}], desk rows on /decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agents.desk.pipeline import Desk
from agents.desk.rules import RulesModel
from backtesting.desk_api import DeskAnalyzerService
from core.errors import ConfigurationError
from infrastructure.api.app import create_app
from infrastructure.api.desk import DeskApi
from infrastructure.api.queries import PostgresReadModel
from infrastructure.api.schemas import SnapshotView
from infrastructure.database.timescale import Database, apply_migrations
from infrastructure.database.timescale.desk_store import PostgresDeskStore
from infrastructure.feeds.desk_files import DeskDataFiles
from tests.desk.helpers import sample_rows, view_at

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
TOKEN = "desk-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROLES = {"technical", "sentiment", "tokenomics", "researcher", "trader", "risk_manager"}


class _NoControl:
    """The API's control plane is not what these tests look at."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"control plane used: {name}")


def live_snapshots(n: int = 120) -> list[SnapshotView]:
    rows = sample_rows()[-n:]
    out = []
    for r in rows:
        t = datetime.fromtimestamp(int(r["timestamp"]) / 1000, UTC)
        out.append(
            SnapshotView.model_validate({
                "venue": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "open_time": t,
                "close_time": t + timedelta(hours=1), "open": r["open"], "high": r["high"], "low": r["low"],
                "close": r["close"], "volume": r["volume"], "indicators": {}, "patterns": {}, "regime": "unknown",
            })
        )  # fmt: skip
    return out


@pytest.fixture
async def client(postgres_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(postgres_dsn)
    await db.connect()
    await apply_migrations(db)
    store = PostgresDeskStore(db)
    published: list[object] = []

    async def publish(payload: object) -> None:
        published.append(payload)

    analyzer = DeskAnalyzerService(SAMPLES, store, publish, lambda symbol, n: live_snapshots(n))
    app = create_app(_NoControl(), PostgresReadModel(db), None, api_token=SecretStr(TOKEN),
                     desk=DeskApi(store, analyzer))  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        c.published = published  # type: ignore[attr-defined]
        yield c
    await db.close()


async def buy_time() -> datetime:
    desk = Desk(RulesModel(), DeskDataFiles().load())
    for end in range(len(sample_rows()) - 2, 200, -1):
        outcome = await desk.decide(view_at(end))
        assert outcome is not None
        if outcome.decision.action == "BUY" and outcome.decision.intent_id is not None:
            return outcome.decision.ts
    raise AssertionError("no BUY on the sample")


async def test_analyze_a_backtest_step_that_buys_returns_the_roles_and_the_portfolio(client: httpx.AsyncClient) -> None:
    at = await buy_time()
    body = {"symbol": "BTC/USDT", "mode": "backtest_step", "timestamp": at.isoformat()}
    assert (await client.post("/analyze", json=body)).status_code == 401
    response = await client.post("/analyze", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    view = response.json()
    assert set(view) == {"decision_id", "symbol", "timeframe", "ts", "provider", "roles", "final", "tokens",
                         "portfolio"}  # fmt: skip
    assert view["provider"] == "rules"
    assert set(view["roles"]) == ROLES
    assert set(view["roles"]["trader"]) == {"status", "output", "model", "tokens_in", "tokens_out", "reason"}
    assert view["final"]["action"] == "BUY"
    assert view["final"]["verdict"] in ("APPROVE", "ADJUST")
    assert set(view["tokens"]) == {"in", "out", "cost_usd"}
    assert view["portfolio"] is not None
    assert view["portfolio"]["fills"][0]["side"] == "buy"

    listed = (await client.get("/desk/decisions", params={"symbol": "BTC/USDT"})).json()
    assert listed["total"] == 1
    assert listed["items"][0]["decision_id"] == view["decision_id"]
    one = await client.get(f"/desk/decisions/{view['decision_id']}")
    assert one.status_code == 200
    assert one.json()["roles"] == view["roles"]
    assert (await client.get("/desk/decisions", params={"outcome": "REJECT"})).json()["total"] == 0
    assert (await client.get("/desk/decisions/00000000-0000-0000-0000-000000000000")).status_code == 404
    decisions = (await client.get("/decisions", params={"stage": "desk"})).json()
    assert decisions["total"] == 1
    assert decisions["items"][0]["intent_id"] == view["decision_id"]


async def test_analyze_live_stores_and_publishes_but_places_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post("/analyze", json={"symbol": "BTC/USDT", "mode": "live"}, headers=AUTH)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["portfolio"] is None
    published = client.published  # type: ignore[attr-defined]
    assert len(published) == 7  # six role reports and the decision, no intent
    stored = (await client.get(f"/desk/decisions/{view['decision_id']}")).json()
    assert stored["final"] == view["final"]


async def test_analyze_bad_requests_are_clear(client: httpx.AsyncClient) -> None:
    missing = await client.post("/analyze", json={"symbol": "DOGE/USDT", "mode": "backtest_step"}, headers=AUTH)
    assert missing.status_code == 404
    assert "no recorded candles of DOGE/USDT" in missing.json()["message"]
    early = {"symbol": "BTC/USDT", "mode": "backtest_step", "timestamp": "2025-01-01T03:00:00Z"}
    too_early = await client.post("/analyze", json=early, headers=AUTH)
    assert too_early.status_code == 409  # a valid request the recorded data cannot answer
    assert "the desk needs 35" in too_early.json()["message"]
    naive = {"symbol": "BTC/USDT", "mode": "backtest_step", "timestamp": "2025-04-01T00:00:00"}
    assert (await client.post("/analyze", json=naive, headers=AUTH)).status_code == 422
    bad = await client.post("/analyze", json={"symbol": "btc", "mode": "live"}, headers=AUTH)
    assert bad.status_code == 422


async def test_a_desk_backtest_through_the_api_runner() -> None:
    from infrastructure.api.backtests import engine_runner
    from infrastructure.api.schemas import BacktestRequest

    runner = engine_runner(SAMPLES)
    request = BacktestRequest(
        symbol="BTC/USDT", start=datetime(2025, 4, 20, tzinfo=UTC),
        params={"desk": {"every": 6, "max_decisions": 5, "llm_provider": "rules", "blind": True}},
    )  # fmt: skip
    result = await runner(request)
    assert result.desk is not None
    assert result.desk["decisions"] == 5
    assert {"tokens_in", "tokens_out", "cost_usd", "verdicts", "intents"} <= set(result.desk)
    assert len(result.desk["items"]) == 5
    assert set(result.desk["items"][0]["roles"]) == ROLES
    assert result.equity_curve
    plain = await runner(BacktestRequest(symbol="BTC/USDT", start=datetime(2025, 4, 20, tzinfo=UTC)))
    assert plain.desk is None
    with pytest.raises(ConfigurationError, match="params.desk takes"):
        await runner(BacktestRequest(symbol="BTC/USDT", params={"desk": {"every": 6, "model": "x"}}))
