"""Services restarted under the multi-process stack (issue 17): RabbitMQ, then PostgreSQL.

The stack runs on a PRIVATE RabbitMQ node (``PrivateBroker``: own port, data and cookie; ``stack up``
applies the definitions to it through a ``rabbitmqctl`` wrapper first on PATH) and a PRIVATE
PostgreSQL cluster (``initdb`` + ``pg_ctl`` on a free port): the shared services are never touched.
While the swarm trades replayed real candles:

* **RabbitMQ restarted mid-flow** (``stop_app``/``start_app``: every connection cut, the durable
  quorum queues kept): the agents reconnect and get ready again, and trading goes on (new fills);
* **PostgreSQL restarted** (``pg_ctl restart -m fast``: every connection cut): trading goes on.

Then HALT and the run's invariants (``tests/chaos/invariants.py``): no order lost or duplicated,
fills once, orders equal to the venue's, nothing unacked, positions and cash reconcile, audit chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.run import INITIAL_CASH, STACK_ENV, count, halt_and_check
from tests.chaos.scoreboard import BOARD
from tests.control.data import CSV
from tests.private_services import PrivatePostgres
from tests.stackkit import PrivateBroker, StackHandle, Tap, launch_stack, start_private_broker
from tradeswarm import stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

CANDLES = 900
ENV = STACK_ENV
VHOST = "chaos-services"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A private RabbitMQ node with the stack's vhost."""
    node = start_private_broker(tmp_path / "rabbitmq")
    try:
        node.ctl("add_vhost", VHOST)
        node.ctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
        yield node
    finally:
        node.stop()


def _replay_file(tmp_path: Path) -> Path:
    lines = CSV.read_text().splitlines(keepends=True)
    path = tmp_path / "replay" / CSV.name
    path.parent.mkdir(parents=True)
    path.write_text("".join(lines[: CANDLES + 1]))
    return path


async def test_rabbitmq_and_postgresql_restarted_mid_flow(
    broker: PrivateBroker, private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    dsn = await private_postgres.create_database("chaos")
    ctl_dir = broker.ctl_wrapper(tmp_path / "ctl")
    base = f"amqp://guest:guest@127.0.0.1:{broker.port}"

    def ctl(*args: str) -> str:
        return broker.ctl(*args).stdout.decode()

    mark = len(BOARD.rows)
    tap = await Tap(f"{base}/{VHOST}", ["#"], skip_invalid=True).start()
    try:
        async with launch_stack(
            VHOST, dsn, tmp_path / "stack", env={**ENV, "PATH": f"{ctl_dir}:{_path()}"},
            replay_path=_replay_file(tmp_path), replay_speed=3600 / 0.08, rabbit_base=base,
        ) as s:  # fmt: skip
            await _broker_restart(s, tap, broker)
            await _postgres_restart(s, tap, private_postgres)
            await s.wait(lambda: _all_candles(tap), 300, f"the {CANDLES} candles replayed")
            await halt_and_check(s, tap, INITIAL_CASH, scenario="after the restarts + HALT", ctl=ctl)
    finally:
        await tap.close()
    failed = BOARD.failures(since=mark)
    assert not failed, "\n".join(f"{r.scenario} / {r.invariant}: {r.detail}" for r in failed)


async def _broker_restart(s: StackHandle, tap: Tap, broker: PrivateBroker) -> None:
    scenario = "RabbitMQ restarted mid-flow (private node)"
    await s.wait(lambda: count(tap, "execution.fill."), 180, "a first fill before the restart")
    fills = await count(tap, "execution.fill.")
    broker.ctl("stop_app")
    broker.ctl("start_app")
    await s.wait(lambda: _all_ready(s), 120, "every agent ready after the broker restart")
    BOARD.record(scenario, "agents reconnect and get ready again", True)
    more = await s.wait(lambda: _more(tap, "execution.fill.", fills), 180, "a fill after the broker restart")
    BOARD.record(scenario, "trading goes on (new fills)", bool(more), f"{fills} fills before")


async def _postgres_restart(s: StackHandle, tap: Tap, postgres: PrivatePostgres) -> None:
    scenario = "PostgreSQL restarted mid-flow (private cluster)"
    fills = await count(tap, "execution.fill.")
    postgres.restart()
    more = await s.wait(lambda: _more(tap, "execution.fill.", fills), 180, "a fill after the PostgreSQL restart")
    BOARD.record(scenario, "trading goes on (new fills)", bool(more), f"{fills} fills before")
    ready = await s.wait(lambda: _all_ready(s), 120, "every agent ready after the PostgreSQL restart")
    BOARD.record(scenario, "every agent ready", bool(ready))


def _path() -> str:
    import os

    return os.environ.get("PATH", "/usr/bin:/bin")


def _all_ready(s: StackHandle) -> bool:
    return all(stack.probe(a.http_port) for a in s.state().agents.values())


async def _more(tap: Tap, prefix: str, before: int) -> bool:
    return await count(tap, prefix) > before


async def _all_candles(tap: Tap) -> bool:
    return await count(tap, "market.candle.") >= CANDLES
