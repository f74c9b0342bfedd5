"""End to end: `tradeswarm stack up` runs the whole swarm as separate OS processes on the real local
RabbitMQ (with the broker definitions: one user per agent, topic permissions), PostgreSQL and
InfluxDB, replaying real BTC/USDT candles (tests/data, see its README).

One stack per test module (the machine is small): the checks run in order on it — orders and fills
in PostgreSQL, candles in InfluxDB, a killed agent reported DOWN and restarted with no duplicated
order, HALT (no order reaches the venue and nothing fills after it is acknowledged — protective
exits included —, open orders cancelled, the API reports it complete) then RESUME, FLATTEN (every
position closed through the order path, reported complete once flat) then RESUME, a forged
approved order rejected by execution, the strategy user refused by the broker, and finally
`stack down` with no message left unacknowledged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import orjson
import pytest

from agents.base.registry import AGENT_NAMES
from core import routing
from core.clock import SimulatedClock
from core.messages import Envelope
from infrastructure.messaging.definitions import user_name
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.conftest import RABBIT_BASE, rabbitmqctl
from tests.control.data import CSV, approved_order
from tests.control.helpers import free_block
from tests.factories import free_port
from tradeswarm import stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

INFLUX_URL = os.environ.get("TRADESWARM_TEST_INFLUX_URL", "http://127.0.0.1:8086")
TOKEN = "e2e-token"
HEARTBEAT_INTERVAL_S = 0.5
HEARTBEAT_TIMEOUT_S = 3.0
RESTART_BACKOFF_S = 6.0  # longer than the heartbeat timeout: the DOWN state is observable
REPLAY_SPEED = 3600 / 0.05  # one real 1h candle every 50 ms: 3,000 candles last 150 s
OPEN_STATUSES = ("pending_new", "submitted", "accepted", "partially_filled", "pending_cancel")


@dataclass
class Stack:
    run_dir: Path
    vhost: str
    dsn: str
    influx_db: str
    api: httpx.AsyncClient
    prefix: str
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tradeswarm", "stack", *args, "--run-dir", str(self.run_dir)],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def state(self) -> stack.StackState:
        state = stack.read_state(self.run_dir)
        assert state is not None
        return state


TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, httpx.HTTPError)
"""Other tests on this machine restart PostgreSQL: polling rides over that."""

CURRENT: list[Stack] = []


async def _wait(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
        except TRANSIENT:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            logs = _logs(CURRENT[-1]) if CURRENT else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        await asyncio.sleep(interval)


async def _influx_candles(database: str) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{INFLUX_URL}/query", params={"db": database, "q": "SELECT count(close) FROM candles"}
        )
    series = response.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


@pytest.fixture
async def swarm(rabbit_vhost: str, postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    influx_db = f"ts_e2e_{uuid.uuid4().hex[:10]}"
    api_port = free_port()
    base_port = free_block(len(AGENT_NAMES))
    prefix = f"e{uuid.uuid4().hex[:6]}_"
    env = {
        **os.environ,
        "TRADESWARM_RABBITMQ_URL": f"{RABBIT_BASE}/",
        "TRADESWARM_POSTGRES_DSN": postgres_dsn,
        "TRADESWARM_INFLUX_URL": INFLUX_URL,
        "TRADESWARM_INFLUX_API": "v1",
        "TRADESWARM_INFLUX_BUCKET": influx_db,
        "TRADESWARM_SYMBOLS": "BTC/USDT",
        "TRADESWARM_TIMEFRAMES": "1h",
        "TRADESWARM_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_INTERVAL_S),
        "TRADESWARM_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
        "TRADESWARM_SHUTDOWN_GRACE_S": "10",
        "TRADESWARM_API_TOKEN": TOKEN,
        "TRADESWARM_LOG_FORMAT": "json",
        "TRADESWARM_ORCHESTRATOR_API_HOST": "127.0.0.1",
    }
    s = Stack(tmp_path / "stack", rabbit_vhost, postgres_dsn, influx_db,
              httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10), prefix, env)  # fmt: skip
    up = s.cli(
        "up", "--vhost", rabbit_vhost, "--broker-user-prefix", prefix, "--data-source", "replay",
        "--replay-path", str(CSV), "--replay-speed", str(REPLAY_SPEED), "--api-port", str(api_port),
        "--base-port", str(base_port), "--restart-backoff", str(RESTART_BACKOFF_S), "--stop-timeout", "20",
        "--wait", "120",
    )  # fmt: skip
    CURRENT.append(s)
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout}\n{up.stderr}\n{_logs(s)}"
        yield s
    finally:
        if stack.running_supervisor(s.run_dir) is not None:
            stack.stop(s.run_dir)
        await s.api.aclose()
        users = [line.split("\t")[0] for line in rabbitmqctl("list_users", "-q").stdout.splitlines()]
        for user in users:
            if user.startswith(prefix):
                rabbitmqctl("delete_user", user, check=False)
        async with httpx.AsyncClient() as client:
            await client.post(f"{INFLUX_URL}/query", params={"q": f'DROP DATABASE "{influx_db}"'})


def _logs(s: Stack, tail: int = 15) -> str:
    out = []
    for path in sorted((s.run_dir / "logs").glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()[-tail:]
        out.append(f"--- {path.name}\n" + "\n".join(line[:400] for line in lines))
    return "\n".join(out)


async def _db(s: Stack) -> asyncpg.Connection:
    return await asyncpg.connect(s.dsn)


async def _count(s: Stack, sql: str, *args: object) -> int:
    async def once() -> int:
        conn = await _db(s)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    for _ in range(60):
        try:
            return await once()
        except TRANSIENT:
            await asyncio.sleep(0.5)
    return await once()


async def _value(s: Stack, sql: str) -> Any:
    conn = await _db(s)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _agent(s: Stack, agent_id: str) -> dict[str, Any]:
    agents = (await s.api.get("/agents")).json()
    return next((a for a in agents if a["agent_id"] == agent_id), {})


async def test_the_swarm_end_to_end(swarm: Stack) -> None:
    s = swarm
    auth = {"Authorization": f"Bearer {TOKEN}"}

    # 1. All agents (eight with the AI desk) are separate processes, UP according to the orchestrator.
    state = s.state()
    pids = {a.pid for a in state.agents.values()}
    assert len(pids) == len(AGENT_NAMES)
    assert os.getpid() not in pids
    health = await _wait(lambda: _health_ok(s), 30, "all agents UP in /health")
    assert health["agents_total"] == len(AGENT_NAMES)

    # 2. Orders and fills in PostgreSQL, candles in InfluxDB.
    await _wait(lambda: _count(s, "SELECT count(*) FROM fills"), 120, "fills in PostgreSQL")
    assert await _count(s, "SELECT count(*) FROM orders") >= 1
    assert (await s.api.get("/trades")).json()["total"] >= 1
    await _wait(lambda: _influx_candles(s.influx_db), 30, "candles in InfluxDB")

    # 3. Kill an agent: DOWN within the heartbeat timeout, restarted, trading resumes, no duplicate.
    victim = state.agents["risk"]
    restarts_before = victim.restarts  # risk may have been restarted at start (a migration race)
    os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
    killed_at = time.monotonic()
    await _wait(lambda: _state_is(s, "risk-1", "down"), HEARTBEAT_TIMEOUT_S + 5, "risk-1 DOWN")
    assert time.monotonic() - killed_at <= HEARTBEAT_TIMEOUT_S + 3  # timeout + one check interval + polling
    await _wait(lambda: _state_is(s, "risk-1", "up"), RESTART_BACKOFF_S + 60, "risk-1 back UP")
    assert s.state().agents["risk"].restarts == restarts_before + 1
    assert s.state().agents["risk"].pid != victim.pid
    orders_before = await _count(s, "SELECT count(*) FROM orders")
    await _wait(lambda: _more_orders(s, orders_before), 120, "new orders after the restart")
    duplicates = await _count(
        s, "SELECT count(*) FROM (SELECT intent_id FROM orders GROUP BY intent_id HAVING count(*) > 1) d"
    )
    assert duplicates == 0
    overfilled = await _count(
        s,
        "SELECT count(*) FROM orders o WHERE (SELECT coalesce(sum(quantity), 0) FROM fills f"
        " WHERE f.client_order_id = o.client_order_id) > o.quantity",
    )
    assert overfilled == 0

    # 4. HALT: acknowledged by strategy, risk, compliance and execution; nothing reaches the venue after.
    response = await s.api.post("/control/halt", headers=auth, json={"reason": "e2e drill"})
    assert response.status_code == 202, response.text
    halt_id = response.json()["command_id"]
    halt = await _wait(lambda: _complete(s, halt_id), 30, "halt complete")
    assert sorted(halt["required_kinds"]) == ["compliance", "execution", "risk", "strategy"]
    sent_at_halt = await _sent_orders(s)
    fills_at_halt = await _count(s, "SELECT count(*) FROM fills")
    assert (await s.api.get("/health")).json()["trading"] == "halted"
    await asyncio.sleep(5)  # the replay goes on: 100 more candles while halted
    open_orders = await _count(s, f"SELECT count(*) FROM orders WHERE status IN {OPEN_STATUSES}")
    assert open_orders == 0
    late = await _rows(s, await _sent_orders(s) - sent_at_halt)  # reached the venue after the ack
    assert late == []  # nothing at all: the venue's protective exits are suspended too
    assert await _count(s, "SELECT count(*) FROM fills") == fills_at_halt  # and nothing traded
    halted = await _count(
        s, "SELECT count(*) FROM execution_control WHERE halted AND command_id = $1", uuid.UUID(halt_id)
    )
    assert halted == 1  # the kill switch is stored: a restarted execution stays halted
    agents = {a["agent_id"]: a for a in (await s.api.get("/agents")).json()}
    assert all(agents[f"{k}-1"]["halted"] for k in ("compliance", "execution"))

    # 5. RESUME restores trading.
    resumed = await s.api.post("/control/resume", headers=auth)
    await _wait(lambda: _complete(s, resumed.json()["command_id"]), 30, "resume complete")
    orders_before = await _count(s, "SELECT count(*) FROM orders")
    await _wait(lambda: _more_orders(s, orders_before), 120, "orders after resume")

    # 5b. FLATTEN: risk closes every open position through compliance and execution; the command is
    #     complete once risk saw the positions flat (from the fills); new entries are refused after.
    open_sql = "SELECT count(*) FROM positions WHERE quantity <> 0"
    for _ in range(100):  # best effort: flatten with a position open (they last a few candles here)
        if await _count(s, open_sql):
            break
        await asyncio.sleep(0.05)
    flatten = await s.api.post("/control/flatten", headers=auth, json={"reason": "e2e flatten"})
    assert flatten.status_code == 202, flatten.text
    flat = await _wait(lambda: _complete(s, flatten.json()["command_id"]), 60, "flatten complete (flat)")
    assert [a["ok"] for a in flat["acks"]] == [True], flat
    assert await _count(s, open_sql) == 0
    entries_at_flat = await _count(s, "SELECT count(*) FROM orders WHERE NOT (request->>'reduce_only')::boolean")
    await asyncio.sleep(3)  # 60 more candles: strategy signals are refused by risk (exits only)
    assert (
        await _count(s, "SELECT count(*) FROM orders WHERE NOT (request->>'reduce_only')::boolean") == entries_at_flat
    )
    resumed = await s.api.post("/control/resume", headers=auth)
    await _wait(lambda: _complete(s, resumed.json()["command_id"]), 30, "resume after flatten complete")

    # 6. Security: the strategy user cannot publish an approved order; a forged sender is rejected.
    secrets = orjson.loads((s.run_dir / "secrets.json").read_bytes())
    strategy_user = user_name("strategy", s.vhost, s.prefix)  # strategy@<vhost>: users are per vhost
    credentials = f"{quote(strategy_user, safe='')}:{quote(secrets[strategy_user], safe='')}"
    strategy_bus = RabbitMQBus(
        f"amqp://{credentials}@{RABBIT_BASE.split('@', 1)[1]}/{quote(s.vhost, safe='')}",
        connection_name="strategy-intruder", startup_timeout_s=5,
    )  # fmt: skip
    guest_bus = RabbitMQBus(f"{RABBIT_BASE}/{quote(s.vhost, safe='')}", connection_name="guest-intruder")
    forged = approved_order(7)
    # stamped at the replay's market time (execution's clock): a later stamp is refused as implausible
    market = await _value(s, "SELECT max(created_at) FROM orders")
    envelope = Envelope.wrap(forged, source="compliance-1", clock=SimulatedClock(market))
    try:
        await strategy_bus.start()
        with pytest.raises(Exception, match="ACCESS_REFUSED"):
            await strategy_bus.publish(envelope)
        await guest_bus.start()
        await guest_bus.publish(envelope)  # guest may publish here, but is not compliance
        letters = await _wait(
            lambda: _dead_letters(guest_bus, "execution.orders"), 30, "the forged order dead-lettered"
        )
        assert any("not by a trusted sender" in d.reason for d in letters), [d.reason for d in letters]
    finally:
        await strategy_bus.close()
        await guest_bus.close()
    assert await _count(s, "SELECT count(*) FROM orders WHERE client_order_id = $1", forged.client_order_id) == 0

    # 7. stack down: graceful, every process gone, no message left unacknowledged.
    down = s.cli("down")
    assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
    assert all(not stack.pid_alive(a.pid) for a in s.state().agents.values())
    assert {a.last_exit for a in s.state().agents.values()} == {0}

    def unacked() -> list[str]:
        queues = rabbitmqctl("list_queues", "-q", "-p", s.vhost, "name", "messages_unacknowledged").stdout
        return [line for line in queues.splitlines()[1:] if line.split("\t")[-1] != "0"]

    # every process has exited; the broker settles their closed connections asynchronously
    deadline = time.monotonic() + 10
    while unacked() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert unacked() == []
    assert routing.EXCHANGE


async def _sent_orders(s: Stack) -> set[str]:
    """Orders that reached the (paper) venue: the venue gave them an id."""
    conn = await _db(s)
    try:
        rows = await conn.fetch("SELECT client_order_id FROM orders WHERE venue_order_id IS NOT NULL")
    finally:
        await conn.close()
    return {r["client_order_id"] for r in rows}


async def _rows(s: Stack, client_order_ids: set[str]) -> list[dict[str, Any]]:
    conn = await _db(s)
    try:
        rows = await conn.fetch(
            "SELECT client_order_id, status, reason, venue_order_id, created_at, updated_at, request::text"
            " FROM orders WHERE client_order_id = ANY($1::text[])",
            list(client_order_ids),
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _health_ok(s: Stack) -> dict[str, Any] | None:
    try:
        health = (await s.api.get("/health")).json()
    except httpx.HTTPError:
        return None
    return health if health["status"] == "ok" and health["agents_total"] == len(AGENT_NAMES) else None


async def _state_is(s: Stack, agent_id: str, state: str) -> bool:
    try:
        return (await _agent(s, agent_id)).get("state") == state
    except httpx.HTTPError:
        return False


async def _more_orders(s: Stack, before: int) -> bool:
    return await _count(s, "SELECT count(*) FROM orders") > before


async def _complete(s: Stack, command_id: str) -> dict[str, Any] | None:
    view = (await s.api.get(f"/control/commands/{command_id}")).json()
    return view if view.get("complete") else None


async def _dead_letters(bus: RabbitMQBus, queue: str) -> list[Any]:
    return list(await bus.dead_letters(queue))
