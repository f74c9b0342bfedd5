"""The orchestrator agent: agent registry from heartbeats, DOWN detection, commands and their
acknowledgements, the review queue of MANUAL_REVIEW decisions, and the live state behind the REST
API (it implements the API's ControlPlane).

Review queue: every :class:`ReviewRequest` the strategy agent publishes is stored
(:class:`core.trading.reviews.ReviewStore`: PostgreSQL in the stack, memory otherwise). A person with
the API token approves or rejects a pending review before it expires; the verdict is recorded
atomically, then published as a :class:`ReviewDecision` (only the orchestrator may publish
``review.decision.*``) for the strategy agent, which turns an approval into the trade intent.

It holds the intended trading state (ACTIVE / PAUSED / HALTED) durably (:mod:`agents.orchestrator.intent`:
saved before the command is published, restored at start) and reconciles the agents with it. What
an agent does is what it last reported: its acknowledgements (a HALT acknowledged means halted) and,
once they are older than the settle time, its heartbeats. An agent of a kind the intent concerns
that disagrees (un-halted while the swarm is halted, un-paused while it is paused) is commanded
again, at most once per heartbeat interval, and alerted on: a critical ``trading_state_mismatch`` for
a running agent that changed (confirmed by two heartbeats in a row, or at once when it acknowledged
a command this orchestrator did not issue), a warning for a process that (re)started. The reverse
(an agent halted while trading is active) is reported, never resumed automatically. ``/health``
shows what the agents do (``trading``: active, paused, halted or mixed), the intent
(``trading_intended``) and who disagrees.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from uuid import UUID

from agents.base import Agent, AgentContext, Subscription
from agents.orchestrator.commands import CommandBook, CommandState, TradingMode, progress
from agents.orchestrator.intent import InMemoryIntentStore, IntentStore, TradingIntent
from agents.orchestrator.market import LatestSnapshots
from agents.orchestrator.partitions import PartitionPlanner
from agents.orchestrator.registry import AgentRecord, AgentRegistry, AgentState, Transition, system_status
from agents.orchestrator.settings import OrchestratorSettings
from agents.orchestrator.views import agent_view, command_view, review_view, snapshot_view
from core import routing
from core.domain import CommandKind, Severity
from core.errors import MessageRejected, UnroutableMessage
from core.messages import (
    AgentStatus,
    Candle,
    Command,
    CommandAck,
    ComplianceDecision,
    ConsensusDecision,
    DeskDecision,
    Envelope,
    Fill,
    Heartbeat,
    IndicatorSnapshot,
    OrderUpdate,
    PartitionAssignment,
    Payload,
    PortfolioSnapshot,
    ReviewDecision,
    ReviewRequest,
    RiskAlert,
    RiskDecision,
)
from core.trading import reviews as queue
from infrastructure.api.events import EventHub
from infrastructure.api.ports import CommandRefused, ReviewConflict, ReviewNotFound, UnknownTarget
from infrastructure.api.schemas import AgentView, CommandView, HealthView, Page, ReviewView, SeriesView, SnapshotView
from infrastructure.messaging.sender import AgentSenders, require_agent_sender
from infrastructure.observability import metrics

AGENT_DOWN_CODE = "agent_down"
AGENT_RECOVERED_CODE = "agent_recovered"
AGENT_RESTARTED_CODE = "agent_restarted"
DUPLICATE_AGENT_CODE = "duplicate_agent_id"
FORGED_HEARTBEAT_CODE = "forged_heartbeat"
FORGED_ACK_CODE = "forged_ack"
"""Code of the critical alert raised for a heartbeat whose broker-verified sender is not the user of
the agent it claims to come from (the heartbeat is dead-lettered, the registry untouched)."""
STATE_MISMATCH_CODE = "trading_state_mismatch"
_MODE_COMMANDS = (CommandKind.HALT, CommandKind.PAUSE, CommandKind.RESUME)
_MODE_NAMES: dict[TradingMode, Literal["active", "paused", "halted"]] = {
    TradingMode.ACTIVE: "active",
    TradingMode.PAUSED: "paused",
    TradingMode.HALTED: "halted",
}

_FEED_TYPES: tuple[type[Payload], ...] = (
    Candle, ConsensusDecision, OrderUpdate, Fill, PortfolioSnapshot, RiskAlert, RiskDecision, ComplianceDecision,
    DeskDecision,
)  # fmt: skip
"""What the dashboard's live stream forwards (with the command acknowledgements)."""
_FEED_PATTERNS = (
    routing.CANDLES.all(), routing.CONSENSUS.all(), routing.ORDER_UPDATES.all(), routing.FILLS.all(),
    routing.PORTFOLIO.all(), routing.ALERTS.all(), routing.RISK_APPROVED.all(), routing.RISK_REJECTED.all(),
    routing.COMPLIANCE_DECISIONS.all(), routing.DESK_DECISIONS.all(),
)  # fmt: skip

_REQUIRED_STATE = {TradingMode.HALTED: CommandKind.HALT, TradingMode.PAUSED: CommandKind.PAUSE}
"""The command that brings an agent into each non-active intended mode."""


@dataclass(frozen=True, slots=True)
class _Reported:
    """What an agent's latest acknowledgement says it does, and when it arrived."""

    halted: bool
    paused: bool
    at: datetime


class Service(Protocol):
    """Something started with the agent and stopped with it (the API server, a DB pool)."""

    async def start(self) -> object:
        """Start."""
        ...

    async def stop(self) -> None:
        """Stop."""
        ...


class OrchestratorAgent(Agent):
    """Watches heartbeats, marks silent agents DOWN, issues commands and tracks their acks."""

    kind = "orchestrator"

    def __init__(
        self,
        ctx: AgentContext,
        settings: OrchestratorSettings | None = None,
        services: Sequence[Service] = (),
        reviews: queue.ReviewStore | None = None,
        intent_store: IntentStore | None = None,
    ) -> None:
        super().__init__(ctx)
        self.reviews_store: queue.ReviewStore = reviews or queue.InMemoryReviewStore()
        """The review queue (PostgreSQL when the API runs with a database)."""
        self.settings = settings or OrchestratorSettings()
        self.registry = AgentRegistry()
        self.book = CommandBook(
            {
                CommandKind.HALT: self.settings.halt_ack_kinds,
                CommandKind.RESUME: self.settings.halt_ack_kinds,
                CommandKind.PAUSE: self.settings.pause_ack_kinds,
                CommandKind.FLATTEN: self.settings.flatten_ack_kinds,
            },
            keep=self.settings.commands_kept,
        )
        self.snapshots = LatestSnapshots(self.settings.latest_snapshots)
        self.services = list(services)
        partitions = ctx.settings.rabbitmq_partitions
        self.planner: PartitionPlanner | None = None
        """Assigns symbol partitions to the live replicas of partitioned kinds (partitions > 1)."""
        if partitions > 1:
            self.planner = PartitionPlanner(partitions, valid_for_s=3 * self.settings.assignment_interval_s)
        self._assigned_at: dict[str, datetime] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._started_services: list[Service] = []
        self.intent_store: IntentStore = intent_store if intent_store is not None else InMemoryIntentStore()
        self.intent: TradingIntent | None = None
        """The intended trading state as last saved (None: never set; then adopted from heartbeats)."""
        self._reported: dict[str, _Reported] = {}
        self._mismatch: dict[str, int] = {}
        """Agents disagreeing with the intent: consecutive heartbeats that said so."""
        self._alerted: set[str] = set()
        self._recommanded_at: dict[str, datetime] = {}
        self._last_issued_at: datetime | None = None
        self.events = EventHub()
        """The dashboard's live stream (``GET /events``), fed by the ``feed`` subscription and the acks."""
        self.agent_senders = AgentSenders.of(ctx.settings.rabbitmq_url.get_secret_value(), self.kind)
        """Which broker user may send the heartbeats of which agent kind."""

    @property
    def timeout(self) -> timedelta:
        """How long an agent may be silent before it is DOWN."""
        return timedelta(seconds=self.ctx.settings.heartbeat_timeout_s)

    def subscriptions(self) -> list[Subscription]:
        """Heartbeats and acknowledgements of every agent, indicator snapshots for the API."""
        return [
            Subscription("heartbeats", (routing.HEARTBEATS.all(),), {Heartbeat: self.on_heartbeat}, prefetch=256),
            Subscription("acks", (routing.COMMAND_ACKS.all(),), {CommandAck: self.on_ack}),
            Subscription(
                "indicators", (routing.INDICATORS.all(),), {IndicatorSnapshot: self.on_snapshot}, prefetch=256
            ),
            Subscription("reviews", (routing.REVIEW_REQUESTS.all(),), {ReviewRequest: self.on_review_request}),
            Subscription("feed", _FEED_PATTERNS, dict.fromkeys(_FEED_TYPES, self.on_feed), prefetch=256),
        ]

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def settle(self) -> timedelta:
        """How long after a command (or an acknowledgement) heartbeats may still predate it."""
        seconds = self.settings.settle_s or 2 * self.ctx.settings.heartbeat_interval_s
        return timedelta(seconds=seconds)

    async def on_start(self) -> None:
        """Restore the intended trading state, start the services (API server) and the DOWN check."""
        self.intent = await self.intent_store.load()
        if self.intent is not None:
            self.book.mode = self.intent.mode
            self.log.info("intended trading state restored", trading=self.intent.mode.value)
        for service in self.services:
            await service.start()
            self._started_services.append(service)
        self._monitor = asyncio.create_task(self._watch(), name="orchestrator-monitor")

    async def on_stop(self) -> None:
        """Stop the DOWN check and the services."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        for service in reversed(self._started_services):
            try:
                await service.stop()
            except Exception:
                self.log.exception("service stop failed", service=type(service).__name__)
        self._started_services.clear()

    async def _watch(self) -> None:
        interval = self.settings.check_interval_s or self.ctx.settings.heartbeat_interval_s / 2
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("heartbeat check failed")

    async def check(self) -> list[Transition]:
        """Mark silent agents DOWN now; announce each (AgentStatus + critical RiskAlert); reassign
        the partitions of kinds that lost a replica, republish the others' when due."""
        now = self.ctx.clock.now()
        transitions = self.registry.mark_down(now, self.timeout)
        for transition in transitions:
            await self._announce(transition)
        self._export_gauges()
        changed = {t.record.kind for t in transitions}
        interval = timedelta(seconds=self.settings.assignment_interval_s)
        for kind in self.settings.partitioned_kinds:
            last = self._assigned_at.get(kind)
            if kind in changed or last is None or now - last >= interval:
                await self.assign_partitions(kind)
        return transitions

    async def assign_partitions(self, kind: str) -> PartitionAssignment | None:
        """Compute ``kind``'s partition assignment over its live (not DOWN) replicas and publish it.

        Returns the assignment published, None when partitions are off, the kind is not partitioned
        or no replica is alive (the last assignment then expires on the replicas)."""
        if self.planner is None or kind not in self.settings.partitioned_kinds:
            return None
        members = [r.agent_id for r in self.registry.records() if r.kind == kind and r.state is not AgentState.DOWN]
        assignment, changed = self.planner.plan(kind, members)
        if assignment is None:
            return None
        self._assigned_at[kind] = self.ctx.clock.now()
        if changed:
            self.log.info(
                "partitions assigned",
                agent_kind=kind,
                generation=assignment.generation,
                owners={m: sorted(assignment.owned_by(m)) for m in sorted(set(members))},
            )
        await self._publish_quietly(assignment)
        return assignment

    # ------------------------------------------------------------------------------ handlers

    async def on_heartbeat(self, heartbeat: Heartbeat, envelope: Envelope) -> None:
        """Update the registry; announce an agent that appeared or came back.

        The heartbeat counts as seen when it is received: senders' clocks are not comparable with
        ours (an agent of a replay runs on market time), so ``ts_init`` is not used. A heartbeat the
        broker did not see come from the claimed agent's user is refused first (see
        :meth:`require_heartbeat_sender`).
        """
        await self.require_heartbeat_sender(heartbeat)
        now = self.ctx.clock.now()
        transition = self.registry.observe(heartbeat, now, now, self.timeout)
        if transition is not None and transition.duplicate:
            await self._announce(transition)
            return  # the older process's heartbeat changes nothing else
        if transition is not None:
            await self._announce(transition)
            self._export_gauges()
            if transition.previous is None and not self.book.recent(1) and self.intent is None:
                self.book.adopt(heartbeat.halted, heartbeat.paused)
        fresh = transition is not None and (
            transition.previous is None or transition.restarted or transition.previous is AgentState.DOWN
        )
        if fresh:  # a new process: what the previous one acknowledged says nothing about it
            self._reported.pop(heartbeat.agent_id, None)
        await self._reconcile(heartbeat.agent_id, fresh=fresh)
        if transition is None:
            return
        if fresh:
            await self._resend_pending(heartbeat)
        await self.assign_partitions(heartbeat.agent_kind)

    async def require_heartbeat_sender(self, heartbeat: Heartbeat) -> None:
        """Refuse a heartbeat whose broker-verified sender (AMQP ``user_id``) is not the broker user of
        the agent kind it claims (:class:`~infrastructure.messaging.sender.AgentSenders`): it is
        dead-lettered with the reason (:class:`MessageRejected`) before it touches the registry, and a
        critical ``forged_heartbeat`` alert is raised. A forged heartbeat could otherwise keep a dead
        agent "up", or report a halted one as trading. On the in-memory bus (one process) every
        heartbeat passes: there is no sender to verify."""
        what = f"heartbeat of {heartbeat.agent_kind} agent {heartbeat.agent_id!r}"
        await self._require_agent_sender(heartbeat.agent_kind, heartbeat.agent_id, what, FORGED_HEARTBEAT_CODE)

    async def require_ack_sender(self, ack: CommandAck) -> None:
        """Refuse an acknowledgement the broker did not see come from the claimed agent kind's user, as
        :meth:`require_heartbeat_sender` does (alert ``forged_ack``): a forged ``ok`` for a HALT would
        otherwise count an agent as halted while it still trades."""
        what = f"{ack.kind.value} acknowledgement of {ack.agent_kind} agent {ack.agent_id!r}"
        await self._require_agent_sender(ack.agent_kind, ack.agent_id, what, FORGED_ACK_CODE)

    async def _require_agent_sender(self, kind: str, agent_id: str, what: str, code: str) -> None:
        try:
            require_agent_sender(self.agent_senders, kind, what)
        except MessageRejected as exc:
            self.log.error("agent message refused: not from the agent's broker user", reason=exc.reason,
                           agent_id=agent_id, code=code)  # fmt: skip
            await self._publish_quietly(RiskAlert(severity=Severity.CRITICAL, code=code, message=exc.reason[:2000]))
            raise

    # ------------------------------------------------------------------------------ reconciliation

    def reported_by_acks(self) -> dict[str, tuple[bool, bool]]:
        """Per agent id: ``(halted, paused)`` as its last successful acknowledgement reported them."""
        return {agent_id: (r.halted, r.paused) for agent_id, r in self._reported.items()}

    def reported(self, record: AgentRecord) -> tuple[bool, bool]:
        """``(halted, paused)`` of an agent as it last reported: its acknowledgement while recent
        (heartbeats sent before it may still arrive), its heartbeats afterwards."""
        ack = self._reported.get(record.agent_id)
        if ack is not None and self.ctx.clock.now() - ack.at <= self.settle:
            return ack.halted, ack.paused
        return record.halted, record.paused

    def disagrees(self, record: AgentRecord) -> bool:
        """Whether a live agent's reported state differs from the intended trading state (only the
        kinds that must obey the intent's command count)."""
        if record.state is AgentState.DOWN:
            return False
        mode = self.book.mode
        halted, paused = self.reported(record)
        if mode is TradingMode.ACTIVE:
            return (record.kind in self.book.required_kinds(CommandKind.HALT) and halted) or (
                record.kind in self.book.required_kinds(CommandKind.PAUSE) and paused
            )
        kind = _REQUIRED_STATE[mode]
        if record.kind not in self.book.required_kinds(kind):
            return False
        return not halted if kind is CommandKind.HALT else not (paused or halted)

    async def _reconcile(self, agent_id: str, *, fresh: bool = False, now_: bool = False) -> None:
        """Command again (and alert on) an agent that disagrees with the intended trading state.

        ``fresh``: a process that (re)started, commanded at once (a warning); ``now_``: the agent
        acknowledged a command that contradicts the intent, commanded at once (critical). Otherwise
        the disagreement must show in two heartbeats in a row, after the settle time of the latest
        command, before the agent is commanded again (critical)."""
        record = self.registry.get(agent_id)
        if record is None or not self.disagrees(record):
            self._mismatch.pop(agent_id, None)
            self._alerted.discard(agent_id)
            return
        mode = self.book.mode
        now = self.ctx.clock.now()
        if not (fresh or now_):
            if self._last_issued_at is not None and now - self._last_issued_at <= self.settle:
                return
            streak = self._mismatch[agent_id] = self._mismatch.get(agent_id, 0) + 1
            if streak < 2:
                return
        halted, paused = self.reported(record)
        doing = "halted" if halted else "paused" if paused else "active"
        detail = f"{agent_id} ({record.kind}) is {doing} while trading is intended {mode.value}"
        if agent_id not in self._alerted:
            self._alerted.add(agent_id)
            severity = Severity.WARNING if fresh or mode is TradingMode.ACTIVE else Severity.CRITICAL
            (self.log.warning if severity is Severity.WARNING else self.log.error)("agent disagrees", detail=detail)
            await self._publish_quietly(RiskAlert(severity=severity, code=STATE_MISMATCH_CODE, message=detail))
        kind = _REQUIRED_STATE.get(mode)
        if kind is None:
            return  # an agent halted while trading is active is reported, never resumed automatically
        last = self._recommanded_at.get(agent_id)
        interval = timedelta(seconds=self.ctx.settings.heartbeat_interval_s)
        if last is not None and now - last < interval:
            return
        self._recommanded_at[agent_id] = now
        try:
            await self.issue(kind.value, target=record.kind, reason=f"re-asserted: {detail}", issued_by="orchestrator")
        except CommandRefused as exc:
            self.log.error("could not re-assert the trading mode", agent_id=agent_id, error=str(exc))

    async def _resend_pending(self, heartbeat: Heartbeat) -> None:
        """Send a pending FLATTEN again to the kind of an agent that (re)appears without having
        acknowledged it: FLATTEN is acknowledged only once flat, and a restarted process forgot that
        it was flattening (its command message was consumed by the process that died), so the
        command would stay pending for ever. Same command id: the new process's ack completes it."""
        records = self.registry.records()
        for record in self.book.recent(limit=20):
            command = record.command
            if (
                command.kind is not CommandKind.FLATTEN
                or heartbeat.agent_kind not in record.required_kinds
                or heartbeat.agent_id in record.acks
                or progress(record, records).state is not CommandState.PENDING
            ):
                continue
            again = command.model_copy(update={"target": heartbeat.agent_kind})
            try:
                await self.publish(again)
            except UnroutableMessage:
                self.log.error("could not send a pending flatten again", agent_id=heartbeat.agent_id)
                continue
            self.log.warning(
                "pending command sent again", command=command.kind.value, command_id=str(command.command_id),
                agent_id=heartbeat.agent_id,
            )  # fmt: skip

    async def on_ack(self, ack: CommandAck, envelope: Envelope) -> None:
        """Record an acknowledgement (and what it says the agent now does); an agent that obeyed a
        command this orchestrator did not issue and that contradicts the intent is commanded again. An
        acknowledgement not sent by the claimed agent's broker user is refused first
        (:meth:`require_ack_sender`)."""
        await self.require_ack_sender(ack)
        now = self.ctx.clock.now()
        self._note_reported(ack, now)
        self.events.publish_message(ack, envelope)
        record = self.book.acknowledge(ack, now)
        if record is None:
            self.log.warning(
                "ack for a command this orchestrator did not issue",
                command=ack.kind.value,
                command_id=str(ack.command_id),
                agent_id=ack.agent_id,
            )
            await self._reconcile(ack.agent_id, now_=True)
            return
        view = command_view(record, self.registry.records())
        self.log.info(
            "command acknowledged",
            command=ack.kind.value,
            agent_id=ack.agent_id,
            ok=ack.ok,
            state=view.state,
            awaiting=view.awaiting,
        )

    def _note_reported(self, ack: CommandAck, now: datetime) -> None:
        if not ack.ok:
            return
        current = self.registry.get(ack.agent_id)
        halted, paused = self.reported(current) if current is not None else (False, False)
        if ack.kind is CommandKind.HALT:
            halted = True
        elif ack.kind is CommandKind.PAUSE:
            paused = True
        elif ack.kind is CommandKind.RESUME:
            halted = paused = False
        else:
            return
        self._reported[ack.agent_id] = _Reported(halted, paused, now)

    async def on_feed(self, payload: Payload, envelope: Envelope) -> None:
        """Forward a market, signal, order-path or alert message to the dashboard's live stream."""
        self.events.publish_message(payload, envelope)

    async def on_snapshot(self, snapshot: IndicatorSnapshot, envelope: Envelope) -> None:
        """Keep the latest snapshots for ``/market``."""
        self.snapshots.add(snapshot)

    async def on_review_request(self, request: ReviewRequest, envelope: Envelope) -> None:
        """Queue a MANUAL_REVIEW for a person (a redelivery changes nothing)."""
        if await self.reviews_store.add(request, self.ctx.clock.now()):
            self.log.warning(
                "manual review queued",
                review_id=str(request.review_id),
                symbol=request.symbol,
                direction=request.direction.value,
                expires_at=request.expires_at.isoformat(),
            )

    # ------------------------------------------------------------------------------ announcing

    async def _announce(self, transition: Transition) -> None:
        record = transition.record
        status = AgentStatus(
            agent_id=record.agent_id,
            agent_kind=record.kind,
            state=record.state.value,
            last_seen=record.last_seen,
            detail=transition.detail,
        )
        await self._publish_quietly(status)
        log = self.log.bind(agent_id=record.agent_id, agent_kind=record.kind, state=record.state.value)
        if transition.duplicate:
            log.error("agent id used by two processes", detail=transition.detail)
            alert = RiskAlert(
                severity=Severity.CRITICAL, code=DUPLICATE_AGENT_CODE, message=f"{transition.detail}: stop one of them"
            )
            await self._publish_quietly(alert)
        elif record.state is AgentState.DOWN:
            log.error("agent down", detail=transition.detail)
            alert = RiskAlert(
                severity=Severity.CRITICAL,
                code=AGENT_DOWN_CODE,
                message=f"agent {record.agent_id} ({record.kind}) is DOWN: {transition.detail}",
                value=(self.ctx.clock.now() - record.last_seen).total_seconds(),
                limit=self.timeout.total_seconds(),
            )
            await self._publish_quietly(alert)
        elif transition.restarted:
            log.warning("agent restarted", detail=transition.detail, restarts=record.restarts)
            alert = RiskAlert(
                severity=Severity.WARNING,
                code=AGENT_RESTARTED_CODE,
                message=f"agent {record.agent_id} ({record.kind}) restarted: a new process since {record.started_at}",
                value=float(record.restarts),
            )
            await self._publish_quietly(alert)
        elif transition.previous is AgentState.DOWN:
            log.warning("agent recovered", detail=transition.detail)
            alert = RiskAlert(
                severity=Severity.INFO,
                code=AGENT_RECOVERED_CODE,
                message=f"agent {record.agent_id} ({record.kind}) is back: {transition.detail}",
            )
            await self._publish_quietly(alert)
        else:
            log.info("agent state", detail=transition.detail)

    async def _publish_quietly(self, payload: Payload) -> None:
        """Statuses, alerts and partition assignments: nobody listening is not an error."""
        try:
            await self.publish(payload)
        except UnroutableMessage:
            self.log.debug("no queue bound for", message_type=payload.TYPE)

    def _export_gauges(self) -> None:
        if not self.ctx.instrument:
            return
        counts = dict.fromkeys(AgentState, 0)
        for record in self.registry.records():
            counts[record.state] += 1
        for state, count in counts.items():
            metrics.ORCHESTRATOR_AGENTS.labels(state.value).set(count)

    # ------------------------------------------------------------------------------ ControlPlane

    def trading(self) -> Literal["active", "paused", "halted", "mixed"]:
        """What the agents that obey HALT and PAUSE actually do: ``halted`` (all of them), ``paused``
        (every agent of the PAUSE kinds paused or halted), ``active`` (none halted nor paused) or
        ``mixed`` (some are, some are not; also while a HALT is intended and not every agent is
        halted); the intent when no such agent is alive."""
        live = [r for r in self.registry.records() if r.state is not AgentState.DOWN]
        halt_kinds = self.book.required_kinds(CommandKind.HALT)
        pause_kinds = self.book.required_kinds(CommandKind.PAUSE)
        halted = [self.reported(r)[0] for r in live if r.kind in halt_kinds]
        paused = [any(self.reported(r)) for r in live if r.kind in pause_kinds]
        if not halted and not paused:
            return _MODE_NAMES[self.book.mode]
        if halted and all(halted):
            return "halted"
        if any(halted) and self.book.mode is TradingMode.HALTED:
            return "mixed"  # a HALT not in force everywhere (even if entries happen to be stopped)
        if paused and all(paused):
            return "paused"  # no new entries (an agent that halts on PAUSE, like compliance, is no less)
        return "mixed" if any(halted) or any(paused) else "active"

    def health(self) -> HealthView:
        """The swarm's status, what the agents do (``trading``) and what was intended."""
        records = self.registry.records()
        halt = self.book.last(CommandKind.HALT, target="all")
        return HealthView(
            status=system_status(records).value,
            trading=self.trading(),
            trading_intended=self.book.mode.value,
            disagreeing=[r.agent_id for r in records if self.disagrees(r)],
            mode=self.ctx.settings.mode.value,
            now=self.ctx.clock.now(),
            agents_up=sum(1 for r in records if r.state is AgentState.UP),
            agents_down=sum(1 for r in records if r.state is AgentState.DOWN),
            agents_total=len(records),
            down=[r.agent_id for r in records if r.state is AgentState.DOWN],
            last_halt=command_view(halt, records) if halt is not None else None,
        )

    def agents(self) -> list[AgentView]:
        """Every known agent."""
        return [agent_view(r) for r in self.registry.records()]

    def market_series(self) -> list[SeriesView]:
        """The series with snapshots in memory."""
        series = []
        for venue, symbol, timeframe in self.snapshots.symbols():
            items = self.snapshots.latest(
                symbol, timeframe=timeframe, venue=venue, limit=self.settings.latest_snapshots
            )
            series.append(
                SeriesView(
                    venue=venue,
                    symbol=symbol,
                    timeframe=timeframe,
                    snapshots=len(items),
                    last_close_time=items[-1].close_time if items else None,
                )
            )
        return series

    def market_latest(self, symbol: str, timeframe: str | None, venue: str | None, limit: int) -> list[SnapshotView]:
        """The latest snapshots of ``symbol`` (matched in its escaped form, ``BTC-USDT``)."""
        for v, s, tf in self.snapshots.symbols():
            if routing.escape(s) == routing.escape(symbol) and timeframe in (None, tf) and venue in (None, v):
                return [snapshot_view(x) for x in self.snapshots.latest(s, timeframe=tf, venue=v, limit=limit)]
        return []

    async def issue(self, kind: str, *, target: str = "all", reason: str = "", issued_by: str = "api") -> CommandView:
        """Publish a command to ``target`` and start collecting its acknowledgements."""
        try:
            command_kind = CommandKind(kind)
        except ValueError:
            raise CommandRefused(f"unknown command {kind!r}") from None
        command = Command(command_id=uuid.uuid4(), kind=command_kind, target=target, reason=reason, issued_by=issued_by)
        previous_mode, previous_intent = self.book.mode, self.intent
        now = self.ctx.clock.now()
        record = self.book.issue(command, now)
        if self.book.mode is not previous_mode or (target == "all" and command_kind in _MODE_COMMANDS):
            # the intent is saved before anyone is told: an orchestrator restarted right after the
            # publish still knows trading is halted
            self.intent = TradingIntent(self.book.mode, now, command.command_id, reason, issued_by)
            await self.intent_store.save(self.intent)
        self._last_issued_at = now
        try:
            await self.publish(command)
        except UnroutableMessage:
            self.book.retract(command.command_id, previous_mode)
            if self.intent is not previous_intent:
                self.intent = previous_intent or TradingIntent(previous_mode, now, None, "retracted", issued_by)
                await self.intent_store.save(self.intent)
            refused = UnknownTarget if target != "all" else CommandRefused
            raise refused(f"no agent listens for commands to {target!r}: the {kind} was not delivered") from None
        self.log.warning("command issued", command=kind, target=target, reason=reason, issued_by=issued_by)
        if self.ctx.instrument:
            metrics.ORCHESTRATOR_COMMANDS.labels(kind).inc()
        return command_view(record, self.registry.records())

    def command(self, command_id: UUID) -> CommandView | None:
        """A command's progress."""
        record = self.book.get(command_id)
        return command_view(record, self.registry.records()) if record is not None else None

    def commands(self, limit: int) -> list[CommandView]:
        """Recent commands, newest first."""
        records = self.registry.records()
        return [command_view(r, records) for r in self.book.recent(limit)]

    async def reviews(self, state: str | None, limit: int, offset: int) -> Page[ReviewView]:
        """The review queue (of one state), newest request first."""
        now = self.ctx.clock.now()
        wanted = queue.ReviewState(state) if state is not None else None
        items, total = await self.reviews_store.list(wanted, now, limit, offset)
        return Page[ReviewView](items=[review_view(r, now) for r in items], total=total, limit=limit, offset=offset)

    async def review(self, review_id: UUID) -> ReviewView | None:
        """One review."""
        found = await self.reviews_store.get(review_id)
        return review_view(found, self.ctx.clock.now()) if found is not None else None

    async def decide_review(self, review_id: UUID, *, approve: bool, reviewer: str, note: str) -> ReviewView:
        """Record a person's verdict (atomically: once, before expiry), then send it to the strategy
        agent. When it cannot be delivered the verdict is undone and the review stays pending."""
        now = self.ctx.clock.now()
        verdict = queue.ReviewState.APPROVED if approve else queue.ReviewState.REJECTED
        try:
            review = await self.reviews_store.decide(review_id, verdict, reviewer, note, now)
        except queue.ReviewNotFound:
            raise ReviewNotFound(f"no review {review_id}") from None
        except queue.ReviewClosed as exc:
            raise ReviewConflict(str(exc)) from None
        decision = ReviewDecision(
            review_id=review_id, approved=approve, reviewer=reviewer, note=note, decided_at=now, request=review.request
        )
        try:
            await self.publish(decision)
        except UnroutableMessage:
            await self.reviews_store.reopen(review_id, verdict)
            raise CommandRefused(
                f"no strategy agent listens for review verdicts on {review.request.symbol}: the review stays pending"
            ) from None
        self.log.warning(
            "review decided", review_id=str(review_id), verdict=verdict.value, reviewer=reviewer, note=note[:200]
        )
        if self.ctx.instrument:
            metrics.REVIEWS_DECIDED.labels(verdict.value).inc()
        return review_view(review, now)
