"""The broker's limits (issues #19, #20), on real RabbitMQ:

* the message size: the shipped broker configuration allows exactly the agents' limit (256 KiB), so a
  bigger body is refused by the broker at publish — tested on a private node started with the very
  ``max_message_size`` line of ``docker/rabbitmq/rabbitmq.conf`` — and never stored, let alone copied
  into a dead-letter queue;
* the queue length cap: every agent queue has ``x-max-length``; past it the oldest message goes to the
  dead-letter queue (reason ``maxlen``), nothing vanishes; the alert rules watch the same cap;
* the shipped management UI user (``docker/rabbitmq/set-passwords.sh``, run against a private node
  loaded with the shipped ``definitions.json``) watches but cannot publish on any agent's routing key,
  nor into an agent queue through the default exchange, nor consume one.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
import yaml
from aiormq.exceptions import AMQPError

from core import routing
from core.clock import WallClock
from core.messages import Envelope
from core.messages.codec import DEFAULT_MAX_MESSAGE_BYTES, JsonCodec
from core.ports import QueueSpec
from core.settings import Settings
from infrastructure.messaging import rabbitmq_topology as topology
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.control.data import approved_order
from tests.factories import candle
from tests.stackkit import PrivateBroker, start_private_broker

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
CONFS = [ROOT / "docker/rabbitmq/rabbitmq.conf", ROOT / "k8s/base/backends/rabbitmq/rabbitmq.conf"]
SCRIPTS = [ROOT / "docker/rabbitmq/set-passwords.sh", ROOT / "k8s/base/backends/rabbitmq/set-passwords.sh"]


def _max_message_line(path: Path) -> str:
    (line,) = [line for line in path.read_text().splitlines() if line.startswith("max_message_size")]
    return line


def test_the_broker_and_the_agents_share_one_message_size_limit() -> None:
    for conf in CONFS:
        assert int(_max_message_line(conf).split("=")[1]) == DEFAULT_MAX_MESSAGE_BYTES == Settings().max_message_bytes
    assert CONFS[0].read_text() == CONFS[1].read_text()


@pytest.mark.slow
async def test_an_oversized_body_is_refused_by_the_broker_and_lands_nowhere(tmp_path: Path) -> None:
    broker = start_private_broker(tmp_path / "rabbitmq", _max_message_line(CONFS[0]))
    try:
        url = broker.url()
        # a publisher whose own codec would let it through (a foreign client, a misconfigured agent)
        publisher = RabbitMQBus(url, connection_name="big", codec=JsonCodec(max_message_bytes=4 * 1024 * 1024))
        consumer = RabbitMQBus(url, connection_name="consumer")
        await publisher.start()
        await consumer.start()
        handled: list[Envelope] = []

        async def handler(envelope: Envelope) -> None:
            handled.append(envelope)

        try:
            await consumer.subscribe(QueueSpec("execution.size", ("market.#",)), handler)
            fits = b"x" * (DEFAULT_MAX_MESSAGE_BYTES - 1000)
            await publisher.publish_raw("market.candle.binance.BTC-USDT.1h", b'{"pad":"' + fits + b'"}')
            with pytest.raises((AMQPError, ConnectionError, Exception), match="(?i)max size|precondition|larger"):
                await publisher.publish_raw("market.candle.binance.BTC-USDT.1h", b"y" * (DEFAULT_MAX_MESSAGE_BYTES + 1))
            # the first (invalid JSON, within the size) was delivered and dead-lettered: the oversized one never
            letters = []
            for _ in range(100):
                letters = list(await consumer.dead_letters("execution.size"))
                if letters:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            letters = list(await consumer.dead_letters("execution.size"))
            assert len(letters) == 1
            assert len(letters[0].body) <= DEFAULT_MAX_MESSAGE_BYTES
            queues = broker.ctl("list_queues", "-q", "name", "messages").stdout.decode()
            assert re.search(r"^execution\.size\t0$", queues, re.M), queues
        finally:
            await consumer.close()
            await publisher.close()
    finally:
        broker.stop()


async def test_agents_refuse_to_send_an_oversized_message(rabbit_url: str) -> None:
    """The sending side of the same limit: the agent's bus refuses before anything reaches the broker."""
    from core.domain import Severity
    from core.errors import MessageTooLarge
    from core.messages import RiskAlert

    bus = RabbitMQBus(rabbit_url, connection_name="sender", codec=JsonCodec(max_message_bytes=1024))
    await bus.start()
    try:
        alert = RiskAlert(severity=Severity.WARNING, code="test", message="z" * 2000)
        with pytest.raises(MessageTooLarge, match="over the 1024 limit"):
            await bus.publish(Envelope.wrap(alert, source="risk-1", clock=WallClock()))
    finally:
        await bus.close()


async def test_a_full_queue_dead_letters_its_oldest_messages(rabbit_url: str) -> None:
    bus = RabbitMQBus(rabbit_url, connection_name="cap", max_queue_length=3)
    await bus.start()
    try:
        spec = QueueSpec("execution.capped", ("market.#",))
        await bus.declare(spec)
        clock = WallClock()
        sent = [Envelope.wrap(candle(i), source="test", clock=clock) for i in range(5)]
        for envelope in sent:
            await bus.publish(envelope)
        letters = []
        for _ in range(100):
            letters = list(await bus.dead_letters("execution.capped"))
            if len(letters) == 2:
                break
            await asyncio.sleep(0.05)
        codec = JsonCodec()
        assert [codec.decode(letter.body).message_id for letter in letters] == [e.message_id for e in sent[:2]]
        assert {letter.reason for letter in letters} == {"broker dead-lettered it: maxlen"}
        vhost = rabbit_url.rsplit("/", 1)[1]
        from tests.conftest import rabbitmqctl

        line = ""
        for _ in range(40):  # the broker refreshes quorum queue counters every few seconds
            queues = rabbitmqctl("list_queues", "-q", "-p", vhost, "name", "messages", "arguments").stdout
            line = next(q for q in queues.splitlines() if q.startswith("execution.capped\t"))
            if line.split("\t")[1] == "3":
                break
            await asyncio.sleep(0.5)
        assert line.split("\t")[1] == "3", line
        assert "x-max-length" in line
        assert "drop-head" in line
    finally:
        await bus.close()


def test_every_agent_queue_is_capped_and_the_alerts_watch_the_same_cap() -> None:
    from tradeswarm.broker import render_definitions

    doc = yaml.safe_load(render_definitions())
    agent_queues = [q for q in doc["queues"] if not q["name"].endswith(".dlq")]
    assert agent_queues
    for queue in agent_queues:
        assert queue["arguments"]["x-max-length"] == routing.DEFAULT_MAX_QUEUE_LENGTH
        assert queue["arguments"]["x-overflow"] == topology.OVERFLOW == "drop-head"
        assert queue["arguments"]["x-dead-letter-exchange"] == routing.DEAD_LETTER_EXCHANGE
    rules = yaml.safe_load((ROOT / "docker/prometheus/rules/tradeswarm.yml").read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert by_name["TradeswarmQueueOverflowing"]["expr"].endswith(f">= {routing.DEFAULT_MAX_QUEUE_LENGTH}")
    assert by_name["TradeswarmQueueNearCapacity"]["expr"].endswith(f"> {int(routing.DEFAULT_MAX_QUEUE_LENGTH * 0.8)}")


# --------------------------------------------------------------------------- the admin user


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A private node with the shipped definitions and set-passwords.sh applied (as the container does)."""
    broker = start_private_broker(tmp_path / "rabbitmq")
    try:
        broker.ctl("import_definitions", str(ROOT / "docker/rabbitmq/definitions.json"))
        env = {
            **broker.env,
            "PATH": f"{broker.ctl_wrapper(tmp_path / 'bin')}:{os.environ['PATH']}",
            "RABBITMQ_ADMIN_USER": "admin",
            "RABBITMQ_ADMIN_PASSWORD": "admin-secret",
            "RABBITMQ_PASSWORD_COMPLIANCE": "compliance-secret",
        }
        done = subprocess.run(
            ["sh", str(SCRIPTS[0])], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "monitoring only" in done.stdout
        yield broker
    finally:
        broker.stop()


async def _publish_confirmed(
    connection: aio_pika.abc.AbstractConnection, exchange: str, key: str, body: bytes, user_id: str | None = None
) -> None:
    """Publish and wait for the broker's answer (a refusal closes the channel: raised here)."""
    channel = await connection.channel(publisher_confirms=True)
    target = channel.default_exchange if exchange == "" else await channel.get_exchange(exchange, ensure=False)
    await target.publish(aio_pika.Message(body, user_id=user_id), routing_key=key)


async def _get_one(connection: aio_pika.abc.AbstractConnection, queue_name: str) -> object:
    channel = await connection.channel()
    queue = await channel.get_queue(queue_name, ensure=False)
    return await queue.get(fail=False)


@pytest.mark.slow
async def test_the_shipped_ui_user_cannot_publish_on_agents_routing_keys(shipped_broker: PrivateBroker) -> None:
    assert SCRIPTS[0].read_text() == SCRIPTS[1].read_text()
    users = shipped_broker.ctl("list_users", "-q").stdout.decode()
    assert re.search(r"^admin\t\[monitoring\]$", users, re.M), users
    forged = Envelope.wrap(approved_order(0), source="compliance-1", clock=WallClock())
    body = JsonCodec().encode(forged)
    connection = await aio_pika.connect(shipped_broker.url("paper", "admin", "admin-secret"))
    try:
        for key in ("order.approved.binance.BTC-USDT", "control.command.all", "execution.fill.binance.BTC-USDT"):
            with pytest.raises(Exception, match="ACCESS_REFUSED"):
                await _publish_confirmed(connection, routing.EXCHANGE, key, body)
        # nor straight into the executor's queue through the default exchange, nor consume it
        with pytest.raises(Exception, match="ACCESS_REFUSED"):
            await _publish_confirmed(connection, "", "execution.orders", body)
        with pytest.raises(Exception, match="ACCESS_REFUSED"):
            await _get_one(connection, "execution.orders")
        channel = await connection.channel()
        dlq = await channel.get_queue("execution.orders.dlq", ensure=False)
        assert await dlq.get(fail=False) is None  # reading dead letters (inspection) is allowed
    finally:
        await connection.close()
    # the compliance user still publishes approved orders (the permissions are not simply closed)
    connection = await aio_pika.connect(shipped_broker.url("paper", "compliance", "compliance-secret"))
    try:
        await _publish_confirmed(connection, routing.EXCHANGE, "order.approved.binance.BTC-USDT", body, "compliance")
    finally:
        await connection.close()
    queues = ""
    for _ in range(40):  # the broker refreshes quorum queue counters every few seconds
        queues = shipped_broker.ctl("list_queues", "-q", "-p", "paper", "name", "messages").stdout.decode()
        if re.search(r"^execution\.orders\t1$", queues, re.M):
            break
        await asyncio.sleep(0.5)
    assert re.search(r"^execution\.orders\t1$", queues, re.M), queues  # only compliance's message arrived
