"""End to end in the multi-process stack: the AI desk (rules provider) as its own process on the real
RabbitMQ (its own broker user and topic permissions), PostgreSQL and the orchestrator's API.

Desk decisions appear on the bus (``desk.role.*``, ``desk.decision.*``), in PostgreSQL
(``desk_decisions``, ``desk_role_outputs``), on ``/desk/decisions``, ``/decisions`` and ``/analyze``;
an approved desk BUY becomes a fill through risk, compliance and execution; a REJECT places nothing.
The strategy agent is left out, so every entry order comes from the desk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.messages import DeskDecision, DeskRoleReport
from tests.conftest import RABBIT_BASE
from tests.stackkit import StackHandle, Tap, launch_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

AGENTS = "data_collection,technical_analysis,risk,compliance,execution,orchestrator,desk"
DESK_ENV = {
    "TRADESWARM_DESK_EVERY": "6",
    # a 2% position cap: the first BUY is cut to what is left (ADJUST), later ones find no room (REJECT)
    "TRADESWARM_DESK_MAX_POSITION_PCT": "2",
    "TRADESWARM_DESK_MAX_SIZE_PCT": "10",
}


async def _desk_buy_filled(s: StackHandle) -> list[object] | None:
    rows = await s.fetch(
        "SELECT d.decision_id, d.intent_id FROM desk_decisions d JOIN fills f ON f.intent_id = d.intent_id "
        "WHERE d.action = 'BUY' AND d.verdict IN ('APPROVE', 'ADJUST')"
    )
    return list(rows) or None


async def test_the_desk_decides_on_the_bus_in_postgres_and_the_api_and_its_buy_fills(
    rabbit_vhost: str, postgres_dsn: str, tmp_path: Path
) -> None:
    tap = await Tap(f"{RABBIT_BASE}/{rabbit_vhost}", ["desk.#"]).start()
    try:
        async with launch_stack(rabbit_vhost, postgres_dsn, tmp_path / "stack", env=DESK_ENV,
                                replay_speed=3600 / 0.1, up_args=("--agents", AGENTS)) as s:  # fmt: skip
            try:
                filled = await s.wait(lambda: _desk_buy_filled(s), 240, "a desk BUY filled")
            except pytest.fail.Exception:
                rows = await s.fetch(
                    "SELECT intent_id, verdict, action FROM desk_decisions WHERE intent_id IS NOT NULL"
                )
                ids = [r["intent_id"] for r in rows]
                stages = await s.fetch(
                    "SELECT intent_id, stage, verdict, reason FROM decisions WHERE intent_id = ANY($1)", ids
                )
                orders = await s.fetch("SELECT intent_id, status, reason FROM orders")
                fills = await s.fetch("SELECT intent_id, side FROM fills")
                raise AssertionError(f"desk {rows}\nstages {stages}\norders {orders}\nfills {fills}") from None
            await s.wait(lambda: s.value("SELECT count(*) FROM desk_decisions WHERE verdict = 'REJECT'"), 240,
                         "a desk REJECT")  # fmt: skip

            # PostgreSQL: every decision with its six role rows
            decisions = await s.value("SELECT count(*) FROM desk_decisions")
            roles = await s.value("SELECT count(*) FROM desk_role_outputs")
            assert roles == 6 * decisions
            # a REJECT places nothing: every entry order belongs to an approved desk BUY, one order each
            entries = await s.fetch("SELECT intent_id FROM orders WHERE side = 'buy'")
            approved = {r["intent_id"] for r in await s.fetch(
                "SELECT intent_id FROM desk_decisions WHERE intent_id IS NOT NULL AND action = 'BUY'")}  # fmt: skip
            assert entries
            assert {r["intent_id"] for r in entries} <= approved
            assert len(entries) == len({r["intent_id"] for r in entries})
            rejected = await s.fetch("SELECT intent_id, payload FROM desk_decisions WHERE verdict = 'REJECT'")
            assert all(r["intent_id"] is None for r in rejected)

            # the bus: the role reports and the decisions, published by the desk's own broker user
            tapped = await tap.messages()
            on_bus = [e.payload for _, e, _ in tapped if isinstance(e.payload, DeskDecision)]
            reports = [e.payload for _, e, _ in tapped if isinstance(e.payload, DeskRoleReport)]
            assert {d.decision_id for d in on_bus} >= {filled[0]["decision_id"]}
            assert len(reports) >= 6 * len(on_bus)
            assert {user for _, e, user in tapped} == {s.user("desk")}

            # the API
            listed = (await s.api.get("/desk/decisions", params={"outcome": "ADJUST"})).json()
            assert listed["total"] >= 1
            one = (await s.api.get(f"/desk/decisions/{filled[0]['decision_id']}")).json()
            assert set(one["roles"]) == {"technical", "sentiment", "tokenomics", "researcher", "trader",
                                         "risk_manager"}  # fmt: skip
            assert one["final"]["action"] == "BUY"
            assert (await s.api.get("/decisions", params={"stage": "desk"})).json()["total"] >= decisions
            auth = {"Authorization": f"Bearer {s.token}"}

            async def warm() -> list[object] | None:  # the orchestrator keeps indicator snapshots once TA is warm
                snapshots = (await s.api.get("/market/BTC-USDT/latest", params={"limit": 200})).json()
                return snapshots if isinstance(snapshots, list) and len(snapshots) >= 35 else None

            await s.wait(warm, 180, "35 live snapshots in the orchestrator")
            live = await s.api.post("/analyze", json={"symbol": "BTC/USDT", "mode": "live"}, headers=auth)
            assert live.status_code == 200, live.text
            assert live.json()["provider"] == "rules"
            assert live.json()["portfolio"] is None
            down = s.cli("down")
            assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
    finally:
        await tap.close()
