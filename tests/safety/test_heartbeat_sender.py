"""Heartbeats and command acknowledgements are sender-checked: the orchestrator takes one only when the
broker-verified sender (AMQP ``user_id``) is the broker user of the agent kind it claims (or its own
user, shared on a development broker). Any other is dead-lettered with the reason before it touches
the registry or the command book, and raises a critical ``forged_heartbeat`` / ``forged_ack`` alert —
on the in-memory bus (the delivery's sender set as the RabbitMQ bus sets it) and on the real RabbitMQ
with one broker user per agent.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from agents.orchestrator.agent import FORGED_ACK_CODE, FORGED_HEARTBEAT_CODE, OrchestratorAgent
from agents.orchestrator.settings import OrchestratorSettings
from core import routing
from core.clock import SimulatedClock
from core.domain import CommandKind, Severity
from core.messages import CommandAck, Envelope, RiskAlert
from core.ports import Bus, QueueSpec
from core.routing import ALERTS
from core.settings import Settings
from infrastructure.messaging.definitions import build_definitions, user_name, vhost_user
from infrastructure.messaging.memory import InMemoryBus
from infrastructure.messaging.rabbitmq import RabbitMQBus
from infrastructure.messaging.sender import CURRENT_DELIVERY, AgentSenders, Delivery
from tests.conftest import RABBIT_BASE, rabbitmqctl
from tests.control.helpers import SETTINGS, Obedient, context
from tests.factories import T0, eventually, eventually_async
from tradeswarm.broker import apply, delete_users, swarm_topology

HEARTBEATS_QUEUE = "orchestrator.heartbeats"
ACKS_QUEUE = "orchestrator.acks"


def _settings(rabbitmq_url: str) -> Settings:
    return SETTINGS.model_copy(update={"rabbitmq_url": SecretStr(rabbitmq_url)})


async def _orchestrator(bus: Bus, clock: SimulatedClock, rabbitmq_url: str) -> OrchestratorAgent:
    orch = OrchestratorAgent(
        context(bus, clock, "orchestrator-1", _settings(rabbitmq_url)),
        OrchestratorSettings(api_enabled=False, check_interval_s=60),
    )
    await orch.start()
    return orch


def _heartbeat(bus: Bus, clock: SimulatedClock, kind: str, agent_id: str) -> Envelope:
    agent = Obedient(context(bus, clock, agent_id), kind)
    return Envelope.wrap(agent.heartbeat(clock, T0), source=agent_id, clock=clock)


def _halt_ack(clock: SimulatedClock, kind: str, agent_id: str, source: str) -> Envelope:
    ack = CommandAck(command_id=uuid.uuid4(), kind=CommandKind.HALT, agent_id=agent_id, agent_kind=kind)
    return Envelope.wrap(ack, source=source, clock=clock)


async def _publish_as(bus: InMemoryBus, envelope: Envelope, sender: str | None) -> None:
    """Publish as if the broker had verified ``sender`` (the delivery's ``user_id``, as RabbitMQ sets it)."""
    token = CURRENT_DELIVERY.set(Delivery(user_id=sender))
    try:
        await bus.publish(envelope)
    finally:
        CURRENT_DELIVERY.reset(token)


async def _alerts(bus: Bus) -> list[RiskAlert]:
    seen: list[RiskAlert] = []

    async def collect(envelope: Envelope) -> None:
        assert isinstance(envelope.payload, RiskAlert)
        seen.append(envelope.payload)

    await bus.subscribe(QueueSpec("test.alerts", (ALERTS.all(),)), collect)
    return seen


def test_the_users_that_may_speak_for_an_agent_kind() -> None:
    standard = AgentSenders.of("amqp://orchestrator:pw@127.0.0.1:5672/paper", "orchestrator")
    assert standard.users("execution") == {"execution", "orchestrator"}
    live = AgentSenders.of("amqp://orchestrator_live:pw@127.0.0.1:5672/live", "orchestrator")
    assert live.users("risk") == {"risk_live", "orchestrator_live"}
    # a stack on its own vhost with a user prefix (tradeswarm stack up): the prefix is the orchestrator's
    stack = AgentSenders.of("amqp://s1_orchestrator%40chaos:pw@127.0.0.1:5672/chaos", "orchestrator")
    assert stack.users("risk") == {"s1_risk@chaos", "s1_orchestrator@chaos"}
    # a development broker where every agent is guest: guest (the broker cannot tell agents apart)
    assert "guest" in AgentSenders.of("amqp://guest:guest@127.0.0.1:5672/", "orchestrator").users("risk")


async def test_a_heartbeat_from_another_user_is_dead_lettered_on_the_in_memory_bus() -> None:
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(T0)
    try:
        alerts = await _alerts(bus)
        orch = await _orchestrator(bus, clock, "amqp://orchestrator:pw@127.0.0.1:5672/paper")
        forged = _heartbeat(bus, clock, "execution", "execution-1")
        # what the broker verified: another agent's user, an administrator, no user_id at all
        for sender in ("risk", "guest", None):
            await _publish_as(bus, forged, sender)
        dead = await bus.dead_letters(HEARTBEATS_QUEUE)
        claim = "heartbeat of execution agent 'execution-1'"
        assert [d.reason for d in dead] == [
            f"{claim} sent by broker user 'risk', not by that agent's user (execution, orchestrator)",
            f"{claim} sent by broker user 'guest', not by that agent's user (execution, orchestrator)",
            f"{claim} has no broker-verified sender (no user_id): refused",
        ]
        assert orch.registry.records() == []  # none touched the registry
        assert [(a.severity, a.code) for a in alerts] == [(Severity.CRITICAL, FORGED_HEARTBEAT_CODE)] * 3

        await _publish_as(bus, forged, "execution")  # the claimed agent's own user
        assert [r.agent_id for r in orch.registry.records()] == ["execution-1"]
        await bus.publish(_heartbeat(bus, clock, "risk", "risk-1"))  # no verifying bus: nothing to check
        assert [r.agent_id for r in orch.registry.records()] == ["execution-1", "risk-1"]
        assert len(await bus.dead_letters(HEARTBEATS_QUEUE)) == 3
        await orch.stop()
    finally:
        await bus.close()


async def test_an_acknowledgement_from_another_user_is_dead_lettered_on_the_in_memory_bus() -> None:
    """A forged "halted" must not count an agent as halted: refused before the command book sees it."""
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(T0)
    try:
        alerts = await _alerts(bus)
        orch = await _orchestrator(bus, clock, "amqp://orchestrator:pw@127.0.0.1:5672/paper")
        forged = _halt_ack(clock, "execution", "execution-1", "execution-1")
        for sender in ("risk", "guest", None):
            await _publish_as(bus, forged, sender)
        claim = "halt acknowledgement of execution agent 'execution-1'"
        assert [d.reason for d in await bus.dead_letters(ACKS_QUEUE)] == [
            f"{claim} sent by broker user 'risk', not by that agent's user (execution, orchestrator)",
            f"{claim} sent by broker user 'guest', not by that agent's user (execution, orchestrator)",
            f"{claim} has no broker-verified sender (no user_id): refused",
        ]
        assert orch.reported_by_acks() == {}  # not counted as halted
        assert [(a.severity, a.code) for a in alerts] == [(Severity.CRITICAL, FORGED_ACK_CODE)] * 3
        await _publish_as(bus, forged, "execution")  # the agent's own user
        assert orch.reported_by_acks() == {"execution-1": (True, False)}
        await orch.stop()
    finally:
        await bus.close()


@pytest.fixture
def agent_users(rabbit_vhost: str) -> Iterator[dict[str, str]]:
    """The paper definitions applied to the test's vhost with prefixed users: agent kind -> AMQP URL."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    doc = build_definitions(swarm_topology(), vhosts=["paper"], user_prefix=prefix)
    passwords = {vhost_user(u["name"], "paper", rabbit_vhost): uuid.uuid4().hex for u in doc["users"]}
    host = RABBIT_BASE.split("@", 1)[1]
    try:
        apply(rabbit_vhost, source_vhost="paper", definitions=doc, passwords=passwords, env={})
        urls = {}
        for kind in ("orchestrator", "risk", "execution"):
            user = user_name(kind, rabbit_vhost, prefix)
            urls[kind] = f"amqp://{quote(user, safe='')}:{passwords[user]}@{host}/{quote(rabbit_vhost, safe='')}"
        yield urls
    finally:
        listed = rabbitmqctl("list_users", "-q", "--no-table-headers").stdout.splitlines()
        delete_users([line.split("\t")[0] for line in listed if line.startswith(prefix)])


@pytest.fixture
async def buses(agent_users: dict[str, str], rabbit_url: str) -> AsyncIterator[dict[str, RabbitMQBus]]:
    """A started bus per broker user (``guest`` has every permission on the vhost, like an administrator)."""
    made = {kind: RabbitMQBus(url, connection_name=f"{kind}-1") for kind, url in agent_users.items()}
    made["guest"] = RabbitMQBus(rabbit_url, connection_name="intruder")
    try:
        for bus in made.values():
            await bus.start()
        yield made
    finally:
        for bus in made.values():
            await bus.close()


@pytest.mark.integration
async def test_a_heartbeat_from_another_user_is_dead_lettered_on_rabbitmq(
    agent_users: dict[str, str], buses: dict[str, RabbitMQBus]
) -> None:
    clock = SimulatedClock(T0)
    orch = await _orchestrator(buses["orchestrator"], clock, agent_users["orchestrator"])
    try:
        # risk's user may publish only under control.heartbeat.risk.*: a body claiming execution there
        as_risk = _heartbeat(buses["risk"], clock, "execution", "execution-7")
        await buses["risk"].publish(as_risk, routing.HEARTBEATS.key(agent_kind="risk", agent_id="risk-1"))
        # guest may publish anywhere on the vhost, but the broker stamps its own user on it
        await buses["guest"].publish(_heartbeat(buses["guest"], clock, "execution", "execution-9"))
        await buses["execution"].publish(_heartbeat(buses["execution"], clock, "execution", "execution-1"))

        async def two_dead_letters() -> bool:
            return len(await buses["orchestrator"].dead_letters(HEARTBEATS_QUEUE)) >= 2

        await eventually(lambda: orch.registry.get("execution-1") is not None, timeout=30)
        await eventually_async(two_dead_letters, timeout=30, interval=0.1)
        dead = await buses["orchestrator"].dead_letters(HEARTBEATS_QUEUE)
    finally:
        await orch.stop()
    risk_user = user_name("risk", _vhost(agent_users), _prefix(agent_users))
    reasons = sorted(d.reason for d in dead)
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("heartbeat of execution agent 'execution-7' sent by broker user " + repr(risk_user))
    assert reasons[1].startswith("heartbeat of execution agent 'execution-9' sent by broker user 'guest'")
    assert all("not by that agent's user" in r for r in reasons)
    assert [r.agent_id for r in orch.registry.records()] == ["execution-1"]  # only the genuine one


def _vhost(urls: dict[str, str]) -> str:
    return AgentSenders.of(urls["orchestrator"], "orchestrator").vhost


def _prefix(urls: dict[str, str]) -> str:
    return AgentSenders.of(urls["orchestrator"], "orchestrator").prefix


@pytest.mark.integration
async def test_an_acknowledgement_from_another_user_is_dead_lettered_on_rabbitmq(
    agent_users: dict[str, str], buses: dict[str, RabbitMQBus]
) -> None:
    clock = SimulatedClock(T0)
    orch = await _orchestrator(buses["orchestrator"], clock, agent_users["orchestrator"])
    try:
        # risk's user may publish acks only under control.ack.risk.*: a body claiming execution there
        await buses["risk"].publish(
            _halt_ack(clock, "execution", "execution-7", "risk-1"),
            routing.COMMAND_ACKS.key(agent_kind="risk", agent_id="risk-1"),
        )
        await buses["guest"].publish(_halt_ack(clock, "execution", "execution-9", "intruder-1"))
        await buses["execution"].publish(_halt_ack(clock, "execution", "execution-1", "execution-1"))

        async def two_dead_letters() -> bool:
            return len(await buses["orchestrator"].dead_letters(ACKS_QUEUE)) >= 2

        await eventually(lambda: "execution-1" in orch.reported_by_acks(), timeout=30)
        await eventually_async(two_dead_letters, timeout=30, interval=0.1)
        dead = await buses["orchestrator"].dead_letters(ACKS_QUEUE)
    finally:
        await orch.stop()
    risk_user = user_name("risk", _vhost(agent_users), _prefix(agent_users))
    reasons = sorted(d.reason for d in dead)
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith(
        f"halt acknowledgement of execution agent 'execution-7' sent by broker user {risk_user!r}"
    )
    assert reasons[1].startswith("halt acknowledgement of execution agent 'execution-9' sent by broker user 'guest'")
    assert list(orch.reported_by_acks()) == ["execution-1"]  # only the genuine one counts
