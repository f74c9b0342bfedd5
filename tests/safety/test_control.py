"""Control commands are authenticated and the intended trading state is reconciled (issue #20), on the
in-memory bus with a simulated clock (the multi-process proof is tests/safety/test_control_e2e.py):

* an agent obeys a command only when the broker-verified sender is one of the orchestrator's users;
  any other command is refused (dead-lettered with the reason) and raises a critical alert;
* the orchestrator saves the intended state before it publishes, restores it at start, commands again
  (and alerts on) an agent that disagrees, and ``/health`` reports what the agents do.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from agents.base.agent import FORGED_CONTROL_CODE
from agents.orchestrator.agent import STATE_MISMATCH_CODE
from agents.orchestrator.commands import TradingMode
from agents.orchestrator.intent import InMemoryIntentStore
from agents.orchestrator.settings import OrchestratorSettings
from core.clock import SimulatedClock
from core.domain import CommandKind, Severity
from core.errors import MessageRejected
from core.messages import Command, Envelope, RiskAlert
from core.ports import QueueSpec
from core.routing import ALERTS
from infrastructure.messaging.memory import InMemoryBus
from infrastructure.messaging.sender import CURRENT_DELIVERY, Delivery
from tests.control.helpers import Obedient, context, obedient_agents
from tests.factories import T0


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    await bus.start()
    yield bus
    await bus.close()


async def _alerts(bus: InMemoryBus) -> list[RiskAlert]:
    seen: list[RiskAlert] = []

    async def collect(envelope: Envelope) -> None:
        assert isinstance(envelope.payload, RiskAlert)
        seen.append(envelope.payload)

    await bus.subscribe(QueueSpec("test.alerts", (ALERTS.all(),)), collect)
    return seen


def _command(kind: CommandKind) -> tuple[Command, Envelope]:
    command = Command(command_id=uuid.uuid4(), kind=kind, reason="forged", issued_by="orchestrator")
    return command, Envelope.wrap(command, source="orchestrator-1", clock=SimulatedClock(T0))


@pytest.mark.parametrize("kind", [CommandKind.RESUME, CommandKind.PAUSE, CommandKind.HALT, CommandKind.FLATTEN])
async def test_a_command_from_another_broker_user_is_refused_and_alerted(bus: InMemoryBus, kind: CommandKind) -> None:
    alerts = await _alerts(bus)
    agent = Obedient(context(bus, SimulatedClock(T0), "execution-1"), "execution")
    agent.halted = True
    command, envelope = _command(kind)
    # what the broker verified (None: no user_id at all); the context's own broker user is guest, which
    # is trusted only because every agent shares it on a development broker (docs/security.md)
    for sender in ("intruder", "admin", None):
        token = CURRENT_DELIVERY.set(Delivery(user_id=sender))
        try:
            with pytest.raises(MessageRejected, match="command to execution"):
                await agent._handle_command(command, envelope)
        finally:
            CURRENT_DELIVERY.reset(token)
    assert agent.commands == []  # nothing obeyed
    assert agent.halted
    assert [(a.severity, a.code) for a in alerts] == [(Severity.CRITICAL, FORGED_CONTROL_CODE)] * 3
    assert "'intruder'" in alerts[0].message
    assert "orchestrator" in alerts[0].message


async def test_the_orchestrators_user_is_obeyed(bus: InMemoryBus, monkeypatch: pytest.MonkeyPatch) -> None:
    acks: list[Envelope] = []

    async def collect(envelope: Envelope) -> None:
        acks.append(envelope)

    await bus.subscribe(QueueSpec("test.acks", ("control.ack.#",)), collect)
    monkeypatch.setenv("TRADESWARM_CONTROL_SENDERS", "s123_orchestrator")
    agent = Obedient(context(bus, SimulatedClock(T0), "risk-1"), "risk")
    command, envelope = _command(CommandKind.HALT)
    token = CURRENT_DELIVERY.set(Delivery(user_id="s123_orchestrator"))
    try:
        await agent._handle_command(command, envelope)
        obeyed_default = Obedient(context(bus, SimulatedClock(T0), "risk-2"), "risk")
        monkeypatch.delenv("TRADESWARM_CONTROL_SENDERS")
        CURRENT_DELIVERY.set(Delivery(user_id="orchestrator"))  # the default user name is trusted by default
        await obeyed_default._handle_command(command, envelope)
    finally:
        CURRENT_DELIVERY.reset(token)
    assert agent.halted
    assert obeyed_default.halted
    assert len(acks) == 2


async def _orchestrator(bus: InMemoryBus, clock: SimulatedClock, store: InMemoryIntentStore):
    from agents.orchestrator.agent import OrchestratorAgent

    settings = OrchestratorSettings(api_enabled=False, check_interval_s=60)
    orch = OrchestratorAgent(context(bus, clock, "orchestrator-1"), settings, intent_store=store)
    await orch.start()
    return orch


def _halted(agent: Obedient) -> bool:
    """Read through a call: mypy would narrow the attribute after an assert on it."""
    return agent.halted


async def _beat(agent: Obedient, clock: SimulatedClock) -> None:
    await agent.publish(agent.heartbeat(clock, T0))


async def test_the_intent_is_saved_before_publishing_and_restored_by_a_new_orchestrator(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    store = InMemoryIntentStore()
    orch = await _orchestrator(bus, clock, store)
    agents = await obedient_agents(bus, clock)
    for agent in agents:
        await _beat(agent, clock)
    view = await orch.issue("halt", reason="drill")
    assert store.intent is not None
    assert (store.intent.mode, str(store.intent.command_id)) == (TradingMode.HALTED, str(view.command_id))
    await orch.stop()
    # A new orchestrator process, and agents that restarted un-halted meanwhile: the saved intent, not
    # their heartbeats, says what trading should be.
    other = InMemoryBus()
    await other.start()
    again = await _orchestrator(other, clock, store)
    assert again.health().trading_intended == "halted"
    restarted = await obedient_agents(other, clock)
    clock.advance(timedelta(seconds=1))
    for agent in restarted:
        await _beat(agent, clock)
    assert all(agent.halted for agent in restarted)  # first sight of an un-halted agent: halted again at once
    assert again.health().trading == "halted"
    await again.stop()
    await other.close()


async def test_an_agent_forced_active_is_halted_again_and_alerted(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    alerts = await _alerts(bus)
    orch = await _orchestrator(bus, clock, InMemoryIntentStore())
    agents = await obedient_agents(bus, clock)
    for agent in agents:
        await _beat(agent, clock)
    await orch.issue("halt", reason="drill")
    execution = next(a for a in agents if a.kind == "execution")
    assert orch.health().trading == "halted"
    clock.advance(timedelta(seconds=10))
    for agent in agents:  # the heartbeats go on
        await _beat(agent, clock)
    assert orch.health().trading == "halted"
    # forced ACTIVE behind the orchestrator's back (no command the orchestrator issued)
    execution.halted = False
    await _beat(execution, clock)
    health = orch.health()
    assert (health.trading, health.trading_intended, health.disagreeing) == ("mixed", "halted", ["execution-1"])
    assert not execution.halted  # one heartbeat may predate a command: two in a row are needed
    clock.advance(timedelta(seconds=1))
    await _beat(execution, clock)
    assert _halted(execution)  # commanded again
    again = orch.book.last(CommandKind.HALT)
    assert again is not None
    assert again.command.target == "execution"
    assert [(a.severity, a.code) for a in alerts if a.code == STATE_MISMATCH_CODE] == [
        (Severity.CRITICAL, STATE_MISMATCH_CODE)
    ]
    clock.advance(timedelta(seconds=1))
    await _beat(execution, clock)
    assert orch.health().trading == "halted"
    assert orch.health().disagreeing == []
    await orch.stop()


async def test_an_acknowledged_resume_it_did_not_issue_is_undone_at_once(bus: InMemoryBus) -> None:
    """A RESUME sent to one agent with the orchestrator's own credentials (an operator's script, a
    replayed message): the agent's acknowledgement alone triggers the HALT again."""
    clock = SimulatedClock(T0)
    alerts = await _alerts(bus)
    orch = await _orchestrator(bus, clock, InMemoryIntentStore())
    agents = await obedient_agents(bus, clock)
    for agent in agents:
        await _beat(agent, clock)
    await orch.issue("halt", reason="drill")
    clock.advance(timedelta(seconds=10))
    for agent in agents:
        await _beat(agent, clock)
    strategy = next(a for a in agents if a.kind == "strategy")
    resume = Command(command_id=uuid.uuid4(), kind=CommandKind.RESUME, target="strategy", issued_by="someone")
    await orch.publish(resume)  # the orchestrator's bus user, but not issued through its book
    assert strategy.halted  # resumed, acknowledged, and halted again by the reconciliation
    assert strategy.commands[-2:] == [CommandKind.RESUME, CommandKind.HALT]
    assert any(a.code == STATE_MISMATCH_CODE and a.severity is Severity.CRITICAL for a in alerts)
    await orch.stop()


async def test_an_agent_halted_while_trading_is_active_is_reported_not_resumed(bus: InMemoryBus) -> None:
    clock = SimulatedClock(T0)
    orch = await _orchestrator(bus, clock, InMemoryIntentStore())
    agents = await obedient_agents(bus, clock)
    await orch.issue("resume", reason="start")
    execution = next(a for a in agents if a.kind == "execution")
    execution.halted = True  # e.g. its kill switch restored from its own store
    for agent in agents:
        await _beat(agent, clock)
    clock.advance(timedelta(seconds=10))
    await _beat(execution, clock)
    clock.advance(timedelta(seconds=1))
    await _beat(execution, clock)
    assert execution.halted
    assert CommandKind.RESUME not in execution.commands[1:]
    health = orch.health()
    assert (health.trading, health.trading_intended, health.disagreeing) == ("mixed", "active", ["execution-1"])
    await orch.stop()
