"""The Agent base class: subscriptions declared in one place, typed handlers, a publish helper.

An agent gets a bus, a clock, settings and a logger injected through :class:`AgentContext`, so its
logic runs unchanged on RabbitMQ (paper, live) and on the in-memory bus (backtests).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from agents.base.partitions import PartitionConsumer, group_by_partition
from core.clock import Clock
from core.domain import CommandKind, Severity
from core.errors import MessageRejected, UnroutableMessage
from core.logging import CURRENT_MESSAGE
from core.messages import Command, CommandAck, Envelope, PartitionAssignment, Payload, RiskAlert
from core.ports import Bus, Handler, QueueSpec
from core.routing import ASSIGNMENTS, COMMANDS, queue_name, routing_key
from core.settings import Settings
from core.wake import WakePolicy
from infrastructure.messaging.sender import require_sender, trusted_control_senders
from infrastructure.observability import metrics
from tradeswarm import __version__

TypedHandler = Callable[[Any, Envelope], Awaitable[None] | None]
"""``async def on_x(self, payload: X, envelope: Envelope) -> None`` (bound); a handler that never
suspends (publishes nothing, awaits nothing) may be a plain ``def``: in-process it is then called
without any coroutine."""

COMMAND_QUEUE_EXPIRES_MS = 24 * 3600 * 1000
"""An agent instance's command queue is deleted by the broker a day after its last consumer left."""

FORGED_CONTROL_CODE = "forged_control_message"
"""Code of the critical alert an agent raises when it refuses a control message from another sender
than the orchestrator's broker user."""


class CommandFailed(Exception):
    """Raised by :meth:`Agent.on_command` when the agent cannot carry a command out: the command is
    acknowledged with ``ok=False`` and the message as detail (the orchestrator reports it failed)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One durable queue of an agent: what it binds and which handler takes each message type.

    The queue is named ``<agent kind>.<purpose>[.p<partition>]``. A message of a type with no handler
    is dead-lettered (it means a binding and the handlers disagree). With ``partition`` set (and
    ``Settings.rabbitmq_partitions`` > 1) the queue is consumed only while this replica owns the
    partition (:mod:`agents.base.partitions`); partition queues are single-active-consumer.

    ``wake`` declares which deliveries the agent really needs (:mod:`core.wake`): the in-memory bus
    of a backtest skips the others (and applies them in bulk where the declaration says so);
    RabbitMQ delivers everything. The same handlers decide either way.
    """

    purpose: str
    patterns: tuple[str, ...]
    handlers: Mapping[type[Payload], TypedHandler]
    prefetch: int | None = None
    partition: int | None = None
    single_active_consumer: bool = False
    wake: WakePolicy | None = None


@dataclass(slots=True)
class AgentContext:
    """What an agent gets injected."""

    bus: Bus
    clock: Clock
    settings: Settings
    agent_id: str
    log: Any
    instrument: bool = True
    """Export Prometheus metrics per message (the backtester may turn it off for speed)."""


@dataclass(slots=True)
class AgentCounters:
    """Plain counters reported in heartbeats."""

    processed: int = 0
    failed: int = 0
    rejected: int = 0
    published: int = 0


class Agent:
    """Base of every agent. Subclasses set :attr:`kind`, declare :meth:`subscriptions` and write
    handlers ``async def on_x(self, payload, envelope)``.

    Lifecycle: :meth:`start` runs :meth:`on_start` (warm-up, reconciliation) and only then
    subscribes, so nothing is consumed before the agent is ready; :meth:`stop` runs :meth:`on_stop`.
    """

    kind: ClassVar[str] = ""
    version: ClassVar[str] = __version__

    paused: bool = False
    """Set by agents that obey PAUSE (no new entries); reported in heartbeats."""
    halted: bool = False
    """Set by agents that obey HALT (the kill switch); reported in heartbeats."""

    def __init__(self, ctx: AgentContext) -> None:
        if not self.kind:
            raise TypeError(f"{type(self).__name__} must set the class attribute 'kind'")
        self.ctx = ctx
        self.log = ctx.log.bind(agent=self.kind, agent_id=ctx.agent_id)
        self.counters = AgentCounters()
        self.started = False
        self.partition_consumer: PartitionConsumer | None = None
        """Set when the agent consumes symbol partitions (``rabbitmq_partitions`` > 1)."""
        self._metric_cache: dict[tuple[str, str], Any] = {}
        self._control_senders: frozenset[str] | None = None
        """The broker users whose control messages this agent obeys (resolved at the first one)."""

    # -- to override ---------------------------------------------------------------------------

    def subscriptions(self) -> Sequence[Subscription]:
        """Every queue this agent consumes, with its bindings and handlers (the one place)."""
        return ()

    async def on_start(self) -> None:
        """Called before consuming starts (warm-up from history, reconciliation)."""

    async def on_stop(self) -> None:
        """Called after consuming stopped and in-flight messages were handled (close resources)."""

    async def on_partitions_changed(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        """Called when this replica gains or loses symbol partitions, before it consumes the gained
        ones (re-warm their state from history, drop the state of the lost ones)."""

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        """Obey an orchestrator command; return a detail to acknowledge it, None to ignore it (or to
        acknowledge it later with :meth:`acknowledge`); raise :class:`CommandFailed` to refuse it."""
        return None

    def gate_command(self, command: Command, prefix: str = "") -> str | None:
        """The PAUSE/HALT/RESUME gate of an agent that emits trades (strategy, desk): PAUSE sets
        :attr:`paused` (no new entries), HALT sets :attr:`halted` (nothing at all), RESUME lifts both.
        Returns the acknowledgement's detail (``prefix`` names what is gated), None for other kinds."""
        if command.kind is CommandKind.PAUSE:
            self.paused = True
            return f"{prefix}entries paused"
        if command.kind is CommandKind.HALT:
            self.halted = True
            return f"{prefix}intents halted"
        if command.kind is CommandKind.RESUME:
            self.paused = False
            self.halted = False
            return "resumed"
        return None

    # -- runtime -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Run :meth:`on_start`, then subscribe every declared queue (and the command queue).

        Partition queues are left to a :class:`PartitionConsumer`, which subscribes the ones the
        orchestrator assigns to this replica (all of them after the grace period without one).
        """
        await self.on_start()
        settings = self.ctx.settings
        partitioned: list[tuple[int, QueueSpec, Handler]] = []
        for sub in self.subscriptions():
            spec = QueueSpec(
                name=queue_name(self.kind, sub.purpose, sub.partition),
                patterns=sub.patterns,
                prefetch=sub.prefetch or settings.rabbitmq_prefetch,
                delivery_limit=settings.rabbitmq_delivery_limit,
                single_active_consumer=sub.single_active_consumer,
                wake=sub.wake,
                group=self.ctx.agent_id,
            )
            if sub.partition is not None and settings.rabbitmq_partitions > 1:
                partitioned.append((sub.partition, spec, self._dispatcher(sub)))
                continue
            await self.ctx.bus.subscribe(spec, self._dispatcher(sub))
        if partitioned:
            await self._start_partitions(partitioned)
        if type(self).on_command is not Agent.on_command:
            spec = QueueSpec(
                name=queue_name(self.kind, f"commands.{self.ctx.agent_id}"),
                patterns=(COMMANDS.key(target="all"), COMMANDS.key(target=self.kind)),
                prefetch=1,
                delivery_limit=settings.rabbitmq_delivery_limit,
                arguments={"x-expires": COMMAND_QUEUE_EXPIRES_MS},
            )
            await self.ctx.bus.subscribe(
                spec, self._dispatcher(Subscription("commands", spec.patterns, {Command: self._handle_command}))
            )
        self.started = True
        self.log.info("agent started", subscriptions=[s.purpose for s in self.subscriptions()])

    async def stop(self) -> None:
        """Run :meth:`on_stop` (the host closes the bus first, so no message is in hand)."""
        self.started = False
        if self.partition_consumer is not None:
            await self.partition_consumer.stop()
        await self.on_stop()

    async def _start_partitions(self, partitioned: list[tuple[int, QueueSpec, Handler]]) -> None:
        """Subscribe this replica's assignment queue and start consuming its partitions."""
        settings = self.ctx.settings
        consumer = PartitionConsumer(
            bus=self.ctx.bus,
            kind=self.kind,
            agent_id=self.ctx.agent_id,
            partitions=settings.rabbitmq_partitions,
            queues=group_by_partition(partitioned),
            grace_s=settings.partition_grace_s,
            log=self.log,
            on_change=self.on_partitions_changed,
        )
        self.partition_consumer = consumer
        await consumer.start()
        spec = QueueSpec(
            name=queue_name(self.kind, f"assignments.{self.ctx.agent_id}"),
            patterns=(ASSIGNMENTS.key(agent_kind=self.kind),),
            prefetch=1,
            delivery_limit=settings.rabbitmq_delivery_limit,
            arguments={"x-expires": COMMAND_QUEUE_EXPIRES_MS},
        )

        async def on_assignment(assignment: PartitionAssignment, envelope: Envelope) -> None:
            await self.require_control_sender(envelope)
            await consumer.on_assignment(assignment, envelope)

        handlers: dict[type[Payload], TypedHandler] = {PartitionAssignment: on_assignment}
        await self.ctx.bus.subscribe(spec, self._dispatcher(Subscription("assignments", spec.patterns, handlers)))

    async def publish(
        self,
        payload: Payload,
        *,
        cause: Envelope | None = None,
        ts_event: datetime | None = None,
    ) -> Envelope:
        """Wrap ``payload`` (linked to ``cause``), publish it with its routing key, count it.

        ``ts_event`` defaults to the cause's market time, so market time flows down the pipeline.
        """
        if ts_event is None and cause is not None:
            ts_event = cause.ts_event
        envelope = Envelope.wrap(
            payload, source=self.ctx.agent_id, clock=self.ctx.clock, ts_event=ts_event, cause=cause
        )
        key = routing_key(payload)
        await self.ctx.bus.publish(envelope, key)
        self.counters.published += 1
        if self.ctx.instrument:
            metrics.MESSAGES_PUBLISHED.labels(self.kind, envelope.type, key.split(".", 1)[0]).inc()
        return envelope

    async def require_control_sender(self, envelope: Envelope) -> None:
        """Refuse a control message the broker did not see come from the orchestrator's user.

        The refusal dead-letters the message with the reason (:class:`MessageRejected`) and raises a
        critical alert: whoever could publish it (an administrator's credentials, a development
        broker's shared ``guest``) is not the orchestrator, and a forged RESUME must never lift a HALT.
        On a bus without sender verification (in-memory: one process) every message passes.
        """
        senders = self._control_senders
        if senders is None:
            senders = self._control_senders = trusted_control_senders(self.ctx.settings.rabbitmq_url.get_secret_value())
        try:
            require_sender(senders, f"{envelope.type} to {self.kind}")
        except MessageRejected as exc:
            metrics.CONTROL_REFUSED.labels(self.kind, envelope.type).inc()
            self.log.error("control message refused", reason=exc.reason, claimed_source=envelope.source)
            alert = RiskAlert(severity=Severity.CRITICAL, code=FORGED_CONTROL_CODE, message=exc.reason[:2000])
            try:  # no cause: the forged message's market time must not stamp the alert
                await self.publish(alert)
            except UnroutableMessage:
                self.log.warning("no queue bound for alerts: the refusal is only logged and dead-lettered")
            raise

    async def _handle_command(self, command: Command, envelope: Envelope) -> None:
        await self.require_control_sender(envelope)
        try:
            detail = await self.on_command(command, envelope)
        except CommandFailed as exc:
            await self.acknowledge(command, str(exc), ok=False, cause=envelope)
            return
        if detail is None:
            return
        await self.acknowledge(command, detail, cause=envelope)

    async def acknowledge(
        self, command: Command, detail: str, *, ok: bool = True, cause: Envelope | None = None
    ) -> None:
        """Publish this agent's :class:`CommandAck` of ``command`` (``ok=False``: it failed)."""
        ack = CommandAck(
            command_id=command.command_id,
            kind=command.kind,
            agent_id=self.ctx.agent_id,
            agent_kind=self.kind,
            ok=ok,
            detail=detail[:2000],
        )
        await self.publish(ack, cause=cause)
        log = self.log.info if ok else self.log.warning
        log("command acknowledged", command=command.kind.value, ok=ok, detail=detail)

    def _dispatcher(self, sub: Subscription) -> Callable[[Envelope], Awaitable[None]]:
        """The queue's handler: picks the typed handler by payload type, keeps the counters and the
        current message (for log lines), exports the per-message metrics when instrumented.

        When every typed handler of the subscription is a plain function, the returned coroutine
        function carries a plain-function twin (``.sync``) that the in-memory bus calls instead: no
        coroutine per delivery."""
        handlers = dict(sub.handlers)
        counters = self.counters
        kind = self.kind
        instrument = self.ctx.instrument
        # bound once: this closure runs for every delivery
        handler_for = handlers.get
        set_current: Callable[[Any], Any] = CURRENT_MESSAGE.set  # holds the envelope (typing.cast is a call)
        reset_current = CURRENT_MESSAGE.reset
        perf_counter = time.perf_counter

        def unknown(envelope: Envelope) -> MessageRejected:
            counters.rejected += 1
            return MessageRejected(f"{kind} has no handler for {envelope.type} on queue purpose {sub.purpose!r}")

        async def dispatch(envelope: Envelope) -> None:
            handler = handler_for(type(envelope.payload))
            if handler is None:
                raise unknown(envelope)
            token = set_current(envelope)
            started = perf_counter() if instrument else 0.0
            try:
                result = handler(envelope.payload, envelope)
                if result is not None:
                    await result
            except MessageRejected:
                counters.rejected += 1
                raise
            except Exception:
                counters.failed += 1
                if instrument:
                    metrics.MESSAGES_FAILED.labels(kind, envelope.type).inc()
                self.log.exception("handler failed", message_type=envelope.type)
                raise
            finally:
                reset_current(token)
            counters.processed += 1
            if instrument:
                self._observe(envelope.type, perf_counter() - started)

        if not instrument and not any(inspect.iscoroutinefunction(h) for h in handlers.values()):

            def dispatch_sync(envelope: Envelope) -> None:
                handler = handler_for(type(envelope.payload))
                if handler is None:
                    raise unknown(envelope)
                token = set_current(envelope)
                try:
                    handler(envelope.payload, envelope)
                except MessageRejected:
                    counters.rejected += 1
                    raise
                except Exception:
                    counters.failed += 1
                    self.log.exception("handler failed", message_type=envelope.type)
                    raise
                finally:
                    reset_current(token)
                counters.processed += 1

            dispatch.sync = dispatch_sync  # type: ignore[attr-defined]
        return dispatch

    def _observe(self, message_type: str, seconds: float) -> None:
        cached = self._metric_cache.get((message_type, "h"))
        if cached is None:
            cached = (
                metrics.MESSAGES_CONSUMED.labels(self.kind, message_type),
                metrics.HANDLER_SECONDS.labels(self.kind, message_type),
            )
            self._metric_cache[(message_type, "h")] = cached
        consumed, latency = cached
        consumed.inc()
        latency.observe(seconds)
