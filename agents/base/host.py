"""The process host of one agent: bus, clock, HTTP probes, heartbeats, graceful SIGTERM.

``run_agent("risk")`` is what ``tradeswarm agent risk`` and ``python -m agents.risk`` call.
Shutdown order on SIGTERM/SIGINT: not ready -> stop heartbeats -> close the bus (stop consuming,
finish the message in hand, ack it) -> the agent's ``on_stop`` -> stop the HTTP server -> exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable
from datetime import datetime

from agents.base.agent import Agent, AgentContext
from agents.base.http import HealthServer
from agents.base.registry import AgentBuilder, load_builder
from core.clock import Clock, WallClock
from core.errors import UnroutableMessage
from core.logging import configure_logging, get_logger
from core.messages import Heartbeat
from core.ports import Bus
from core.settings import Settings, load_settings
from infrastructure.observability import metrics

BusFactory = Callable[[Settings, str, str], Bus]
"""Makes the bus of one agent process from (settings, agent id, agent kind)."""


def rabbitmq_bus(settings: Settings, agent_id: str, agent_kind: str) -> Bus:
    """The production bus: RabbitMQ at ``settings.rabbitmq_url``."""
    from infrastructure.messaging.rabbitmq import RabbitMQBus

    return RabbitMQBus.from_settings(settings, agent_id=agent_id, agent_kind=agent_kind)


class AgentHost:
    """Runs one agent in this process until a stop signal, then shuts it down gracefully."""

    def __init__(
        self,
        kind: str,
        builder: AgentBuilder,
        settings: Settings,
        *,
        bus_factory: BusFactory = rabbitmq_bus,
        clock: Clock | None = None,
    ) -> None:
        self.kind = kind
        self.builder = builder
        self.settings = settings
        self.clock = clock or WallClock()
        self.host = socket.gethostname()
        self.agent_id = settings.resolved_agent_id(kind, self.host)
        self.bus = bus_factory(settings, self.agent_id, kind)
        self.log = get_logger("tradeswarm.host", agent=kind, agent_id=self.agent_id)
        self.agent: Agent | None = None
        self.http = HealthServer(settings.http_host, settings.http_port, ready=self.is_ready, healthy=self.is_healthy)
        self.started_at: datetime = self.clock.now()
        self._ready = False
        self._failed = False
        self._stop = asyncio.Event()

    def is_ready(self) -> bool:
        """Consuming, heartbeating, connected to the broker, and allowed to publish: while the broker
        blocks publishers (a memory or disk alarm, ``connection.blocked``) nothing the agent decides
        can leave it, so it is not ready."""
        bus = self.bus
        return self._ready and bool(getattr(bus, "connected", True)) and not getattr(bus, "blocked", False)

    def is_healthy(self) -> bool:
        """The process works (the event loop answers and nothing fatal happened)."""
        return not self._failed

    def request_stop(self) -> None:
        """Ask the host to shut down gracefully (what SIGTERM does)."""
        self._stop.set()

    async def run(self) -> int:
        """Start everything, wait for a stop request, shut down; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        port = await self.http.start()
        metrics.AGENT_UP.labels(self.kind, self.agent_id).set(1)
        metrics.AGENT_INFO.labels(self.kind, self.agent_id, Agent.version).set(1)
        self.log.info("agent process starting", http_port=port, mode=self.settings.mode.value)
        heartbeat: asyncio.Task[None] | None = None
        try:
            await self.bus.start()
            ctx = AgentContext(
                bus=self.bus,
                clock=self.clock,
                settings=self.settings,
                agent_id=self.agent_id,
                log=get_logger(f"tradeswarm.{self.kind}"),
            )
            self.agent = await self.builder(ctx)
            await self.agent.start()
            self._ready = True
            metrics.AGENT_READY.labels(self.kind, self.agent_id).set(1)
            heartbeat = asyncio.create_task(self._heartbeats(), name="heartbeat")
            self.log.info("agent ready")
            await self._stop.wait()
            self.log.info("stop requested: draining")
            return 0
        except Exception:
            self._failed = True
            self.log.exception("agent failed")
            return 1
        finally:
            self._ready = False
            metrics.AGENT_READY.labels(self.kind, self.agent_id).set(0)
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            await self._shutdown()

    async def _shutdown(self) -> None:
        grace = self.settings.shutdown_grace_s
        try:
            await asyncio.wait_for(self.bus.close(), timeout=grace)
        except TimeoutError:
            self.log.error("bus did not close within the grace period", grace_s=grace)
        if self.agent is not None:
            try:
                await asyncio.wait_for(self.agent.stop(), timeout=grace)
            except Exception:
                self.log.exception("agent stop failed")
        await self.http.stop()
        metrics.AGENT_UP.labels(self.kind, self.agent_id).set(0)
        self.log.info("agent stopped")

    def heartbeat(self) -> Heartbeat:
        """The heartbeat this agent would send now."""
        agent = self.agent
        counters = agent.counters if agent is not None else None
        return Heartbeat(
            agent_id=self.agent_id,
            agent_kind=self.kind,
            version=Agent.version,
            host=self.host[:255],
            pid=os.getpid(),
            started_at=self.started_at,
            processed=counters.processed if counters else 0,
            failed=counters.failed if counters else 0,
            dead_lettered=counters.rejected if counters else 0,
            ready=self.is_ready(),
            paused=agent.paused if agent is not None else False,
            halted=agent.halted if agent is not None else False,
        )

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_interval_s
        ready_gauge = metrics.AGENT_READY.labels(self.kind, self.agent_id)
        while True:
            ready_gauge.set(1 if self.is_ready() else 0)  # broker alarms and reconnects show on the gauge too
            try:
                assert self.agent is not None
                await self.agent.publish(self.heartbeat())
                metrics.HEARTBEATS_SENT.labels(self.kind).inc()
            except asyncio.CancelledError:
                raise
            except UnroutableMessage:
                self.log.debug("heartbeat unroutable: no orchestrator queue is bound yet")
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat must not kill the agent
                self.log.warning("heartbeat not sent", error=str(exc))
            await asyncio.sleep(interval)


def run_agent(name: str) -> int:
    """Entry point of one agent process: read settings, run the host on uvloop when available."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, agent=name)
    builder = load_builder(name)
    host = AgentHost(name, builder, settings)
    try:
        import uvloop

        return uvloop.run(host.run())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(host.run())
