"""Readiness under a broker alarm (issue #19): while RabbitMQ blocks publishers (a memory alarm raised
on a PRIVATE node started by this test — never the shared broker), an agent process answers
``/readyz`` 503 and exports ``tradeswarm_bus_blocked 1``; once the alarm clears it is ready again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.factories import free_port
from tests.stackkit import PrivateBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


async def _readyz(client: httpx.AsyncClient) -> int | None:
    try:
        return (await client.get("/readyz")).status_code
    except httpx.HTTPError:
        return None


async def _until(check, expected, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while (value := await check()) != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still {value!r} after {timeout}s\n{log.read_text(errors='replace')[-3000:]}")
        await asyncio.sleep(0.2)


async def test_readyz_is_not_ready_while_the_broker_blocks_publishing(private_broker: PrivateBroker, tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")}
    env |= {
        "TRADESWARM_RABBITMQ_URL": private_broker.url(),
        "TRADESWARM_HTTP_PORT": str(port),
        "TRADESWARM_AGENT_ID": "strategy-alarm",
        "TRADESWARM_HEARTBEAT_INTERVAL_S": "0.3",
        "TRADESWARM_HEARTBEAT_TIMEOUT_S": "3",
        "TRADESWARM_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "strategy.log"
    with log.open("ab") as out:
        agent = subprocess.Popen([sys.executable, "-m", "agents.strategy"], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            await _until(lambda: _readyz(client), 200, 60, "the agent ready before the alarm", log)

            # A memory alarm: the broker blocks every publishing connection (connection.blocked).
            private_broker.ctl("set_vm_memory_high_watermark", "0.000001")
            await _until(lambda: _readyz(client), 503, 30, "/readyz under the memory alarm", log)
            metrics = (await client.get("/metrics")).text
            assert 'tradeswarm_bus_blocked{agent="strategy"} 1.0' in metrics
            assert (await client.get("/healthz")).status_code == 200  # alive: nothing to restart

            private_broker.ctl("set_vm_memory_high_watermark", "0.4")
            await _until(lambda: _readyz(client), 200, 30, "/readyz after the alarm cleared", log)
            metrics = (await client.get("/metrics")).text
            assert 'tradeswarm_bus_blocked{agent="strategy"} 0.0' in metrics
            assert 'tradeswarm_agent_ready{agent="strategy",agent_id="strategy-alarm"} 1.0' in metrics
        text = log.read_text()
        assert "bus_blocked" in text
        assert "bus_unblocked" in text
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def _blocked(bus: object) -> bool:
    return bool(getattr(bus, "blocked", False))


async def test_a_disk_alarm_blocks_readiness_too(private_broker: PrivateBroker, tmp_path: Path):
    """Same with the disk alarm (a free-disk limit above what the disk has)."""
    from infrastructure.messaging.rabbitmq import RabbitMQBus

    bus = RabbitMQBus(private_broker.url(), connection_name="disk-alarm", publish_timeout_s=2)
    await bus.start()
    try:
        assert not _blocked(bus)
        private_broker.ctl("set_disk_free_limit", "100000GB")
        from core.clock import WallClock
        from core.messages import Envelope
        from tests.factories import candle

        # the broker blocks a connection once it publishes: the publish waits, then fails
        publish = asyncio.create_task(
            bus.publish(Envelope.wrap(candle(), source="test", clock=WallClock()), "market.candle.x")
        )
        deadline = time.monotonic() + 30
        while not _blocked(bus) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _blocked(bus)
        private_broker.ctl("set_disk_free_limit", "1MB")
        deadline = time.monotonic() + 30
        while _blocked(bus) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not _blocked(bus)
        publish.cancel()
        await asyncio.gather(publish, return_exceptions=True)
    finally:
        await bus.close()
