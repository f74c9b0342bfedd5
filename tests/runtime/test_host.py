"""The agent host on the real broker: probes, metrics, heartbeats, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aio_pika
import httpx
import pytest
from pydantic import SecretStr

from agents.base import Agent, AgentContext, Subscription
from agents.base.host import AgentHost
from core.messages import Candle, Envelope, Heartbeat
from core.ports import QueueSpec
from core.routing import CANDLES, HEARTBEATS, queue_name
from core.settings import Settings
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.factories import candle_envelope, eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class CountingAgent(Agent):
    kind = "counting_test"

    def __init__(self, ctx: AgentContext) -> None:
        super().__init__(ctx)
        self.seen: list[int] = []

    def subscriptions(self) -> Sequence[Subscription]:
        return [Subscription("candles", (CANDLES.all(),), {Candle: self.on_candle})]

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        self.seen.append(candle.sequence)


async def test_host_serves_probes_metrics_and_heartbeats(rabbit_url: str) -> None:
    settings = Settings(
        rabbitmq_url=SecretStr(rabbit_url),
        http_port=0,
        heartbeat_interval_s=0.2,
        heartbeat_timeout_s=2,
        agent_id="counting-1",
    )
    observer = RabbitMQBus(rabbit_url, connection_name="observer")
    await observer.start()
    beats: list[Heartbeat] = []

    async def on_beat(env: Envelope) -> None:
        assert isinstance(env.payload, Heartbeat)
        beats.append(env.payload)

    await observer.subscribe(QueueSpec("test.heartbeats", (HEARTBEATS.all(),)), on_beat)
    agents: list[CountingAgent] = []

    async def build(ctx: AgentContext) -> Agent:
        agents.append(CountingAgent(ctx))
        return agents[0]

    host = AgentHost("counting_test", build, settings)
    run = asyncio.create_task(host.run())
    try:
        await eventually(host.is_ready, timeout=30)
        base = f"http://127.0.0.1:{host.http.port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).json() == {"ready": True}
            for i in range(5):
                await observer.publish(candle_envelope(i))
            await eventually(lambda: len(agents[0].seen) == 5)
            text = (await client.get("/metrics")).text
            assert 'tradeswarm_messages_consumed_total{agent="counting_test",type="candle"}' in text
            assert 'tradeswarm_agent_ready{agent="counting_test",agent_id="counting-1"} 1.0' in text
        await eventually(lambda: any(b.processed == 5 for b in beats), timeout=10)
        beat = beats[-1]
        assert beat.agent_id == "counting-1"
        assert beat.agent_kind == "counting_test"
        assert beat.ready
    finally:
        host.request_stop()
        assert await asyncio.wait_for(run, timeout=30) == 0
        await observer.close()
    assert not host.is_ready()


async def _queue_counts(url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue``; raises ChannelNotFoundEntity while it does not exist."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)
    finally:
        await connection.close()


async def _queue_depth(url: str, queue: str) -> int:
    return (await _queue_counts(url, queue))[0]


async def _wait_for_consumer(url: str, queue: str, timeout: float = 30.0) -> None:
    """Wait until ``queue`` has a consumer.

    The bus declares a queue, THEN binds its patterns, THEN consumes: a queue that merely exists
    may not be bound yet, and a mandatory publish to it would come back unroutable. A consumer
    proves the bindings are in place.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if (await _queue_counts(url, queue))[1] > 0:
                return
        except aio_pika.exceptions.ChannelNotFoundEntity:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no consumer on {queue!r} after {timeout}s")
        await asyncio.sleep(0.1)


async def test_sigterm_finishes_the_message_in_hand_acks_it_and_exits(rabbit_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TRADESWARM_RABBITMQ_URL": rabbit_url,
        "TRADESWARM_HTTP_PORT": "0",
        "TRADESWARM_AGENT_ID": "slow-1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.slow_agent", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    publisher = RabbitMQBus(rabbit_url, connection_name="publisher")
    await publisher.start()
    try:
        queue = queue_name("slow_test", "candles")
        await _wait_for_consumer(rabbit_url, queue, timeout=60)  # bound and consuming, not just declared
        await publisher.publish(candle_envelope(7))
        await eventually((tmp_path / "start-7").exists, timeout=30)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert code == 0, output
        assert (tmp_path / "done-7").exists(), "the message in hand was not finished"
        assert await _queue_depth(rabbit_url, queue) == 0, "the finished message was not acked"
    finally:
        if proc.poll() is None:
            proc.kill()
        await publisher.close()
