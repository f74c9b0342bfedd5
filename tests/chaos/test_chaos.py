"""Fault injection on the multi-process stack (issue 17), real RabbitMQ and PostgreSQL.

One ``tradeswarm stack up`` (one OS process and one broker user per agent, its own vhost and
database, a paper venue whose book lives in PostgreSQL, a PRIVATE ``influxd`` as tick store) replays
real BTC/USDT hours; while the swarm trades, the test injects one fault after another, each a
scenario of the scoreboard:

* **InfluxDB down for a minute** — stopped once candles are stored, started again after the replay
  ended and a minute passed: candles keep flowing, trading goes on, every candle is stored after;

* **bad input by hand** — a poison body, a wrong schema version, an oversized body, a NaN and a
  negative quantity published on ``order.approved`` with compliance's OWN credentials (so only the
  content is wrong): each lands in ``execution.orders.dlq`` with its reason, is counted
  (``tradeswarm_messages_dead_lettered_total``) and execution stays up (same process, ready);
* **forged orders** — with another agent's credentials (strategy's user may not publish
  ``order.approved``: the broker refuses) and with a forged sender (guest claiming
  ``compliance-1``: dead-lettered by execution, nothing stored);
* **kill -9 of risk and of compliance** while intents flow (the supervisor restarts them);
* **an agent started twice with the same id** — a second risk process with the same id, user and
  settings: the orchestrator alerts ``duplicate_agent_id`` once, the supervised one stays up;
* **duplicate delivery of every message kind** — each kind seen on the bus is published again,
  byte for byte, with its owner's credentials (candles, indicators, votes, intents, risk and
  compliance decisions, approved orders, order updates, fills, positions, snapshots, heartbeats...).

Then HALT, and the invariants are read from the venue's book, PostgreSQL and the broker: no order
lost, none duplicated (client order ids unique, one venue order per intent), every fill once in
PostgreSQL and once on the bus, orders match the venue, no message left unacked, positions and
cash reconcile with the fills, the audit chain verifies. Conditions are waited for with generous
deadlines; nothing asserts a duration. Every result goes to the scoreboard printed at the end.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from core import routing
from core.clock import SimulatedClock
from core.messages import Envelope, OrderRequest
from core.messages.codec import JsonCodec
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.chaos import invariants as inv
from tests.chaos.run import INITIAL_CASH, STACK_ENV, count, halt_and_check, letters
from tests.chaos.scoreboard import BOARD
from tests.control.data import CSV, approved_order
from tests.private_services import PrivateInflux
from tests.stackkit import StackHandle, Tap, launch_stack
from tradeswarm import stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

CANDLES = 700
"""Real hours replayed (enough for the strategies to trade a few times)."""
ENV = {
    **STACK_ENV,
    # small tick-store batches: a publisher that waited on the store would stall early in the outage
    "TRADESWARM_DATA_STORE_BATCH_SIZE": "20",
}
OWNERS = {
    "market.": "data_collection", "analysis.": "technical_analysis", "signal.": "strategy", "risk.": "risk",
    "compliance.": "compliance", "order.": "compliance", "execution.": "execution", "portfolio.": "execution",
}  # fmt: skip
"""Routing-key prefix -> the agent kind whose broker user may publish it."""


def _replay_file(tmp_path: Path) -> Path:
    lines = CSV.read_text().splitlines(keepends=True)
    path = tmp_path / "replay" / CSV.name
    path.parent.mkdir(parents=True)
    path.write_text("".join(lines[: CANDLES + 1]))
    return path


def _owner(routing_key: str) -> str | None:
    if routing_key.startswith(("control.heartbeat.", "control.ack.")):
        return routing_key.split(".")[2]
    return next((kind for prefix, kind in OWNERS.items() if routing_key.startswith(prefix)), None)


@pytest.fixture
def influx() -> Iterator[PrivateInflux]:
    """A private influxd (the shared one on 8086 is never stopped)."""
    server = PrivateInflux()
    try:
        server.start()
        yield server
    finally:
        server.remove()


async def test_faults_on_the_multi_process_stack(
    rabbit_vhost: str, postgres_dsn: str, influx: PrivateInflux, tmp_path: Path
) -> None:
    from tests.conftest import RABBIT_BASE

    mark = len(BOARD.rows)
    tap = await Tap(f"{RABBIT_BASE}/{rabbit_vhost}", ["#"], skip_invalid=True).start()
    replay = _replay_file(tmp_path)
    try:
        async with launch_stack(
            rabbit_vhost, postgres_dsn, tmp_path / "stack", env=ENV, replay_path=replay, replay_speed=3600 / 0.05,
            influx_url=influx.url,
        ) as s:  # fmt: skip
            outage = await _influx_down(s, tap, influx)
            # while InfluxDB is down, the other faults one after the other
            await _bad_input(s)
            await _forged_orders(s)
            await _kill_risk_and_compliance(s, tap)
            await _started_twice(s, tap, tmp_path)
            await _influx_back(s, tap, influx, outage)
            await _duplicate_every_kind(s, tap)
            await halt_and_check(s, tap, INITIAL_CASH, scenario="after all faults + HALT")
    finally:
        await tap.close()
    failed = BOARD.failures(since=mark)
    assert not failed, "\n".join(f"{r.scenario} / {r.invariant}: {r.detail}" for r in failed)


# ------------------------------------------------------------------------------ scenarios

INFLUX_SCENARIO = "InfluxDB down for a minute (private influxd)"
CANDLE_COUNT = 'SELECT count("close") FROM candles'


async def _influx_down(s: StackHandle, tap: Tap, influx: PrivateInflux) -> tuple[float, int, int]:
    """Stop InfluxDB once candles are being stored; returns (when, candles published, fills) then."""
    await s.wait(lambda: influx.count(s.influx_db, CANDLE_COUNT) > 0, 120, "the first candles stored in InfluxDB")
    influx.stop()
    return time.monotonic(), await count(tap, "market.candle."), await count(tap, "execution.fill.")


async def _influx_back(s: StackHandle, tap: Tap, influx: PrivateInflux, outage: tuple[float, int, int]) -> None:
    """Keep InfluxDB down until the replay ended and a minute passed, then start it again."""
    since, candles_before, fills_before = outage
    # the replay must END while the tick store is down: publishing never waits on it
    await s.wait(lambda: _candles_published(tap), 240, f"the {CANDLES} candles replayed while InfluxDB is down")
    fills = await count(tap, "execution.fill.")
    BOARD.record(
        INFLUX_SCENARIO, "candles keep flowing (the replay ends while it is down)", influx.process is None,
        f"{CANDLES - candles_before} candles published during the outage",
    )  # fmt: skip
    BOARD.record(INFLUX_SCENARIO, "trading goes on (fills while it is down)", fills > fills_before, f"{fills} fills")
    await asyncio.sleep(max(0.0, 60.0 - (time.monotonic() - since)))  # down for (at least) a minute
    influx.start()
    stored = await s.wait(
        lambda: influx.count(s.influx_db, CANDLE_COUNT) >= CANDLES, 180, "every candle in InfluxDB after the outage"
    )
    BOARD.record(INFLUX_SCENARIO, "every candle stored once it is back (buffered, retried)", bool(stored))
    ready = all(stack.probe(a.http_port) for a in s.state().agents.values())
    BOARD.record(INFLUX_SCENARIO, "every agent up and ready", ready, str(s.state().agents))


async def _bad_input(s: StackHandle) -> None:
    scenario = "bad input by hand on order.approved (poison, schema v99, oversized, NaN, negative qty)"
    pid = s.agent_pid("execution")
    before = await _dead_lettered(s, "execution", "execution.orders")

    def variant(coid: str, **payload: object) -> dict[str, object]:
        good = orjson.loads(JsonCodec().encode(_envelope(approved_order(1), coid)))
        return {**good, "payload": {**good["payload"], **payload}}

    # name -> (body, what the reason must say); each body names its own client order id
    bodies = {
        "poison": (b"\x00 chaos-poison: this is not json {", "not valid JSON"),
        "schema v99": (orjson.dumps({**variant("chaos-v99"), "schema_version": 99}), "99"),
        "oversized": (orjson.dumps(variant("chaos-big", reason="x" * 300_000)), "over the"),
        "NaN quantity": (orjson.dumps(variant("chaos-nan", quantity="NaN")), "quantity"),
        "negative quantity": (orjson.dumps(variant("chaos-negative", quantity="-1")), "quantity"),
    }
    key = routing.ORDERS_APPROVED.key(venue="binance", symbol="BTC-USDT")
    bus = RabbitMQBus(s.url_as("compliance"), connection_name="compliance-chaos")
    reader = RabbitMQBus(s.guest_url, connection_name="chaos-reader")  # compliance may not read execution's DLQ
    await bus.start()
    await reader.start()
    try:
        for body, _ in bodies.values():
            await bus.publish_raw(key, body)
        found = await s.wait(
            lambda: letters(reader, "execution.orders", b"chaos-", len(bodies)),
            60,
            "the five bad messages dead-lettered",
        )
    finally:
        await bus.close()
        await reader.close()
    for name, (body, expected) in bodies.items():
        mine = [d.reason for d in found if d.body == body]
        ok = len(mine) == 1 and expected in mine[0]
        BOARD.record(scenario, f"{name}: in the DLQ once, with its reason", ok, f"reasons: {mine} (want {expected!r})")
    counted = await _dead_lettered(s, "execution", "execution.orders") - before
    BOARD.record(scenario, "each counted (dead-letter metric)", counted >= len(bodies), f"metric +{counted}")
    same = s.agent_pid("execution") == pid and stack.probe(s.state().agents["execution"].http_port)
    BOARD.record(scenario, "the agent stays up (same process, ready)", same, f"pid {pid} -> {s.agent_pid('execution')}")
    stored = await s.value("SELECT count(*) FROM orders WHERE client_order_id LIKE 'chaos-%'")
    BOARD.record(scenario, "nothing stored from them", stored == 0, f"{stored} orders stored")


async def _forged_orders(s: StackHandle) -> None:
    scenario = "forged orders (another agent's credentials; forged sender)"
    strategy = RabbitMQBus(s.url_as("strategy"), connection_name="strategy-forger", startup_timeout_s=10)
    guest = RabbitMQBus(s.guest_url, connection_name="forger", startup_timeout_s=10)
    await strategy.start()
    await guest.start()
    try:
        refused = ""
        try:
            await strategy.publish(_envelope(approved_order(2), "chaos-forged-strategy"))
        except Exception as exc:  # whatever the client raises, the broker's words are in it
            refused = str(exc)
        BOARD.record(scenario, "another agent's user: refused by the broker", "ACCESS_REFUSED" in refused, refused)
        await guest.publish(_envelope(approved_order(3), "chaos-forged-sender"))
        found = await s.wait(lambda: letters(guest, "execution.orders", b"chaos-forged-sender", 1), 60, "forgery")
        BOARD.record(
            scenario, "forged sender: dead-lettered with the reason", "not by a trusted sender" in found[0].reason,
            found[0].reason,
        )  # fmt: skip
    finally:
        await strategy.close()
        await guest.close()
    stored = await s.value("SELECT count(*) FROM orders WHERE client_order_id LIKE 'chaos-forged-%'")
    BOARD.record(scenario, "no order stored or sent", stored == 0, f"{stored} stored")


async def _kill_risk_and_compliance(s: StackHandle, tap: Tap) -> None:
    for kind, topic in (("risk", "signal.intent."), ("compliance", "risk.approved.")):
        await _kill_while_flowing(s, tap, kind, topic)


async def _kill_while_flowing(s: StackHandle, tap: Tap, kind: str, topic: str) -> None:
    scenario = f"kill -9 of {kind} while {topic}* messages flow"

    async def flowing() -> int:
        return await count(tap, topic)

    def restarted() -> bool:
        return s.state().agents[kind].pid not in (None, killed)

    def ready() -> bool:
        return stack.probe(s.state().agents[kind].http_port)

    seen = await s.wait(flowing, 180, f"{topic}* messages before killing {kind}")
    killed = s.kill9(kind)
    await s.wait(restarted, 60, f"{kind} restarted")
    await s.wait(ready, 90, f"{kind} ready again")
    BOARD.record(scenario, "restarted by the supervisor and ready", True, f"{seen} seen before the kill")


async def _started_twice(s: StackHandle, tap: Tap, tmp_path: Path) -> None:
    """A second risk process with the supervisor's one's id, user and settings (another HTTP port)."""
    scenario = "risk started twice with the same id"
    env = {**s.environment_of("risk"), "TRADESWARM_HTTP_PORT": "0"}
    with (tmp_path / "second-risk.log").open("wb") as log:
        second = subprocess.Popen([sys.executable, "-m", "agents.risk"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        alerts = await s.wait(lambda: _duplicate_alerts(tap), 90, "the orchestrator's duplicate_agent_id alert")
        message = alerts[0].payload.message
        both = f"pid {second.pid} " in message and f"pid {s.agent_pid('risk')} " in message
        BOARD.record(scenario, "alerted (critical, once, naming both processes)", both and len(alerts) == 1, message)
    finally:
        second.terminate()
        code = await asyncio.to_thread(second.wait, 60)
    BOARD.record(scenario, "the second one stops cleanly on SIGTERM", code == 0, f"exit code {code}")
    view = await s.agent("risk-1")
    BOARD.record(scenario, "the supervised one stays up", stack.probe(s.state().agents["risk"].http_port), str(view))


async def _duplicate_alerts(tap: Tap) -> list[Envelope]:
    return [e for k, e, _ in await tap.messages() if k.startswith("alert.critical.duplicate_agent_id")]


async def _duplicate_every_kind(s: StackHandle, tap: Tap) -> None:
    """Publish again, byte for byte and with the owner's credentials, messages of every kind seen."""
    scenario = "duplicate delivery of every message kind"
    by_kind: dict[str, list[tuple[str, Envelope]]] = {}
    for key, envelope, _ in await tap.messages():
        if _owner(key) is not None and not envelope.payload.__class__.__name__.startswith("Command"):
            by_kind.setdefault(envelope.type, []).append((key, envelope))
    codec = JsonCodec()
    buses: dict[str, RabbitMQBus] = {}
    try:
        for kind, messages in sorted(by_kind.items()):
            # every approved order, fill and order update again; of the other kinds the last few
            picked = messages if kind in ("order_request", "fill", "order_update") else messages[-5:]
            for key, envelope in picked:
                owner = _owner(key)
                assert owner is not None
                if owner not in buses:
                    buses[owner] = RabbitMQBus(s.url_as(owner), connection_name=f"{owner}-duplicator")
                    await buses[owner].start()
                await buses[owner].publish_raw(key, codec.encode(envelope))
    finally:
        for bus in buses.values():
            await bus.close()
    kinds = sorted(by_kind)
    decisions = Counter(
        (e.type, getattr(e.payload, "verdict", getattr(e.payload, "approved", "")))
        for _, e, _ in await tap.messages()
        if e.type in ("risk_decision", "compliance_decision")
    )
    expected = {"candle", "indicator_snapshot", "trade_intent", "risk_decision", "order_request", "fill"}
    BOARD.record(scenario, "every trading kind was duplicated", expected <= set(kinds), f"{kinds} {dict(decisions)}")


# ------------------------------------------------------------------------------ helpers


def _envelope(order: OrderRequest, client_order_id: str) -> Envelope:
    """An approved order stamped at its real candle's close (early in the replay: plausible)."""
    order = order.model_copy(update={"client_order_id": client_order_id})
    clock = SimulatedClock(order.expires_at - timedelta(days=3650))
    return Envelope.wrap(order, source="compliance-1", clock=clock, ts_event=clock.now())


async def _dead_lettered(s: StackHandle, kind: str, queue: str) -> float:
    port = s.state().agents[kind].http_port
    async with httpx.AsyncClient(timeout=10) as client:
        page = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return inv.dead_letter_counter(page, queue)


async def _candles_published(tap: Tap) -> bool:
    return await count(tap, "market.candle.") >= CANDLES
