"""The read model of ``tradeswarm run --ui`` agrees with what the swarm did: the same fills, orders,
positions and equity the backtest recorder saw, served through the real API (the same endpoints the
stack serves from PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from itertools import islice

import httpx

from backtesting.config import BacktestConfig
from backtesting.dashboard import DashboardOptions, EmbeddedDashboard
from backtesting.data import file_source, merge
from backtesting.engine import BacktestEngine, Replay
from backtesting.session import SAMPLES, sample_files


async def test_the_embedded_read_model_matches_the_swarm() -> None:
    sources = [file_source(p) for p in sample_files()]
    engine = BacktestEngine(BacktestConfig(params={"sma_cross": {"fast": 5, "slow": 20}}), sources)
    swarm = engine.swarm(observe_flow=True)
    await swarm.start()
    dashboard = EmbeddedDashboard(swarm, DashboardOptions(port=0), SAMPLES)
    await dashboard.start()
    try:
        replay = Replay(swarm, engine.symbols)
        for candle in islice(merge(engine.sources), 1200):
            await replay.feed(candle)
        rec = swarm.recorder
        assert len(rec.fills) >= 4, "the period trades"
        async with httpx.AsyncClient(base_url=dashboard.url, timeout=10) as api:
            trades = (await api.get("/trades", params={"limit": 500})).json()
            assert trades["total"] == len(rec.fills)
            assert [t["ts"] for t in trades["items"]] == sorted((t["ts"] for t in trades["items"]), reverse=True)
            page2 = (await api.get("/trades", params={"limit": 2, "offset": 2})).json()
            assert [t["fill_id"] for t in page2["items"]] == [t["fill_id"] for t in trades["items"][2:4]]
            orders = (await api.get("/orders", params={"limit": 500})).json()
            ids = {o["client_order_id"] for o in orders["items"]}
            assert {o.client_order_id for o in rec.orders} <= ids  # plus execution's protective exits
            assert orders["total"] == len(ids)
            filled = (await api.get("/orders", params={"status": "filled", "limit": 500})).json()
            assert 0 < filled["total"] <= orders["total"]
            held = (await api.get("/positions")).json()
            assert {p["symbol"]: Decimal(p["quantity"]) for p in held} == {s: q for s, q in rec.positions.items() if q}
            assert all(p["mark_price"] == str(replay.closes_now[p["symbol"]]) for p in held)  # the last close
            portfolio = (await api.get("/portfolio")).json()
            assert rec.last_snapshot is not None
            live = replay.current_equity()  # the recorder's cash and positions at the last closes
            assert abs(Decimal(portfolio["equity"]) - live) < Decimal("0.000001"), (portfolio["equity"], live)
            assert portfolio["open_positions"] == len(held)
            assert Decimal(portfolio["cash"]) == rec.cash
            curve = (await api.get("/portfolio/equity", params={"limit": 5000})).json()
            assert Decimal(curve[-1]["equity"]) == rec.last_snapshot.equity
            assert [p["ts"] for p in curve] == sorted(p["ts"] for p in curve)
            signals = (await api.get("/signals", params={"limit": 1})).json()
            decisions = (await api.get("/decisions", params={"stage": "compliance", "limit": 500})).json()
            assert signals["total"] >= 1
            assert {d["intent_id"] for d in decisions["items"]} <= {
                s["intent_id"] for s in (await api.get("/signals", params={"limit": 500})).json()["items"]
            }
            health = (await api.get("/health")).json()
            assert health["agents_up"] == 5
    finally:
        await dashboard.stop()
        await swarm.stop()
