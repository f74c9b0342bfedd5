"""Run one agent as its own process on RabbitMQ under MARKET time (historical replays, parity tests).

    python -m backtesting.replay_host risk

It is the production host (:class:`agents.base.host.AgentHost`: the agent's own ``build``, the
RabbitMQ bus, HTTP probes, heartbeats, graceful SIGTERM) with one difference: the clock. A replay
of history through separate processes cannot use the wall clock (the paper venue would never fill
an order on a candle from the past, intents would look years old), so the clock is a
:class:`~core.clock.SimulatedClock` that moves forward to the ``ts_event`` (market time) of each
message before its handler runs — the same time a backtest's clock shows while that message's
consequences are handled. Agents are unchanged: no ``if backtest:`` anywhere.

Only an accepted message moves the clock: when the handler refuses the message (a forged sender, an
invalid order) or fails, the move is taken back, so a message stamped years ahead that execution
refuses cannot drag every later order into a future no candle of the replay reaches. A message whose
market time lies more than ``max_jump`` ahead of the clock (once an accepted message set it) is
refused as implausible and dead-lettered with the reason, before anything sees it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from agents.base.host import AgentHost, rabbitmq_bus
from agents.base.registry import load_builder
from core.clock import SimulatedClock
from core.errors import MessageRejected
from core.logging import configure_logging
from core.messages.base import Envelope
from core.messages.control import AgentStatus, Command, CommandAck, Heartbeat, PartitionAssignment, RiskAlert
from core.ports import Bus, DeadLetter, Handler, QueueSpec
from core.settings import Settings, load_settings

CONTROL_PLANE = (Heartbeat, Command, CommandAck, AgentStatus, PartitionAssignment, RiskAlert)
"""Messages stamped with the wall clock of whoever sent them (the orchestrator, the API, heartbeats):
they do not move market time. A HALT issued now must not carry a replay's clock years ahead, where
no candle of the replay would ever fill an order again."""


DEFAULT_MAX_JUMP = timedelta(days=7)
"""How far ahead of the market clock a message may be: more than any gap in an exchange's history."""


class MarketTimeBus:
    """A :class:`~core.ports.Bus` that advances ``clock`` to each delivered message's market time,
    for good only when the message was accepted (see the module docstring)."""

    def __init__(self, inner: Bus, clock: SimulatedClock, *, max_jump: timedelta | None = DEFAULT_MAX_JUMP) -> None:
        self.inner = inner
        self.clock = clock
        self.max_jump = max_jump
        self._wrapped: dict[Handler, Handler] = {}
        self._accepted: datetime | None = None
        """The latest market time an accepted message moved the clock to (None: none yet, the jump
        check waits for it: a replay's first message moves the clock from the epoch)."""

    @property
    def connected(self) -> bool:
        """The inner bus's connection state (for readiness)."""
        return bool(getattr(self.inner, "connected", True))

    @property
    def blocked(self) -> bool:
        """Whether the broker blocks publishing (for readiness)."""
        return bool(getattr(self.inner, "blocked", False))

    async def start(self) -> None:
        """Start the inner bus."""
        await self.inner.start()

    async def publish(self, envelope: Envelope, routing_key: str | None = None) -> None:
        """Publish through the inner bus."""
        await self.inner.publish(envelope, routing_key)

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish bytes through the inner bus."""
        await self.inner.publish_raw(routing_key, body)

    async def subscribe(self, spec: QueueSpec, handler: Handler) -> None:
        """Subscribe ``handler`` behind the clock advance."""
        clock = self.clock

        async def at_market_time(envelope: Envelope) -> None:
            ts = envelope.ts_event
            before = clock.now()
            if ts <= before or isinstance(envelope.payload, CONTROL_PLANE):
                await handler(envelope)
                return
            max_jump = self.max_jump
            if max_jump is not None and self._accepted is not None and ts - before > max_jump:
                raise MessageRejected(
                    f"{envelope.type} stamped {ts.isoformat()} lies {ts - before} ahead of this agent's market "
                    f"clock ({before.isoformat()}, limit {max_jump}): refused as implausible"
                )
            clock.advance_to(ts)
            try:
                await handler(envelope)
            except BaseException:
                self._take_back(ts, before)
                raise
            if self._accepted is None or ts > self._accepted:
                self._accepted = ts

        self._wrapped[handler] = at_market_time
        await self.inner.subscribe(spec, at_market_time)

    def _take_back(self, moved_to: datetime, before: datetime) -> None:
        """Undo the move to ``moved_to`` of a refused message, unless another message (handled
        concurrently from another queue) moved the clock further meanwhile."""
        if self.clock.now() == moved_to:
            self.clock.rewind_to(before)

    async def declare(self, spec: QueueSpec) -> None:
        """Declare through the inner bus."""
        await self.inner.declare(spec)

    async def unsubscribe(self, queue: str, handler: Handler | None = None) -> None:
        """Unsubscribe through the inner bus (``handler`` is the one given to :meth:`subscribe`)."""
        wrapped = self._wrapped.pop(handler, None) if handler is not None else None
        if handler is not None and wrapped is None:
            return
        await self.inner.unsubscribe(queue, wrapped)

    async def dead_letters(self, queue: str) -> Sequence[DeadLetter]:
        """The inner bus's dead letters."""
        return await self.inner.dead_letters(queue)

    async def close(self) -> None:
        """Close the inner bus."""
        await self.inner.close()


def run(name: str) -> int:
    """Host agent ``name`` on RabbitMQ under market time; returns the exit code."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, agent=name)
    clock = SimulatedClock()

    def factory(s: Settings, agent_id: str, kind: str) -> Any:
        jump = timedelta(seconds=s.max_clock_jump_s) if s.max_clock_jump_s else None
        return MarketTimeBus(rabbitmq_bus(s, agent_id, kind), clock, max_jump=jump)

    host = AgentHost(name, load_builder(name), settings, bus_factory=factory, clock=clock)
    return asyncio.run(host.run())


if __name__ == "__main__":  # pragma: no cover - process entry point
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m backtesting.replay_host AGENT\n")
        sys.exit(2)
    sys.exit(run(sys.argv[1]))
