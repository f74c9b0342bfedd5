"""Parity: the same candles through the agents as SEPARATE PROCESSES on the real RabbitMQ broker
(fresh vhost, fresh PostgreSQL database) give the same orders as the in-memory backtest.

Each agent runs its own ``build`` in its own process via ``python -m backtesting.replay_host``
(the production host with a market-time clock). The feed publishes one candle, then waits until
the broker has carried everything the backtest saw for that candle's market time (the messages
are counted by type on a tap queue bound to ``#``) before it publishes the next one: the pace of
the replay, not the content, comes from the backtest.

The slice contains the race of the multi-process swarm (docs/backtesting.md, Parity): candles on
which a fill happened (an entry at the open, or a protective stop the venue fired) and at whose close
the strategy decided an order. The strategy's settlement barrier (execution's ``PositionsSettled``
marks) makes it decide on the same position as the backtest.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agents.compliance.settings import ComplianceSettings
from agents.execution.settings import ExecutionSettings
from agents.risk.settings import RiskSettings
from agents.strategy.settings import StrategySettings
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from backtesting.config import BacktestConfig, settings_defaults
from backtesting.data import file_source, merge
from backtesting.engine import FEED_ID, BacktestEngine, Replay
from core.clock import SimulatedClock
from core.messages import Envelope, Fill, OrderRequest
from core.ports import QueueSpec
from core.routing import routing_key
from tests.factories import free_port

ROOT = Path(__file__).resolve().parents[2]
BTC_1H = ROOT / "data" / "samples" / "binance_BTC-USDT_1h.csv"
AGENTS = ("execution", "compliance", "risk", "strategy", "technical_analysis")
IGNORED_TYPES = {"candle", "heartbeat", "command_ack", "agent_status", "positions_settled"}
"""Not compared: the feed's own candles, the control plane, and the settlement marks (the barrier of
the multi-process swarm; the in-memory backtest needs none)."""


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    if value is None:
        raise AssertionError("a None override cannot be passed through the environment")
    return str(value)


def _env_for(prefix: str, settings: Any, cls: type[Any]) -> dict[str, str]:
    defaults = settings_defaults(cls)
    out: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value != defaults[name]:
            out[f"{prefix}{name.upper()}"] = _encode(value)
    return out


def _order_key(order: OrderRequest, env: Envelope) -> tuple[Any, ...]:
    return (order.client_order_id, order.symbol, order.side.value, order.order_type.value, order.quantity,
            order.reference_price, env.ts_event)  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
async def test_rabbitmq_processes_place_the_same_orders_as_the_backtest(
    rabbit_url: str, postgres_dsn: str, tmp_path: Path
) -> None:
    config = BacktestConfig(
        params={"sma_cross": {"fast": 3, "slow": 8}},
        fraction=Decimal("0.5"),
        # tight protective exits: the venue fires them on its own, and fast crossings make the strategy
        # decide on candles whose open filled an order (the race the settlement barrier closes)
        risk={"max_position_pct": Decimal("0.6"), "stop_loss_pct": Decimal("0.01"), "take_profit_pct": Decimal("0.02")},
        strategy={"stop_atr_multiple": 0.0, "take_profit_atr_multiple": 0.0},
    )
    sources = [file_source(BTC_1H, end=datetime(2025, 1, 25, tzinfo=UTC))]
    candles = list(merge(sources))

    # 1. the in-memory backtest, with a tap on everything
    engine = BacktestEngine(config, sources)
    swarm = engine.swarm()
    await swarm.start()
    tapped: list[Envelope] = []

    async def tap(envelope: Envelope) -> None:
        tapped.append(envelope)

    await swarm.bus.subscribe(QueueSpec("parity.tap", ("#",)), tap)
    replay = Replay(swarm, engine.symbols)
    for candle in candles:
        await replay.feed(candle)
    await swarm.stop()
    expected = Counter((e.ts_event, e.type) for e in tapped if e.type not in IGNORED_TYPES)
    expected_orders = [_order_key(e.payload, e) for e in tapped if isinstance(e.payload, OrderRequest)]
    expected_fills = [(e.payload.client_order_id, e.payload.price, e.payload.quantity) for e in tapped
                      if isinstance(e.payload, Fill)]  # fmt: skip
    assert len(expected_orders) >= 10, "the slice must trade for the comparison to mean something"
    # The race of the multi-process swarm (see docs/backtesting.md, "Parity"): the strategy learns its
    # position from fills on one queue and reads snapshots from another; when it decides on the very
    # candle whose open filled an order (or on which the venue fired a protective stop), the strategy
    # process could see the snapshot first. The slice must contain such candles: the settlement
    # barrier is what makes them match.
    fill_candle_closes = {e.payload.ts + timedelta(hours=1) for e in tapped if isinstance(e.payload, Fill)}
    raced = [e for e in tapped if isinstance(e.payload, OrderRequest) and e.ts_event in fill_candle_closes]
    assert len(raced) >= 3, "the slice must contain orders decided on candles that filled an order"
    protective = {e.payload.client_order_id for e in tapped if isinstance(e.payload, Fill)} - {
        e.payload.client_order_id for e in tapped if isinstance(e.payload, OrderRequest)
    }
    assert protective, "the slice must contain protective exits the venue fired itself"

    # 2. the same agents as separate processes on RabbitMQ
    from infrastructure.messaging.rabbitmq import RabbitMQBus

    s = engine.settings
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")}
    base_env.update({
        "TRADESWARM_MODE": "paper", "TRADESWARM_EXCHANGE": "binance", "TRADESWARM_SYMBOLS": "BTC/USDT",
        "TRADESWARM_TIMEFRAMES": "1h", "TRADESWARM_RABBITMQ_URL": rabbit_url, "TRADESWARM_POSTGRES_DSN": postgres_dsn,
        "TRADESWARM_LOG_LEVEL": "warning", "TRADESWARM_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT),
    })  # fmt: skip
    base_env.update(_env_for("TRADESWARM_TA_", s.ta, TechnicalAnalysisSettings))
    base_env.update(_env_for("TRADESWARM_STRATEGY_", s.strategy, StrategySettings))
    base_env.update(_env_for("TRADESWARM_RISK_", s.risk, RiskSettings))
    base_env.update(_env_for("TRADESWARM_COMPLIANCE_", s.compliance, ComplianceSettings))
    base_env.update(_env_for("TRADESWARM_EXECUTION_", s.execution, ExecutionSettings))
    base_env["TRADESWARM_EXECUTION_STORE"] = "postgres"  # the real outbox and fill store
    # the stack's defaults (a backtest turns them off): execution marks each candle settled, the
    # strategy decides on a snapshot only once its candle is settled
    base_env["TRADESWARM_EXECUTION_SETTLE_MARKS"] = "true"
    base_env["TRADESWARM_STRATEGY_AWAIT_SETTLEMENT"] = "true"

    bus = RabbitMQBus(rabbit_url, connection_name="parity-feed")
    await bus.start()
    seen: Counter[tuple[datetime, str]] = Counter()
    live: list[Envelope] = []

    async def live_tap(envelope: Envelope) -> None:
        live.append(envelope)
        if envelope.type not in IGNORED_TYPES:
            seen[(envelope.ts_event, envelope.type)] += 1

    await bus.subscribe(QueueSpec("parity.tap", ("#",), prefetch=1000), live_tap)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 180
        async with aiohttp.ClientSession() as http:
            # one at a time: concurrent schema migrations of several processes race in PostgreSQL
            for kind in AGENTS:
                ports[kind] = free_port()
                env = {**base_env, "TRADESWARM_AGENT_ID": f"parity-{kind.replace('_', '-')}",
                       "TRADESWARM_HTTP_PORT": str(ports[kind])}  # fmt: skip
                procs[kind] = subprocess.Popen(
                    [sys.executable, "-m", "backtesting.replay_host", kind], env=env, cwd=ROOT,
                    stdout=subprocess.DEVNULL, stderr=(tmp_path / f"{kind}.log").open("wb"),
                )  # fmt: skip
                while True:
                    if procs[kind].poll() is not None:
                        pytest.fail(f"{kind} exited: {(tmp_path / f'{kind}.log').read_text()[-3000:]}")
                    try:
                        async with http.get(f"http://127.0.0.1:{ports[kind]}/readyz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    assert time.monotonic() < deadline, f"{kind} did not become ready"
                    await asyncio.sleep(0.2)

        clock = SimulatedClock()
        for candle in candles:
            clock.advance_to(candle.close_time)
            await bus.publish(Envelope.wrap(candle, source=FEED_ID, clock=clock, ts_event=candle.close_time),
                              routing_key(candle))  # fmt: skip
            wanted = {k: n for k, n in expected.items() if k[0] == candle.close_time}
            limit = time.monotonic() + 20
            while any(seen[k] < n for k, n in wanted.items()):
                if time.monotonic() > limit:
                    missing = {k[1]: n - seen[k] for k, n in wanted.items() if seen[k] < n}
                    recent = [(e.ts_event.isoformat(), e.type) for e in live if e.type not in IGNORED_TYPES][-8:]
                    logs = {k: (tmp_path / f"{k}.log").read_text()[-1500:] for k in procs}
                    pytest.fail(
                        f"candle {candle.close_time}: the processes never produced {missing}; "
                        f"last messages {recent}; agent logs {logs}"
                    )
                await asyncio.sleep(0.002)
        await asyncio.sleep(0.5)  # anything unexpected still in flight shows up in the comparison
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await bus.close()

    orders = [_order_key(e.payload, e) for e in live if isinstance(e.payload, OrderRequest)]
    fills = [
        (e.payload.client_order_id, e.payload.price, e.payload.quantity) for e in live if isinstance(e.payload, Fill)
    ]
    assert orders == expected_orders
    assert fills == expected_fills
    produced = Counter((e.ts_event, e.type) for e in live if e.type not in IGNORED_TYPES)
    assert produced == expected
