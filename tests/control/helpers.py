"""Builders for the control-plane tests: an orchestrator and obedient agents on one in-memory bus."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime

from agents.base import Agent, AgentContext
from agents.orchestrator.agent import OrchestratorAgent
from agents.orchestrator.settings import OrchestratorSettings
from core.clock import Clock, SimulatedClock
from core.domain import CommandKind
from core.logging import get_logger
from core.messages import Command, Envelope, Heartbeat
from core.ports import Bus
from core.settings import Settings
from tests.factories import free_port

SETTINGS = Settings(heartbeat_interval_s=1.0, heartbeat_timeout_s=3.0)


def context(bus: Bus, clock: Clock, agent_id: str, settings: Settings = SETTINGS) -> AgentContext:
    """An agent context on ``bus`` with ``clock``."""
    return AgentContext(bus=bus, clock=clock, settings=settings, agent_id=agent_id, log=get_logger("test"))


class Obedient(Agent):
    """An agent of any kind that obeys every command (halted/paused flags) and records them."""

    kind = "obedient"

    def __init__(self, ctx: AgentContext, kind: str) -> None:
        self.kind = kind  # type: ignore[misc]
        super().__init__(ctx)
        self.commands: list[CommandKind] = []

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        self.commands.append(command.kind)
        if command.kind is CommandKind.HALT:
            self.halted = True
        elif command.kind is CommandKind.PAUSE:
            self.paused = True
        elif command.kind is CommandKind.RESUME:
            self.halted = self.paused = False
        return f"{command.kind.value} done"

    def heartbeat(self, clock: SimulatedClock, started_at: datetime, *, ready: bool = True) -> Heartbeat:
        """The heartbeat the host would publish for this agent now."""
        return Heartbeat(
            agent_id=self.ctx.agent_id,
            agent_kind=self.kind,
            version="0.1.0",
            host="test-host",
            pid=os.getpid(),
            started_at=started_at,
            processed=self.counters.processed,
            failed=self.counters.failed,
            dead_lettered=self.counters.rejected,
            ready=ready,
            paused=self.paused,
            halted=self.halted,
        )


async def orchestrator(
    bus: Bus, clock: SimulatedClock, settings: OrchestratorSettings | None = None
) -> OrchestratorAgent:
    """A started orchestrator (no API server, no periodic task: tests call ``check()``)."""
    settings = settings or OrchestratorSettings(api_enabled=False, check_interval_s=60)
    agent = OrchestratorAgent(context(bus, clock, "orchestrator-1"), settings)
    await agent.start()  # the watchdog sleeps 60 s of real time: the tests drive check() themselves
    return agent


async def obedient_agents(
    bus: Bus, clock: SimulatedClock, kinds: Sequence[str] = ("strategy", "risk", "compliance", "execution")
) -> list[Obedient]:
    """One started obedient agent per kind."""
    agents = []
    for kind in kinds:
        agent = Obedient(context(bus, clock, f"{kind.replace('_', '-')}-1"), kind)
        await agent.start()
        agents.append(agent)
    return agents


def free_block(n: int) -> int:
    """The first of ``n`` consecutive ports free on loopback right now."""
    for _ in range(50):
        base = free_port()
        if base + n > 65000:
            continue
        try:
            for port in range(base, base + n):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports")
