"""The orchestrator on the in-memory bus with a simulated clock: registry, DOWN, commands, acks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from agents.orchestrator.agent import (
    AGENT_DOWN_CODE,
    AGENT_RECOVERED_CODE,
    AGENT_RESTARTED_CODE,
    DUPLICATE_AGENT_CODE,
    OrchestratorAgent,
)
from agents.orchestrator.commands import TradingMode
from agents.orchestrator.registry import AgentRecord, AgentRegistry, AgentState, SystemStatus, find_down, system_status
from agents.orchestrator.settings import OrchestratorSettings
from core.clock import SimulatedClock
from core.domain import CommandKind, Severity
from core.messages import AgentStatus, Envelope, RiskAlert
from core.ports import QueueSpec
from core.routing import AGENT_STATUS, ALERTS
from infrastructure.api.ports import CommandRefused
from infrastructure.messaging.memory import InMemoryBus
from tests.control.helpers import Obedient, context, obedient_agents, orchestrator
from tests.factories import T0


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    await bus.start()
    yield bus
    await bus.close()


async def _watch(bus: InMemoryBus) -> list[Envelope]:
    seen: list[Envelope] = []

    async def collect(envelope: Envelope) -> None:
        seen.append(envelope)

    await bus.subscribe(QueueSpec("test.watch", (ALERTS.all(), AGENT_STATUS.all())), collect)
    return seen


async def _beat(agent: Obedient, clock: SimulatedClock, *, ready: bool = True) -> None:
    await agent.publish(agent.heartbeat(clock, T0, ready=ready))


async def test_heartbeats_build_the_registry(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    (risk,) = await obedient_agents(bus, clock, ["risk"])
    seen = await _watch(bus)
    risk.counters.processed = 7
    await _beat(risk, clock)
    record = orch.registry.get("risk-1")
    assert record is not None
    assert (record.kind, record.state, record.processed, record.ready) == ("risk", AgentState.UP, 7, True)
    assert [type(e.payload) for e in seen] == [AgentStatus]
    assert orch.health().status == "ok"
    assert [a.agent_id for a in orch.agents()] == ["risk-1"]
    await orch.stop()


async def test_silent_agent_is_down_after_the_timeout_then_recovers(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    risk, execution = await obedient_agents(bus, clock, ["risk", "execution"])
    seen = await _watch(bus)
    await _beat(risk, clock)
    await _beat(execution, clock)
    seen.clear()

    clock.advance(timedelta(seconds=2))
    await _beat(execution, clock)
    assert await orch.check() == []  # 2 s < 3 s timeout

    clock.advance(timedelta(seconds=1.5))  # risk silent 3.5 s, execution 1.5 s
    transitions = await orch.check()
    assert [t.record.agent_id for t in transitions] == ["risk-1"]
    assert orch.registry.get("risk-1").state is AgentState.DOWN  # type: ignore[union-attr]
    assert orch.registry.get("execution-1").state is AgentState.UP  # type: ignore[union-attr]
    statuses = [e.payload for e in seen if isinstance(e.payload, AgentStatus)]
    alerts = [e.payload for e in seen if isinstance(e.payload, RiskAlert)]
    assert [(s.agent_id, s.state) for s in statuses] == [("risk-1", "down")]
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.CRITICAL
    assert alerts[0].code == AGENT_DOWN_CODE
    assert orch.health().status == "degraded"
    assert orch.health().down == ["risk-1"]
    assert await orch.check() == []  # announced once

    seen.clear()
    await _beat(risk, clock)
    assert orch.registry.get("risk-1").state is AgentState.UP  # type: ignore[union-attr]
    assert [e.payload.code for e in seen if isinstance(e.payload, RiskAlert)] == [AGENT_RECOVERED_CODE]
    await orch.stop()


def test_registry_ignores_a_stale_heartbeat() -> None:
    """The registry's rule (pure): a heartbeat seen longer ago than the timeout cannot bring an
    agent up. (The orchestrator passes the receipt time: senders may run on market time.)"""
    clock = SimulatedClock(T0)
    registry = AgentRegistry()
    agent = Obedient(context(InMemoryBus(), clock, "risk-1"), "risk")
    beat = agent.heartbeat(clock, T0)
    registry.observe(beat, T0, T0, timedelta(seconds=3))
    now = T0 + timedelta(seconds=10)
    assert [t.record.agent_id for t in registry.mark_down(now, timedelta(seconds=3))] == ["risk-1"]
    assert registry.observe(beat, T0 + timedelta(seconds=1), now, timedelta(seconds=3)) is None
    assert registry.get("risk-1").state is AgentState.DOWN  # type: ignore[union-attr]
    transition = registry.observe(beat, now, now, timedelta(seconds=3))
    assert transition is not None
    assert transition.record.state is AgentState.UP


async def test_restart_is_counted_and_announced(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    (risk,) = await obedient_agents(bus, clock, ["risk"])
    await _beat(risk, clock)
    seen = await _watch(bus)
    clock.advance(timedelta(seconds=5))
    await risk.publish(risk.heartbeat(clock, clock.now()))
    record = orch.registry.get("risk-1")
    assert record is not None
    assert record.restarts == 1
    assert record.state is AgentState.UP
    alerts = [e.payload for e in seen if isinstance(e.payload, RiskAlert)]
    assert [(a.code, a.severity) for a in alerts] == [(AGENT_RESTARTED_CODE, Severity.WARNING)]
    await orch.stop()


def test_find_down_and_system_status_are_pure() -> None:
    def rec(agent_id: str, seen_s: float, state: AgentState = AgentState.UP) -> AgentRecord:
        return AgentRecord(
            agent_id=agent_id, kind="risk", version="1", host="h", pid=1, started_at=T0,
            last_seen=T0 + timedelta(seconds=seen_s), processed=0, failed=0, dead_lettered=0,
            ready=True, paused=False, halted=False, state=state,
        )  # fmt: skip

    records = [rec("a", 0), rec("b", 5), rec("c", 0, AgentState.DOWN)]
    now = T0 + timedelta(seconds=6)
    assert [r.agent_id for r in find_down(records, now, timedelta(seconds=3))] == ["a"]
    assert system_status(records) is SystemStatus.DEGRADED
    assert system_status([]) is SystemStatus.EMPTY
    assert system_status([records[2]]) is SystemStatus.DOWN
    assert system_status(records[:2]) is SystemStatus.OK


async def test_halt_is_complete_once_every_required_kind_acknowledged(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    agents = await obedient_agents(bus, clock, ["strategy", "risk", "compliance"])
    for agent in agents:
        await _beat(agent, clock)
    view = await orch.issue("halt", reason="test")
    view = orch.command(view.command_id)  # type: ignore[assignment]
    assert view is not None
    assert all(a.halted for a in agents)
    assert view.state == "pending"
    assert view.missing_kinds == ["execution"]  # no execution agent: the halt cannot be confirmed
    assert sorted(view.acknowledged) == ["compliance-1", "risk-1", "strategy-1"]
    assert orch.health().trading == "halted"

    (execution,) = await obedient_agents(bus, clock, ["execution"])
    await _beat(execution, clock)
    # The execution agent came up after the halt: it is awaited now.
    assert orch.command(view.command_id).awaiting == ["execution-1"]  # type: ignore[union-attr]
    halt2 = await orch.issue("halt", reason="again")
    done = orch.command(halt2.command_id)
    assert done is not None
    assert done.complete
    assert done.state == "complete"
    assert orch.health().last_halt.command_id == halt2.command_id  # type: ignore[union-attr]

    resume = await orch.issue("resume")
    assert orch.command(resume.command_id).complete  # type: ignore[union-attr]
    assert not any(a.halted for a in [*agents, execution])
    assert orch.book.mode is TradingMode.ACTIVE
    await orch.stop()


async def test_down_agent_is_not_awaited(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock, OrchestratorSettings(api_enabled=False, check_interval_s=60,
                                                              flatten_ack_kinds=["execution"]))  # fmt: skip
    (ex1,) = await obedient_agents(bus, clock, ["execution"])
    ex2 = Obedient(context(bus, clock, "execution-2"), "execution")
    await _beat(ex1, clock)
    await _beat(ex2, clock)  # ex2 never started consuming commands
    view = await orch.issue("flatten")
    assert orch.command(view.command_id).awaiting == ["execution-2"]  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=2))
    await _beat(ex1, clock)
    clock.advance(timedelta(seconds=2))
    await orch.check()  # execution-2 silent for 4 s: DOWN, no longer awaited
    assert orch.command(view.command_id).complete  # type: ignore[union-attr]
    await orch.stop()


async def test_command_without_listener_is_refused_and_mode_kept(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    with pytest.raises(CommandRefused, match="no agent listens"):
        await orch.issue("halt")
    assert orch.book.mode is TradingMode.ACTIVE
    assert orch.commands(10) == []
    with pytest.raises(CommandRefused, match="unknown command"):
        await orch.issue("explode")
    await orch.stop()


async def test_indicator_snapshots_are_kept_per_series(bus: InMemoryBus) -> None:
    from tests.control.data import snapshots

    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock, OrchestratorSettings(api_enabled=False, check_interval_s=60,
                                                              latest_snapshots=5))  # fmt: skip
    for snap in snapshots(8):
        await bus.publish(Envelope.wrap(snap, source="technical-analysis-1", clock=clock, ts_event=snap.close_time))
    await bus.publish(Envelope.wrap(snapshots(1)[0], source="technical-analysis-1", clock=clock))  # old: ignored
    series = orch.market_series()
    assert [(s.symbol, s.timeframe, s.snapshots) for s in series] == [("BTC/USDT", "1h", 5)]
    latest = orch.market_latest("BTC-USDT", None, None, 3)
    assert [s.open_time for s in latest] == [s.open_time for s in snapshots(8)[-3:]]
    assert latest[-1].indicators["sma_3"] > 0
    assert orch.market_latest("ETH/USDT", None, None, 3) == []
    await orch.stop()


def test_orchestrator_kind() -> None:
    assert OrchestratorAgent.kind == "orchestrator"
    assert CommandKind.HALT.value == "halt"


async def test_an_agent_started_twice_with_the_same_id_is_alerted_once(bus: InMemoryBus) -> None:
    """Two live processes with one id: the older keeps beating after the newer took over."""
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    (risk,) = await obedient_agents(bus, clock, ["risk"])
    seen = await _watch(bus)
    older = risk.heartbeat(clock, T0)
    await risk.publish(older)
    clock.advance(timedelta(seconds=1))
    newer = risk.heartbeat(clock, clock.now()).model_copy(update={"pid": older.pid + 1})
    await risk.publish(newer)  # a restart, as far as anyone can tell yet
    for _ in range(3):  # ... but the older process is still alive
        clock.advance(timedelta(seconds=1))
        await risk.publish(older)
        await risk.publish(newer)
    record = orch.registry.get("risk-1")
    assert record is not None
    assert (record.pid, record.restarts) == (older.pid + 1, 1)  # the newer process, one restart, no flapping
    alerts = [e.payload for e in seen if isinstance(e.payload, RiskAlert)]
    assert [(a.code, a.severity) for a in alerts] == [
        (AGENT_RESTARTED_CODE, Severity.WARNING),
        (DUPLICATE_AGENT_CODE, Severity.CRITICAL),
    ]
    assert f"pid {older.pid} " in alerts[1].message
    assert f"pid {older.pid + 1} " in alerts[1].message
    await orch.stop()


async def test_a_late_heartbeat_of_a_replaced_process_is_no_duplicate(bus: InMemoryBus) -> None:
    """A heartbeat of the killed process, seen after the new one's, is older: ignored, no alert."""
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    (risk,) = await obedient_agents(bus, clock, ["risk"])
    seen = await _watch(bus)
    older = risk.heartbeat(clock, T0)
    await risk.publish(older)
    clock.advance(timedelta(seconds=1))
    await risk.publish(risk.heartbeat(clock, clock.now()).model_copy(update={"pid": older.pid + 1}))
    assert orch.registry.observe(older, T0, clock.now(), timedelta(seconds=30)) is None  # seen when it was sent
    for _ in range(3):  # the new process beats on, the killed one is never heard again: no duplicate
        clock.advance(timedelta(seconds=1))
        await risk.publish(risk.heartbeat(clock, T0 + timedelta(seconds=1)).model_copy(update={"pid": older.pid + 1}))
    assert [a.payload.code for a in seen if isinstance(a.payload, RiskAlert)] == [AGENT_RESTARTED_CODE]
    await orch.stop()


async def test_a_new_pid_is_a_restart_even_with_the_same_start_time(bus: InMemoryBus) -> None:
    """Agents on market time report their start at the epoch: the pid tells the processes apart."""
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    (execution,) = await obedient_agents(bus, clock, ["execution"])
    first = execution.heartbeat(clock, T0)
    await execution.publish(first)
    await execution.publish(first.model_copy(update={"pid": first.pid + 1}))
    record = orch.registry.get("execution-1")
    assert record is not None
    assert (record.restarts, record.pid) == (1, first.pid + 1)
    await orch.stop()


async def test_an_agent_restarting_while_halted_is_halted_again(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await orchestrator(bus, clock)
    agents = await obedient_agents(bus, clock)
    for agent in agents:
        await _beat(agent, clock)
    halt = await orch.issue("halt", reason="drill")
    compliance = next(a for a in agents if a.kind == "compliance")
    assert compliance.halted
    # The compliance process restarts: the new one does not know about the halt.
    compliance.halted = False
    clock.advance(timedelta(seconds=1))
    await compliance.publish(compliance.heartbeat(clock, clock.now()))
    assert compliance.halted
    reasserted = orch.book.last(CommandKind.HALT)
    assert reasserted is not None
    assert (reasserted.command.target, reasserted.required_kinds) == ("compliance", ("compliance",))
    assert orch.command(reasserted.command.command_id).complete  # type: ignore[union-attr]
    assert orch.health().last_halt.command_id == halt.command_id  # type: ignore[union-attr]
    # Agents that do not obey HALT are left alone (no command queue: it would be refused).
    (ta,) = await obedient_agents(bus, clock, ["technical_analysis"])
    await _beat(ta, clock)
    assert not ta.commands
    await orch.stop()


async def test_a_restarted_orchestrator_recovers_the_halt_from_heartbeats(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    agents = await obedient_agents(bus, clock, ["strategy", "execution"])
    strategy, execution = agents
    execution.halted = True  # halted by the previous orchestrator process
    orch = await orchestrator(bus, clock)
    await _beat(execution, clock)
    assert orch.health().trading == "halted"
    await _beat(strategy, clock)  # a strategy that is not halted (it restarted meanwhile)
    assert strategy.halted
    await orch.stop()
