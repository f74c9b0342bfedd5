"""The System view's queue depths from RabbitMQ's real management API (a private node of the test's
own with the management plugin on: the shared broker on 5672 runs without it), read as a user tagged
``monitoring``, as docker compose configures it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aio_pika
import pytest

from infrastructure.api.queues import management_queue_depths
from tests.factories import free_port
from tests.stackkit import RABBITMQ_BIN, start_private_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_queue_depths_come_from_the_management_api(tmp_path: Path) -> None:
    mport = free_port()
    base = tmp_path / "rabbitmq"
    broker = start_private_broker(
        base, f"management.tcp.port = {mport}\nmanagement.tcp.ip = 127.0.0.1\ncollect_statistics_interval = 500"
    )
    try:
        enabled = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-plugins"), "-n", broker.node, "enable", "--online", "rabbitmq_management"],
            env={**broker.env, "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins")},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert enabled.returncode == 0, enabled.stdout + enabled.stderr
        broker.ctl("add_user", "monitor", "monitor-pw")
        broker.ctl("set_user_tags", "monitor", "monitoring")
        broker.ctl("set_permissions", "-p", "/", "monitor", "^$", "^$", ".*")
        connection = await aio_pika.connect(broker.url())
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("dash.waiting", durable=True)
            for n in range(3):
                await channel.default_exchange.publish(aio_pika.Message(body=b"%d" % n), routing_key=queue.name)
            depths = management_queue_depths(f"http://monitor:monitor-pw@127.0.0.1:{mport}", "/", 5.0)
            view = None
            for _ in range(120):  # the plugin starts, then its statistics catch up
                view = await depths()
                if view.available and any(q.name == "dash.waiting" and q.messages == 3 for q in view.queues):
                    break
                await asyncio.sleep(0.5)
            assert view is not None
            assert view.available, view.message
            waiting = next(q for q in view.queues if q.name == "dash.waiting")
            assert waiting.messages == 3
            assert waiting.consumers == 0
            wrong = await management_queue_depths(f"http://monitor:wrong@127.0.0.1:{mport}", "/", 5.0)()
            assert wrong.available is False
            assert wrong.message == (
                "RabbitMQ's management API answered 401 (check the monitoring user's password and tag)"
            )
    finally:
        broker.stop()
