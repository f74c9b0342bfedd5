"""Crash safety: the execution agent process is SIGKILLed at a precise point (test hook
``TRADESWARM_EXECUTION_CRASH_AT``) and restarted; real RabbitMQ, real PostgreSQL, and a paper venue
whose book survives in a journal file (it plays the exchange, which outlives our process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from core.clock import WallClock
from core.domain import OrderType, Side
from core.errors import UnroutableMessage
from core.ids import client_order_id, content_id
from core.messages import Candle, Envelope, OrderRequest
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.factories import eventually_async
from tests.orderpath.helpers import candles

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def spawn(rabbit_url: str, dsn: str, journal: Path, crash_at: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")}
    env.update(
        {
            "TRADESWARM_RABBITMQ_URL": rabbit_url,
            "TRADESWARM_POSTGRES_DSN": dsn,
            "TRADESWARM_HTTP_PORT": "0",
            "TRADESWARM_AGENT_ID": "execution-crash",
            "TRADESWARM_LOG_FORMAT": "json",
            "TRADESWARM_EXECUTION_PAPER_JOURNAL": str(journal),
            "TRADESWARM_EXECUTION_TAKER_FEE_BPS": "10",
            "PYTHONPATH": str(ROOT),
        }
    )
    if crash_at:
        env["TRADESWARM_EXECUTION_CRASH_AT"] = crash_at
    log = (journal.parent / "execution.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "agents.execution"], cwd=ROOT, env=env, stdout=log, stderr=log)


async def publish_when_bound(bus: RabbitMQBus, payload, timeout: float = 60.0) -> None:
    """Publish once a queue is bound for it (the agent may still be starting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await bus.publish(Envelope.wrap(payload, source="test", clock=WallClock()))
            return
        except UnroutableMessage:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.poll() is None:
        if loop.time() > deadline:
            raise AssertionError("the process did not die")
        await asyncio.sleep(0.05)
    return proc.returncode


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def future_candle(start: datetime) -> Candle:
    real = candles(2)[1]
    return real.model_copy(update={"timeframe": "1m", "open_time": start, "close_time": start + timedelta(minutes=1)})


@pytest.mark.parametrize("crash_at", ["after_persist", "before_fill_store"])
async def test_sigkill_then_restart_gives_one_order_and_each_fill_once(rabbit_url, postgres_dsn, tmp_path, crash_at):
    journal = tmp_path / "venue.json"
    now = datetime.now(UTC)
    intent_id = content_id("crash-test", crash_at, now.isoformat())
    req = OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D("0.05"),
        reference_price=candles(2)[0].close,
        expires_at=now + timedelta(hours=1),
    )
    candle = future_candle((now + timedelta(minutes=2)).replace(second=0, microsecond=0))
    bus = RabbitMQBus(rabbit_url, connection_name="crash-test")
    await bus.start()
    conn: asyncpg.Connection | None = None
    proc = spawn(rabbit_url, postgres_dsn, journal, crash_at)
    try:
        await publish_when_bound(bus, req)
        conn = await asyncpg.connect(postgres_dsn)

        async def order_status() -> str | None:
            try:
                return await conn.fetchval("SELECT status FROM orders WHERE client_order_id = $1", req.client_order_id)
            except asyncpg.UndefinedTableError:
                return None

        if crash_at == "before_fill_store":
            await eventually_async(lambda: _eq(order_status(), "accepted"), timeout=60)
            await publish_when_bound(bus, candle)
        assert await wait_exit(proc) == -signal.SIGKILL
        if crash_at == "after_persist":
            assert await order_status() == "pending_new"
            assert not journal.exists() or not json.loads(journal.read_text())["orders"]
        else:
            assert await conn.fetchval("SELECT count(*) FROM fills") == 0
            assert len(json.loads(journal.read_text())["orders"][0]["fills"]) == 1  # the venue did fill

        proc = spawn(rabbit_url, postgres_dsn, journal, None)
        if crash_at == "after_persist":
            await eventually_async(lambda: _eq(order_status(), "accepted"), timeout=60)
            await publish_when_bound(bus, candle)
        await eventually_async(lambda: _eq(order_status(), "filled"), timeout=60)
        await asyncio.sleep(1.0)  # let any redelivery land: it must change nothing
        venue_orders = json.loads(journal.read_text())["orders"]
        assert [o["request"]["client_order_id"] for o in venue_orders] == [req.client_order_id]
        assert await conn.fetchval("SELECT count(*) FROM orders") == 1
        fills = await conn.fetch("SELECT * FROM fills")
        assert len(fills) == 1
        assert fills[0]["quantity"] == D("0.05")
        assert fills[0]["price"] == candle.open
        pos = await conn.fetchrow("SELECT * FROM positions")
        assert pos["quantity"] == sum(f["quantity"] for f in fills)
        assert pos["fees"] == sum(f["fee"] for f in fills) == candle.open * D("0.05") * D(10) / D(10_000)
    finally:
        stop(proc)
        if conn is not None:
            await conn.close()
        await bus.close()


async def _eq(value, expected) -> bool:
    return (await value) == expected
