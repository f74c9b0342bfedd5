"""Broker definitions: generated from the code, least privilege, enforced by the real RabbitMQ."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from core import routing
from core.clock import SimulatedClock
from core.errors import ConfigurationError, MessageRejected
from core.messages import Envelope
from core.ports import QueueSpec
from infrastructure.messaging.definitions import (
    build_definitions,
    for_vhost,
    user_name,
    vhost_user,
    write_routing_keys,
)
from infrastructure.messaging.rabbitmq import RabbitMQBus
from infrastructure.messaging.sender import CURRENT_DELIVERY, Delivery, require_sender, verified_sender
from tests.conftest import RABBIT_BASE
from tests.control.data import approved_order
from tests.factories import T0, eventually
from tradeswarm.broker import DEFINITIONS_PATH, apply, delete_users, render_definitions, swarm_topology


def _topic_write(doc: dict[str, Any], user: str, vhost: str = "paper") -> re.Pattern[str]:
    (perm,) = [p for p in doc["topic_permissions"] if p["user"] == user and p["vhost"] == vhost]
    assert perm["exchange"] == routing.EXCHANGE
    return re.compile(perm["write"])


def test_committed_definitions_match_the_code() -> None:
    assert DEFINITIONS_PATH.read_bytes() == render_definitions(), "run `tradeswarm broker export`"


def test_only_the_owner_may_publish_each_critical_topic() -> None:
    doc = build_definitions(swarm_topology())
    owners = {
        "order.approved.binance.BTC-USDT": {"compliance"},
        "execution.order.binance.BTC-USDT": {"execution"},
        "execution.fill.binance.BTC-USDT": {"execution"},
        "control.command.all": {"orchestrator"},
        "risk.approved.binance.BTC-USDT": {"risk"},
        # the strategies' and the AI desk's approved decisions; risk, compliance and execution still decide
        "signal.intent.binance.BTC-USDT": {"strategy", "desk"},
        "desk.decision.binance.BTC-USDT": {"desk", "orchestrator"},
        "market.candle.binance.BTC-USDT.1m": {"data_collection"},
    }
    kinds = [t.kind for t in swarm_topology()]
    for key, allowed in owners.items():
        may = {k for k in kinds if _topic_write(doc, k).match(key)}
        assert may == allowed, key
    # Heartbeats and acks: each agent only under its own kind.
    assert _topic_write(doc, "strategy").match("control.heartbeat.strategy.strategy-1")
    assert not _topic_write(doc, "strategy").match("control.heartbeat.execution.execution-1")
    assert not _topic_write(doc, "strategy").match("control.ack.compliance.compliance-1")
    # The live vhost has its own users.
    assert _topic_write(doc, "compliance_live", "live").match("order.approved.binance.BTC-USDT")
    assert not [p for p in doc["permissions"] if p["user"] == "compliance" and p["vhost"] == "live"]


def test_queues_carry_the_bus_arguments_and_no_password_is_committed() -> None:
    doc = build_definitions(swarm_topology())
    orders = [q for q in doc["queues"] if q["name"] == "execution.orders" and q["vhost"] == "paper"]
    assert orders[0]["arguments"] == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": routing.DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": "execution.orders",
        "x-delivery-limit": routing.DEFAULT_DELIVERY_LIMIT,
        "x-max-length": routing.DEFAULT_MAX_QUEUE_LENGTH,
        "x-overflow": "drop-head",
    }
    assert any(
        b["destination"] == "execution.orders" and b["routing_key"] == "order.approved.#" for b in doc["bindings"]
    )
    assert {u["password_hash"] for u in doc["users"]} == {""}
    assert {v["name"] for v in doc["vhosts"]} == {"paper", "live"}
    part = for_vhost(doc, "paper", "elsewhere")
    assert "users" not in part
    assert {q["vhost"] for q in part["queues"]} == {"elsewhere"}


def test_write_regex_is_anchored() -> None:
    pattern = re.compile(write_routing_keys("strategy", (routing.INTENTS,)))
    assert pattern.match("signal.intent.binance.BTC-USDT")
    assert not pattern.match("xsignal.intent.binance.BTC-USDT")
    assert not pattern.match("order.approved.signal.intent.x")


# ---------------------------------------------------------------------------------- real broker


@pytest.fixture
def prefixed_users(rabbit_vhost: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The paper definitions applied to the test vhost, users prefixed so tests never collide."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    doc = build_definitions(swarm_topology(), vhosts=["paper"], user_prefix=prefix)
    passwords = {vhost_user(u["name"], "paper", rabbit_vhost): uuid.uuid4().hex for u in doc["users"]}
    try:
        users = apply(rabbit_vhost, source_vhost="paper", definitions=doc, passwords=passwords, env={})
        assert sorted(users) == sorted(passwords)
        yield prefix, passwords
    finally:
        _delete_users_with(prefix)


def _delete_users_with(prefix: str) -> None:
    from tests.conftest import rabbitmqctl

    listed = rabbitmqctl("list_users", "-q", "--no-table-headers").stdout.splitlines()
    delete_users([line.split("\t")[0] for line in listed if line.startswith(prefix)])


def _url(user: str, password: str, vhost: str) -> str:
    host = RABBIT_BASE.split("@", 1)[1]
    return f"amqp://{user}:{password}@{host}/{quote(vhost, safe='')}"


@pytest.mark.integration
async def test_broker_refuses_a_publish_outside_the_users_topics(
    rabbit_vhost: str, prefixed_users: tuple[str, dict[str, str]]
) -> None:
    prefix, passwords = prefixed_users

    def bus(kind: str) -> RabbitMQBus:
        user = user_name(kind, rabbit_vhost, prefix)
        url = _url(quote(user, safe=""), passwords[user], rabbit_vhost)
        return RabbitMQBus(url, connection_name=f"{kind}-1", startup_timeout_s=5)

    execution, strategy, compliance = bus("execution"), bus("strategy"), bus("compliance")
    guest = RabbitMQBus(
        f"{RABBIT_BASE}/{quote(rabbit_vhost, safe='')}", connection_name="intruder", startup_timeout_s=5
    )
    received: list[tuple[str, Delivery | None]] = []

    async def on_order(envelope: Envelope) -> None:
        received.append((envelope.source, verified_sender()))

    try:
        for b in (execution, strategy, compliance, guest):
            await b.start()
        # The execution user declares its own (predeclared, identical) queue: no PRECONDITION_FAILED.
        await execution.subscribe(QueueSpec("execution.orders", (routing.ORDERS_APPROVED.all(),)), on_order)
        forged = Envelope.wrap(approved_order(0), source="compliance-1", clock=SimulatedClock(T0))
        with pytest.raises(Exception, match="ACCESS_REFUSED"):
            await strategy.publish(forged)
        # The same user may publish what it owns.
        await strategy.publish_raw("signal.intent.binance.BTC-USDT", b"{}")
        # A user may not touch another agent's queue.
        with pytest.raises(Exception, match="ACCESS_REFUSED"):
            await strategy.subscribe(QueueSpec("execution.orders", (routing.ORDERS_APPROVED.all(),)), on_order)
        # Compliance may publish approved orders; execution sees the broker-verified user.
        genuine = Envelope.wrap(approved_order(1), source="compliance-1", clock=SimulatedClock(T0))
        await compliance.publish(genuine)
        # A user with full permissions on the vhost (guest) can publish, but not as someone else.
        await guest.publish(forged)
        await eventually(lambda: len(received) == 2)
    finally:
        for b in (execution, strategy, compliance, guest):
            await b.close()
    assert received == [
        ("compliance-1", Delivery(user_id=user_name("compliance", rabbit_vhost, prefix))),
        ("compliance-1", Delivery(user_id="guest")),
    ]


@pytest.mark.integration
async def test_broker_refuses_a_forged_user_id(rabbit_url: str) -> None:
    """RabbitMQ checks user_id against the connection's user: the sender cannot be faked."""
    import aio_pika

    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(routing.EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        with pytest.raises(Exception, match="PRECONDITION_FAILED"):
            await exchange.publish(aio_pika.Message(b"{}", user_id="compliance"), routing_key="order.approved.x.y")
    finally:
        await connection.close()


def test_require_sender() -> None:
    require_sender({"compliance"})  # no verifying bus: nothing to check
    token = CURRENT_DELIVERY.set(Delivery(user_id="compliance"))
    try:
        require_sender({"compliance"})
        CURRENT_DELIVERY.set(Delivery(user_id="guest"))
        with pytest.raises(MessageRejected, match="broker user 'guest'"):
            require_sender({"compliance"}, "approved order")
        CURRENT_DELIVERY.set(Delivery(user_id=None))
        with pytest.raises(MessageRejected, match="no broker-verified sender"):
            require_sender({"compliance"})
    finally:
        CURRENT_DELIVERY.reset(token)


@pytest.mark.integration
def test_apply_without_password_creates_a_user_that_cannot_log_in(rabbit_vhost: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    doc = build_definitions(swarm_topology()[:1], vhosts=["paper"], user_prefix=prefix)
    try:
        users = apply(rabbit_vhost, source_vhost="paper", definitions=doc, env={})
        from tests.conftest import rabbitmqctl

        out = rabbitmqctl("authenticate_user", user_name("data_collection", rabbit_vhost, prefix), "x", check=False)
        assert out.returncode != 0
        delete_users(users)
        with pytest.raises(ConfigurationError, match="rabbitmqctl delete_user failed"):
            delete_users(users)
    finally:
        _delete_users_with(prefix)


def test_broker_cli_export_and_check(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from tradeswarm.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["broker", "check"]).exit_code == 0
    out = tmp_path / "definitions.json"
    assert runner.invoke(app, ["broker", "export", "--out", str(out)]).exit_code == 0
    assert out.read_bytes() == render_definitions()
    out.write_bytes(out.read_bytes().replace(b"order", b"ordre"))
    stale = runner.invoke(app, ["broker", "check", "--path", str(out)])
    assert stale.exit_code == 1
    assert "out of date" in stale.output
