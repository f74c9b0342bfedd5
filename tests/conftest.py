"""Shared fixtures: real local services, each test isolated in its own vhost / database.

Integration fixtures FAIL (they never skip) when a service is missing: CI must not go green by
skipping the tests that matter. Set ``TRADESWARM_TEST_RABBIT_URL`` / ``TRADESWARM_TEST_POSTGRES_URL``
/ ``TRADESWARM_TEST_INFLUX_URL`` to point them elsewhere than the loopback defaults.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import quote

import pytest

from core.ports import Bus
from infrastructure.database.influx import InfluxV1Store
from infrastructure.messaging.memory import InMemoryBus
from tests.fakellm import FakeLLM
from tests.private_services import PrivatePostgres

RABBIT_BASE = os.environ.get("TRADESWARM_TEST_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672")
POSTGRES_BASE = os.environ.get("TRADESWARM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
INFLUX_URL = os.environ.get("TRADESWARM_TEST_INFLUX_URL", "http://127.0.0.1:8086")


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``rabbitmqctl`` (fails the test with its output when it fails)."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        pytest.fail("rabbitmqctl is not installed: the RabbitMQ integration tests need the local broker")
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


@pytest.fixture
def rabbit_vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost for one test (deleted afterwards)."""
    vhost = f"ts-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost
    rabbitmqctl("delete_vhost", vhost, check=False)


@pytest.fixture
def rabbit_url(rabbit_vhost: str) -> str:
    """An AMQP URL to a fresh vhost on the local broker."""
    return f"{RABBIT_BASE}/{quote(rabbit_vhost, safe='')}"


@pytest.fixture
async def postgres_dsn() -> AsyncIterator[str]:
    """A DSN of a fresh PostgreSQL database for one test (dropped afterwards)."""
    import asyncpg

    name = f"ts_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(f"{POSTGRES_BASE}/postgres", timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_BASE}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{POSTGRES_BASE}/{name}"
    admin = await asyncpg.connect(f"{POSTGRES_BASE}/postgres", timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started PostgreSQL cluster of the test's own, to restart at will (removed afterwards).

    For tests that restart or stop the server: the shared cluster on 5432 is never touched. FAILS
    (never skips) when the PostgreSQL server binaries (``initdb``, ``pg_ctl``) are missing.
    """
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
async def influx_store() -> AsyncIterator[InfluxV1Store]:
    """A started InfluxDB 1.x tick store on a database of its own (dropped afterwards)."""
    import aiohttp

    try:
        async with aiohttp.ClientSession() as session, session.get(f"{INFLUX_URL}/ping") as resp:
            if resp.status != 204:
                pytest.fail(f"InfluxDB at {INFLUX_URL} answered /ping with {resp.status}")
    except aiohttp.ClientError as exc:
        pytest.fail(f"InfluxDB is not reachable at {INFLUX_URL} (run scripts/install_influxdb.sh): {exc}")
    store = InfluxV1Store(INFLUX_URL, f"ts_test_{uuid.uuid4().hex[:12]}")
    await store.start()
    yield store
    await store.drop_database()
    await store.close()


BusFactory = Callable[[], Awaitable[Bus]]


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Makes started buses of one kind (parametrised: in-memory and real RabbitMQ); closes them after.

    Every bus made by one factory shares the same broker (vhost), like agents of one swarm.
    """
    made: list[Bus] = []
    if request.param == "memory":
        shared = InMemoryBus()

        async def make() -> Bus:
            if not made:
                await shared.start()
                made.append(shared)
            return shared

    else:
        url = request.getfixturevalue("rabbit_url")
        from infrastructure.messaging.rabbitmq import RabbitMQBus

        async def make() -> Bus:
            bus = RabbitMQBus(url, connection_name=f"test-{len(made)}")
            await bus.start()
            made.append(bus)
            return bus

    yield make
    for bus in reversed(made):
        await asyncio.wait_for(bus.close(), timeout=30)


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """A started fake OpenAI-compatible server on loopback (``tests/fakellm``); closed afterwards.

    Point a client at ``fake_llm.base_url`` with the key ``fake_llm.api_key``; queue failures with
    ``fake_llm.enqueue(malformed(), rate_limited(2), ...)``.
    """
    fake = await FakeLLM().start()
    yield fake
    await fake.close()
