"""Several stacks on one broker (issue 17): broker users are per vhost, never shared or reset.

RabbitMQ users are global to a node. The definitions name an agent's user after the vhost they are
applied to (``<kind>@<vhost>`` outside ``paper``/``live``), and ``broker apply`` refuses to take
over a user that has permissions on another vhost. Proved here with two real multi-process stacks
(``tradeswarm stack up``) on two vhosts of the shared broker, started one after the other with the
SAME user prefix and their own generated passwords: the first stack's agents still log in (a killed
one is restarted and gets ready again) after the second applied its definitions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import aio_pika
import asyncpg
import orjson
import pytest

from core.errors import ConfigurationError
from infrastructure.messaging.definitions import build_definitions, user_name
from tests.conftest import POSTGRES_BASE, RABBIT_BASE, rabbitmqctl
from tests.stackkit import StackHandle, launch_stack
from tradeswarm import stack
from tradeswarm.broker import apply, swarm_topology

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

AGENTS = "orchestrator,compliance"


@pytest.fixture
def two_vhosts() -> Iterator[tuple[str, str]]:
    """Two fresh vhosts (deleted afterwards)."""
    names = tuple(f"chaos-two-{uuid.uuid4().hex[:10]}" for _ in range(2))
    for vhost in names:
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield names[0], names[1]
    for vhost in names:
        rabbitmqctl("delete_vhost", vhost, check=False)


@pytest.fixture
async def two_databases() -> AsyncIterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases (dropped afterwards)."""
    names = [f"chaos_two_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = await asyncpg.connect(f"{POSTGRES_BASE}/postgres", timeout=10)
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{POSTGRES_BASE}/{names[0]}", f"{POSTGRES_BASE}/{names[1]}"
    admin = await asyncpg.connect(f"{POSTGRES_BASE}/postgres", timeout=10)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _secrets(s: StackHandle) -> dict[str, str]:
    loaded: dict[str, str] = orjson.loads((s.run_dir / "secrets.json").read_bytes())
    return loaded


async def _can_open(user: str, password: str, vhost: str) -> bool:
    host = RABBIT_BASE.split("@", 1)[1]
    url = f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}/{quote(vhost, safe='')}"
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except Exception:  # ACCESS_REFUSED / not_allowed, whatever the client calls it
        return False
    await connection.close()
    return True


async def test_two_stacks_on_two_vhosts_run_side_by_side(
    two_vhosts: tuple[str, str], two_databases: tuple[str, str], tmp_path: Path
) -> None:
    prefix = f"c{uuid.uuid4().hex[:6]}_"
    (vhost_a, vhost_b), (dsn_a, dsn_b) = two_vhosts, two_databases
    up = ("--agents", AGENTS)
    async with (
        launch_stack(vhost_a, dsn_a, tmp_path / "a", prefix=prefix, up_args=up) as a,
        launch_stack(vhost_b, dsn_b, tmp_path / "b", prefix=prefix, up_args=up) as b,
    ):
        secrets_a, secrets_b = _secrets(a), _secrets(b)
        for kind in AGENTS.split(","):
            user_a, user_b = a.user(kind), b.user(kind)
            assert (user_a, user_b) == (f"{prefix}{kind}@{vhost_a}", f"{prefix}{kind}@{vhost_b}")
            assert secrets_a[user_a] != secrets_b[user_b]
            # the first stack's credentials survived the second stack's apply ...
            assert await _can_open(user_a, secrets_a[user_a], vhost_a)
            assert await _can_open(user_b, secrets_b[user_b], vhost_b)
            # ... and neither opens the other's vhost
            assert not await _can_open(user_a, secrets_a[user_a], vhost_b)
            assert not await _can_open(user_b, secrets_b[user_b], vhost_a)
        # an agent of the first stack, killed, logs in again with its own password
        killed = a.kill9("compliance")
        await a.wait(lambda: a.state().agents["compliance"].pid not in (None, killed), 60, "compliance restarted")
        await a.wait(lambda: stack.probe(a.state().agents["compliance"].http_port), 90, "compliance ready again")
        assert stack.probe(b.state().agents["compliance"].http_port)
        assert a.state().agents["compliance"].restarts >= 1


def test_apply_refuses_to_take_over_a_user_of_another_vhost(two_vhosts: tuple[str, str]) -> None:
    """A user that already has permissions on another vhost keeps its password and permissions."""
    vhost_a, vhost_b = two_vhosts
    prefix = f"c{uuid.uuid4().hex[:6]}_"
    doc = build_definitions(swarm_topology()[:1], vhosts=["paper"], user_prefix=prefix)
    taken = user_name("data_collection", vhost_b, prefix)  # the name vhost_b's apply will use
    try:
        rabbitmqctl("add_user", taken, "first-password")
        rabbitmqctl("set_permissions", "-p", vhost_a, taken, ".*", ".*", ".*")
        with pytest.raises(ConfigurationError, match=f"already has permissions on vhost.*{vhost_a}"):
            apply(vhost_b, source_vhost="paper", definitions=doc, passwords={taken: "second-password"}, env={})
        assert rabbitmqctl("authenticate_user", taken, "first-password", check=False).returncode == 0
        listed = rabbitmqctl("list_user_permissions", "-q", "--no-table-headers", taken).stdout.split()
        assert vhost_b not in listed
    finally:
        rabbitmqctl("delete_user", taken, check=False)
