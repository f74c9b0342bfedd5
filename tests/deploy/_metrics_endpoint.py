"""A stand-in agent process for the Prometheus test: the real agent HTTP endpoint, catalogue metrics.

``python -m tests.deploy._metrics_endpoint risk strategy ...`` serves ``/metrics``, ``/healthz`` and
``/readyz`` with ``agents.base.http.HealthServer`` (the endpoint every agent runs) once per given
agent kind on a free loopback port, gives every catalogue metric a sample, prints
``{"risk": port, ...}`` as one JSON line and serves until it is terminated.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from prometheus_client import Counter, Gauge, Histogram

from agents.base.http import HealthServer
from infrastructure.observability import metrics


def populate() -> None:
    """One sample for every catalogue metric (labels filled with plausible values)."""
    values = {"agent": "risk", "agent_id": "risk-1", "state": "ACTIVE", "symbol": "BTC/USDT", "venue": "binance"}
    for spec in metrics.CATALOGUE.values():
        metric = next(
            m for m in vars(metrics).values() if isinstance(m, Counter | Gauge | Histogram) and m._name == spec.name
        )
        child = metric.labels(**{label: values.get(label, "x") for label in spec.labels}) if spec.labels else metric
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        else:
            child.observe(0.001)
    # a HALTED risk agent, so the TradeswarmRiskHalted rule has something to fire on
    metrics.TRADING_STATE.labels(state="HALTED").set(1)
    metrics.TRADING_STATE.labels(state="ACTIVE").set(0)


async def serve(kinds: list[str]) -> None:
    populate()
    servers = [HealthServer("127.0.0.1", 0, ready=lambda: True, healthy=lambda: True) for _ in kinds]
    ports = {kind: await server.start() for kind, server in zip(kinds, servers, strict=True)}
    sys.stdout.write(json.dumps(ports) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for server in servers:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
