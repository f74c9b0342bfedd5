"""Per-candle cost of the order-path agents (risk, compliance, execution with the paper venue) on the
in-memory bus, against a baseline of the same candles through the bus to one no-op subscriber.

Usage: .venv/bin/python bench/orderpath_bench.py [N_CANDLES]   (default 3000; real BTC/USDT 1h data)
No intents are sent: this is the cost every candle pays in a backtest while nothing trades.
"""

from __future__ import annotations

import asyncio
import sys
import time

import structlog

from agents.base import AgentContext
from agents.compliance.agent import ComplianceAgent
from agents.compliance.settings import ComplianceSettings
from agents.execution.agent import ExecutionAgent, paper_venue
from agents.execution.settings import ExecutionSettings
from agents.risk.agent import RiskAgent
from core.clock import SimulatedClock
from core.messages import Envelope
from core.ports import QueueSpec
from core.settings import Settings
from infrastructure.messaging.memory import InMemoryBus
from tests.orderpath.helpers import candles


def ctx(bus: InMemoryBus, clock: SimulatedClock, name: str) -> AgentContext:
    return AgentContext(
        bus=bus, clock=clock, settings=Settings(), agent_id=name, log=structlog.get_logger(), instrument=False
    )


async def run(n: int, with_agents: bool) -> float:
    data = candles(n)
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(data[0].open_time)

    async def noop(_: Envelope) -> None:
        return None

    await bus.subscribe(QueueSpec(name="baseline.sink", patterns=("#",)), noop)
    if with_agents:
        es = ExecutionSettings(store="memory", snapshot_interval_s=86_400)
        for agent in (
            RiskAgent(ctx(bus, clock, "risk-b")),
            ComplianceAgent(ctx(bus, clock, "compliance-b"), ComplianceSettings(audit=False)),
            ExecutionAgent(ctx(bus, clock, "execution-b"), paper_venue(es, clock), None, es),
        ):
            await agent.start()
    envelopes = [Envelope.wrap(c, source="bench", clock=clock, ts_event=c.close_time) for c in data]
    start = time.perf_counter()
    for c, env in zip(data, envelopes, strict=True):
        clock.advance_to(c.close_time)
        await bus.publish(env)
    elapsed = time.perf_counter() - start
    await bus.close()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    base = asyncio.run(run(n, False))
    full = asyncio.run(run(n, True))
    print(f"candles: {n}")
    print(f"baseline (bus + no-op subscriber): {base / n * 1e6:8.2f} us/candle  {n / base:10.0f} candles/s")
    print(f"risk + compliance + execution:     {full / n * 1e6:8.2f} us/candle  {n / full:10.0f} candles/s")
    print(f"order path share:                  {(full - base) / n * 1e6:8.2f} us/candle")


if __name__ == "__main__":
    main()
