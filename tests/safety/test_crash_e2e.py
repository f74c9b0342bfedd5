"""Execution crash safety on the multi-process stack (issues #19 and #20), real RabbitMQ and PostgreSQL.

``tradeswarm stack up`` replays real BTC/USDT candles with a paper venue that fills in parts (a volume
participation cap), so orders work over several candles. The execution process is killed with
SIGKILL at each point of the order path — the order persisted and not sent (``after_persist``), sent
and the venue's answer not stored (``after_submit``), partially filled at the venue and the fill not
stored (``before_partial_fill_store``), a fill stored and not published (``after_fill_store``) — and
once more by the test itself (``os.kill(pid, SIGKILL)``) while orders work at the venue. The
supervisor restarts it each time, with the paper venue's book in PostgreSQL (the default) and the same
recovery path as a live venue: look the order up by client order id, reconcile before consuming.

Then, on the same stack: each agent's environment holds only what it needs; forged approved orders
stamped in the future are refused without moving execution's market clock (implausible ones
dead-lettered with the reason) and later orders still fill. After a HALT every order is terminal and
matches the venue, every venue fill is in ``fills`` exactly once and on the bus (a repeat only of a fill in flight
at the outside kill, identical),
positions equal the sum of fills, every filled order has its fills, and no venue order id or fill id
was ever handed out twice across the restarts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.clock import SimulatedClock
from core.messages import Envelope, Fill, Heartbeat
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.control.data import approved_order
from tests.stackkit import OPEN_STATUSES, StackHandle, Tap, launch_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

CRASH_POINTS = ("after_persist", "after_submit", "before_partial_fill_store", "after_fill_store")
TERMINAL = ("filled", "canceled", "rejected", "expired")


async def _heartbeat_clock(tap: Tap) -> datetime | None:
    """Execution's market clock as its latest heartbeat shows it (ts_init)."""
    beats = [e for _, e, _ in await tap.messages() if isinstance(e.payload, Heartbeat)]
    return beats[-1].ts_init if beats else None


async def test_kill_9_of_execution_at_every_point_loses_nothing(rabbit_vhost: str, postgres_dsn: str, tmp_path: Path):
    crash_state = tmp_path / "crash-state"
    env = {
        "TRADESWARM_EXECUTION_CRASH_AT": ",".join(CRASH_POINTS),
        "TRADESWARM_EXECUTION_CRASH_STATE": str(crash_state),
        # partial fills: orders of ~16 BTC (10% of 10M USDT) fill at most 1% of a candle's volume (a few
        # BTC of the 2024 candles): each order works over several candles. 1% of volumes with at most 6
        # decimals keeps every partial fill a multiple of the 1e-8 lot, so exits close positions exactly.
        "TRADESWARM_EXECUTION_PARTICIPATION": "0.01",
        "TRADESWARM_EXECUTION_INITIAL_CASH": "10000000",
        "TRADESWARM_RISK_INITIAL_CASH": "10000000",
        "TRADESWARM_COMPLIANCE_MAX_ORDER_NOTIONAL": "100000000",
        "TRADESWARM_COMPLIANCE_MAX_VOLUME_PER_DAY": "1000000000",
        "TRADESWARM_COMPLIANCE_MAX_VOLUME_PER_DAY_PER_SYMBOL": "1000000000",
        "TRADESWARM_STRATEGY_INTENT_TTL_S": "10800",
    }
    from tests.conftest import RABBIT_BASE

    patterns = ["execution.fill.#", "control.heartbeat.execution.#", "signal.intent.#", "risk.#", "order.#"]
    tap = await Tap(f"{RABBIT_BASE}/{rabbit_vhost}", patterns).start()
    try:
        async with launch_stack(rabbit_vhost, postgres_dsn, tmp_path / "stack", env=env, replay_speed=3600 / 0.1) as s:
            await _check_environments(s)
            await s.wait(lambda: _crashed_at_every_point(crash_state), 300, f"a kill at each of {CRASH_POINTS}")
            # the last crash marker is written just before that kill: the supervisor restarts it after
            await s.wait(
                lambda: s.state().agents["execution"].restarts >= len(CRASH_POINTS), 60, "a restart after each kill"
            )
            # one more, from outside, while orders work at the venue
            await s.wait(lambda: _execution_ready(s), 60, "execution ready after the last crash")
            await s.wait(lambda: _working_at_venue(s), 120, "an order working at the venue")
            killed = s.kill9("execution")
            await s.wait(lambda: s.state().agents["execution"].pid not in (None, killed), 60, "execution restarted")
            await s.wait(lambda: _execution_ready(s), 60, "execution ready again")

            await _forged_orders_do_not_move_the_clock(s, tap)

            fills_before = await s.value("SELECT count(*) FROM fills")
            flow = await _flow(tap)
            await s.wait(
                lambda: _more(s, "SELECT count(*) FROM fills", fills_before), 120, f"fills after the forgeries ({flow})"
            )

            halt = await s.api.post("/control/halt", headers=s.auth, json={"reason": "end of the crash drill"})
            assert halt.status_code == 202, halt.text
            await s.wait(lambda: s.command_complete(halt.json()["command_id"]), 60, "halt complete")
            await asyncio.sleep(2)  # redeliveries and late events must change nothing
            await _check_invariants(s, tap)
            assert s.state().agents["execution"].restarts >= len(CRASH_POINTS) + 1
    finally:
        await tap.close()


async def _check_environments(s: StackHandle) -> None:
    """Only the orchestrator holds the API token; only the agents using PostgreSQL hold its DSN."""
    envs = {name: s.environment_of(name) for name in s.state().agents}
    assert [n for n, e in envs.items() if "TRADESWARM_API_TOKEN" in e] == ["orchestrator"]
    assert sorted(n for n, e in envs.items() if "TRADESWARM_POSTGRES_DSN" in e) == [
        "compliance", "desk", "execution", "orchestrator", "risk",
    ]  # fmt: skip
    for name, env in envs.items():
        assert env["TRADESWARM_AGENT_ID"] == f"{name.replace('_', '-')}-1"
        assert f"{s.prefix}{name}" in env["TRADESWARM_RABBITMQ_URL"]  # its own broker user
        assert env["TRADESWARM_CONTROL_SENDERS"] == s.user("orchestrator")


async def _flow(tap: Tap) -> str:
    """What went through the order path so far (for a failure message)."""
    return str(Counter(e.type for _, e, _ in await tap.messages()))


def _crashed_at_every_point(state: Path) -> bool:
    return state.exists() and set(state.read_text().split()) >= set(CRASH_POINTS)


async def _working_at_venue(s: StackHandle) -> bool:
    rows = await s.fetch("SELECT count(*) FROM paper_venue_orders WHERE status IN ('accepted', 'partially_filled')")
    return bool(rows[0][0])


async def _execution_ready(s: StackHandle) -> bool:
    from tradeswarm import stack

    return stack.probe(s.state().agents["execution"].http_port)


async def _more(s: StackHandle, sql: str, before: int) -> bool:
    return int(await s.value(sql)) > before


async def _forged_orders_do_not_move_the_clock(s: StackHandle, tap: Tap) -> None:
    guest = RabbitMQBus(s.guest_url, connection_name="forger")
    await guest.start()
    try:
        market = await s.wait(lambda: _heartbeat_clock(tap), 30, "execution's heartbeats")
        assert market < datetime.now(UTC) - timedelta(days=365)  # a replay of 2024: execution runs on market time
        forged = {
            # beyond this host's wall clock: dead-lettered by the bus before anything sees it
            "future": datetime(2027, 6, 1, tzinfo=UTC),
            # in the past of the wall clock, but a year past the replay: implausible for the market clock
            "jump": market + timedelta(days=365),
            # plausible (within a week), refused by execution (guest is not compliance): no move. At an
            # odd second: candles move the clock to whole hours only, so any heartbeat stamped with it
            # would show the refused message moved the clock
            "plausible": market + timedelta(days=6, minutes=17, seconds=13),
        }
        for i, (name, ts) in enumerate(forged.items()):
            order = approved_order(90 + i).model_copy(update={"client_order_id": f"forged-{name}"})
            await guest.publish(Envelope.wrap(order, source="compliance-1", clock=SimulatedClock(ts), ts_event=ts))
        letters = await s.wait(lambda: _letters(guest, 3), 30, "the three forged orders dead-lettered")
        reasons = {orjson.loads(d.body)["payload"]["client_order_id"]: d.reason for d in letters}
        assert "in the future of this host's clock" in reasons["forged-future"]
        assert "ahead of this agent's market clock" in reasons["forged-jump"]
        assert "not by a trusted sender" in reasons["forged-plausible"]
        # the refused message did not move the clock: every heartbeat since shows a candle's close time
        await asyncio.sleep(3 * 0.5 + 0.5)
        beats = [e.ts_init for _, e, _ in await tap.messages() if isinstance(e.payload, Heartbeat)]
        since = [ts for ts in beats[-5:] if ts > market]
        assert since, "no heartbeat from execution since the forged orders"
        assert [ts for ts in since if (ts.minute, ts.second) != (0, 0)] == [], f"execution's clock moved: {since}"
        assert await s.value("SELECT count(*) FROM orders WHERE client_order_id LIKE 'forged-%'") == 0
    finally:
        await guest.close()


async def _letters(bus: RabbitMQBus, n: int) -> list[Any] | None:
    letters = [d for d in await bus.dead_letters("execution.orders") if b"forged-" in d.body]
    return letters if len(letters) >= n else None


async def _check_invariants(s: StackHandle, tap: Tap) -> None:
    orders = {r["client_order_id"]: r for r in await s.fetch("SELECT * FROM orders")}
    venue = {r["client_order_id"]: orjson.loads(r["body"]) for r in await s.fetch("SELECT * FROM paper_venue_orders")}
    fills = await s.fetch("SELECT * FROM fills")
    assert orders
    assert fills
    # every order is terminal and matches the venue
    assert [c for c, o in orders.items() if o["status"] in OPEN_STATUSES] == []
    assert {o["status"] for o in orders.values()} <= set(TERMINAL)
    assert set(venue) <= set(orders), "the venue holds an order execution does not know"
    for coid, order in orders.items():
        at_venue = venue.get(coid)
        if at_venue is None:  # never reached the venue: refused before it was sent
            assert order["status"] == "rejected", (coid, order["status"], order["reason"])
            assert order["venue_order_id"] is None
            continue
        venue_filled = sum((Decimal(f["quantity"]) for f in at_venue["fills"]), Decimal(0))
        assert (order["status"], order["venue_order_id"], order["filled_quantity"]) == (
            at_venue["status"], at_venue["venue_order_id"], venue_filled,
        ), coid  # fmt: skip
    # every venue fill is in `fills` exactly once, and nothing else is
    venue_fills = {f["fill_id"]: (coid, f) for coid, body in venue.items() for f in body["fills"]}
    stored = Counter(r["fill_id"] for r in fills)
    assert [f for f, n in stored.items() if n > 1] == []
    assert set(stored) == set(venue_fills)
    for row in fills:
        coid, vf = venue_fills[row["fill_id"]]
        assert (row["client_order_id"], row["quantity"], row["price"]) == (
            coid, Decimal(vf["quantity"]), Decimal(vf["price"]),
        )  # fmt: skip
    # ... and on the bus: every one, at least once. A kill at a crash point publishes each exactly once;
    # the kill from outside may land between the broker's confirm and the outbox's mark, and then the
    # next process publishes the same fill again (same fill id, same content): consumers dedupe by id.
    bus_fills = [e.payload for _, e, _ in await tap.messages() if isinstance(e.payload, Fill)]
    on_bus = Counter(f.fill_id for f in bus_fills)
    assert set(on_bus) == set(stored)
    for fill_id in (f for f, n in on_bus.items() if n > 1):
        assert len({f for f in bus_fills if f.fill_id == fill_id}) == 1, f"{fill_id} republished with other content"
    # every filled order has its fills; positions are the sum of fills
    for coid, order in orders.items():
        mine = sum((r["quantity"] for r in fills if r["client_order_id"] == coid), Decimal(0))
        assert mine == order["filled_quantity"], coid
        if order["status"] == "filled":
            assert mine == order["quantity"] > 0
    for position in await s.fetch("SELECT * FROM positions"):
        net = sum(
            (r["quantity"] if r["side"] == "buy" else -r["quantity"])
            for r in fills
            if (r["venue"], r["symbol"]) == (position["venue"], position["symbol"])
        )
        assert position["quantity"] == net
    # venue ids were never handed out twice, across every restart
    venue_ids = [o["venue_order_id"] for o in orders.values() if o["venue_order_id"] is not None]
    assert len(venue_ids) == len(set(venue_ids))
    assert len({b["venue_order_id"] for b in venue.values()}) == len(venue)
    prefixes = {v.rsplit("-", 1)[0] for v in venue_ids}
    assert len(prefixes) == 1, f"one book, one prefix: {prefixes}"  # the book survived every restart
