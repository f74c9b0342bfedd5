"""The agent registry: who is alive, built from heartbeats; DOWN detection as a pure function.

The registry never reads a clock itself: every method takes ``now``, so the same logic runs under
the wall clock in production and under a :class:`~core.clock.SimulatedClock` in tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from core.messages import Heartbeat


class AgentState(StrEnum):
    """What the orchestrator believes about one agent."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class SystemStatus(StrEnum):
    """The swarm as a whole."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One agent instance as last reported by its heartbeats."""

    agent_id: str
    kind: str
    version: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    processed: int
    failed: int
    dead_lettered: int
    ready: bool
    paused: bool
    halted: bool
    state: AgentState
    restarts: int = 0
    down_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of an agent's state that the orchestrator announces (AgentStatus, RiskAlert)."""

    record: AgentRecord
    previous: AgentState | None
    detail: str
    restarted: bool = False
    """The agent came back as a new process (its ``started_at`` changed) without being seen DOWN."""
    duplicate: bool = False
    """A process this id was already taken over from still sends heartbeats: two live processes
    share the id (an agent started twice). Announced once while it lasts; never counted as a restart."""


def state_of(heartbeat: Heartbeat) -> AgentState:
    """UP when the agent says it is ready, DEGRADED otherwise (alive but not consuming)."""
    return AgentState.UP if heartbeat.ready else AgentState.DEGRADED


class AgentRegistry:
    """Agents by id. :meth:`observe` takes heartbeats, :meth:`mark_down` applies :func:`find_down`."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}
        self._processes: dict[str, dict[tuple[int, str, datetime], datetime]] = {}
        """Per id, when each process (pid, host, started_at) was last heard of."""
        self._duplicated: set[str] = set()
        """Ids announced as shared by two live processes (until only one is heard of again)."""

    def __len__(self) -> int:
        return len(self._agents)

    def get(self, agent_id: str) -> AgentRecord | None:
        """The record of ``agent_id`` (None when never seen)."""
        return self._agents.get(agent_id)

    def records(self) -> list[AgentRecord]:
        """Every known agent, ordered by kind then id."""
        return sorted(self._agents.values(), key=lambda r: (r.kind, r.agent_id))

    def observe(self, heartbeat: Heartbeat, seen_at: datetime, now: datetime, timeout: timedelta) -> Transition | None:
        """Record a heartbeat sent at ``seen_at``; returns the transition to announce, if any.

        A heartbeat older than ``timeout`` (queued while the orchestrator was away) refreshes the
        counters but cannot bring an agent back UP; a heartbeat older than the one already seen is
        ignored. A new ``started_at`` for a known id counts as a restart.
        """
        seen_at = min(seen_at, now)
        current = self._agents.get(heartbeat.agent_id)
        if current is not None and seen_at < current.last_seen:
            return None
        identity = (heartbeat.pid, heartbeat.host, heartbeat.started_at)
        processes = self._processes.setdefault(heartbeat.agent_id, {})
        last_heard = processes.get(identity)
        known = last_heard is not None
        others = [(i, t) for i, t in processes.items() if i != identity and seen_at - t <= timeout]
        processes[identity] = seen_at
        for old in [i for i, t in processes.items() if seen_at - t > 10 * timeout]:
            del processes[old]
        # Heard again from a process after ANOTHER one was heard (a process killed and replaced is
        # never heard again): two live processes share the id (an agent started twice). Announced
        # once; never a restart, whichever of them the record shows.
        duplicate = current is not None and last_heard is not None and any(t > last_heard for _, t in others)
        fresh = now - seen_at <= timeout
        state = state_of(heartbeat) if fresh else AgentState.DOWN
        restarts = 0
        # A new process: a later start, or another pid/host (a host on market time starts at epoch).
        restarted = (
            current is not None
            and not known
            and (
                heartbeat.started_at > current.started_at
                or (heartbeat.pid, heartbeat.host) != (current.pid, current.host)
            )
        )
        if current is not None:
            restarts = current.restarts + (1 if restarted else 0)
        record = AgentRecord(
            agent_id=heartbeat.agent_id,
            kind=heartbeat.agent_kind,
            version=heartbeat.version,
            host=heartbeat.host,
            pid=heartbeat.pid,
            started_at=heartbeat.started_at,
            last_seen=seen_at,
            processed=heartbeat.processed,
            failed=heartbeat.failed,
            dead_lettered=heartbeat.dead_lettered,
            ready=heartbeat.ready,
            paused=heartbeat.paused,
            halted=heartbeat.halted,
            state=state,
            restarts=restarts,
            down_since=(current.down_since if current and state is AgentState.DOWN else None),
        )
        self._agents[heartbeat.agent_id] = record
        previous = current.state if current is not None else None
        if not others:
            self._duplicated.discard(heartbeat.agent_id)
        if duplicate and heartbeat.agent_id not in self._duplicated:
            self._duplicated.add(heartbeat.agent_id)
            pids = ", ".join(
                f"pid {pid} on {host} (started {started.isoformat()})" for (pid, host, started), _ in others
            )
            detail = (
                f"two processes share the id {heartbeat.agent_id}: pid {heartbeat.pid} on {heartbeat.host} "
                f"(started {heartbeat.started_at.isoformat()}) and {pids}"
            )
            return Transition(record=record, previous=previous, detail=detail, duplicate=True)
        if previous == state:
            if restarted and previous is not None:
                return Transition(record=record, previous=previous, detail="restarted (new process)", restarted=True)
            return None
        if previous is None and state is AgentState.DOWN:
            # First sight of an agent through a stale heartbeat: remember it, announce it as down.
            record = replace(record, down_since=now)
            self._agents[heartbeat.agent_id] = record
        detail = "first heartbeat" if previous is None else f"{previous.value} -> {state.value}"
        return Transition(record=record, previous=previous, detail=detail)

    def mark_down(self, now: datetime, timeout: timedelta) -> list[Transition]:
        """Mark every agent silent for longer than ``timeout`` DOWN; returns the new DOWN ones."""
        transitions = []
        for record in find_down(self._agents.values(), now, timeout):
            silent = (now - record.last_seen).total_seconds()
            down = replace(record, state=AgentState.DOWN, ready=False, down_since=now)
            self._agents[record.agent_id] = down
            transitions.append(Transition(record=down, previous=record.state, detail=f"no heartbeat for {silent:.1f}s"))
        return transitions

    def forget(self, agent_id: str) -> bool:
        """Drop an agent (an operator retired it); True when it was known."""
        return self._agents.pop(agent_id, None) is not None


def find_down(records: Iterable[AgentRecord], now: datetime, timeout: timedelta) -> list[AgentRecord]:
    """The agents not yet DOWN whose last heartbeat is more than ``timeout`` before ``now``."""
    return [r for r in records if r.state is not AgentState.DOWN and now - r.last_seen > timeout]


def system_status(records: Sequence[AgentRecord]) -> SystemStatus:
    """OK when every agent is UP, DOWN when none is, DEGRADED in between, EMPTY with no agent."""
    if not records:
        return SystemStatus.EMPTY
    up = sum(1 for r in records if r.state is AgentState.UP)
    if up == len(records):
        return SystemStatus.OK
    if up == 0:
        return SystemStatus.DOWN
    return SystemStatus.DEGRADED
