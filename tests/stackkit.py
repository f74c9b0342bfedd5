"""Reusable kit for fault tests on real services (``tests/safety``, ``tests/chaos``).

* :class:`PrivateBroker` — a RabbitMQ node of the test's own (own ports, data directory, Erlang
  cookie, configuration), started from the test and stopped after it: the place to raise memory/disk
  alarms, restart the broker or load a configuration file, NEVER the shared broker on 5672.
* :func:`launch_stack` — ``tradeswarm stack up`` as an operator runs it (one OS process per agent,
  one broker user per agent, own vhost and database), replaying real candles; yields a
  :class:`StackHandle` with the API client, PostgreSQL helpers, broker credentials and logs.
* :class:`Tap` — a queue of the test's own bound to routing patterns of a vhost: what went on the bus.

Everything here picks free ports (``tests.factories.free_port``) and cleans up what it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import orjson
import pytest

from agents.base.registry import AGENT_NAMES
from core import routing
from core.errors import MessageRejected
from core.messages import Envelope
from core.messages.codec import JsonCodec
from infrastructure.messaging.definitions import user_name
from tests.conftest import RABBIT_BASE, rabbitmqctl
from tests.control.data import CSV
from tests.control.helpers import free_block
from tests.factories import free_port
from tradeswarm import stack

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
INFLUX_URL = os.environ.get("TRADESWARM_TEST_INFLUX_URL", "http://127.0.0.1:8086")
TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, httpx.HTTPError)
"""Failures a poll rides over (other tests on this machine restart their own PostgreSQL, brokers...)."""
OPEN_STATUSES = ("pending_new", "submitted", "accepted", "partially_filled", "pending_cancel")


# ------------------------------------------------------------------------------ private broker


@dataclass
class PrivateBroker:
    """A RabbitMQ node started by a test (see :func:`private_broker`)."""

    node: str
    port: int
    base: Path
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        """The environment its CLI tools need (its Erlang cookie lives in ``base``)."""
        return {**os.environ, "HOME": str(self.base), "RABBITMQ_CONF_ENV_FILE": str(self.base / "env.conf")}

    def url(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
        """An AMQP URL to this node."""
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def ctl(self, *args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """``rabbitmqctl`` against this node."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env, input=stdin, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            pytest.fail(f"rabbitmqctl {' '.join(args)} on {self.node}: {result.stdout!r} {result.stderr!r}")
        return result

    def ctl_wrapper(self, directory: Path) -> Path:
        """A folder holding a ``rabbitmqctl`` that targets this node (put it first on PATH to run the
        shipped shell scripts, which call plain ``rabbitmqctl``, against it)."""
        directory.mkdir(parents=True, exist_ok=True)
        wrapper = directory / "rabbitmqctl"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'HOME="{self.base}" RABBITMQ_CONF_ENV_FILE="{self.base / "env.conf"}" '
            f'exec "{RABBITMQ_BIN / "rabbitmqctl"}" -n "{self.node}" "$@"\n'
        )
        wrapper.chmod(0o755)
        return directory

    def stop(self) -> None:
        """Stop the node (gracefully, then by its process group)."""
        if self.process.poll() is None:
            self.ctl("stop", check=False)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the node's logs (for failure messages)."""
        out = []
        for path in sorted((self.base / "log").glob("*.log")):
            out.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def start_private_broker(base: Path, config: str = "", *, name: str | None = None) -> PrivateBroker:
    """Start a RabbitMQ node in ``base`` with ``config`` (rabbitmq.conf lines) added to a minimal
    configuration (loopback listener on a free port, no plugins); returns once it runs."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.fail("RabbitMQ is not installed (scripts/ensure_services.sh installs it)")
    base.mkdir(parents=True, exist_ok=True)
    port, dist = free_port(), free_port()
    node = f"{name or 'tstest' + uuid.uuid4().hex[:8]}@localhost"
    (base / "enabled_plugins").write_text("[].\n")
    (base / "env.conf").write_text("")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n{config}\n"
    )
    env = {
        **os.environ,
        "HOME": str(base),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "env.conf"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    with (base / "server.out").open("ab") as out:
        process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    broker = PrivateBroker(node, port, base, process)
    waited = broker.ctl("wait", str(base / "rabbit.pid"), "--timeout", "90", check=False)
    if waited.returncode != 0:
        broker.stop()
        pytest.fail(f"private RabbitMQ node did not start: {waited.stderr!r}\n{broker.log_tail()}")
    return broker


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A private RabbitMQ node with the minimal configuration (see :func:`start_private_broker`)."""
    broker = start_private_broker(tmp_path / "rabbitmq")
    try:
        yield broker
    finally:
        broker.stop()


# ------------------------------------------------------------------------------ bus tap


class Tap:
    """A quorum queue of the test, bound to ``patterns`` on the swarm's exchange: every message
    published on those routing keys from now on, to read at the end (nothing is consumed)."""

    def __init__(self, url: str, patterns: Sequence[str], *, skip_invalid: bool = False) -> None:
        self.url = url
        self.patterns = tuple(patterns)
        self.skip_invalid = skip_invalid
        """Leave out bodies that are no valid message (a test's own bad input) instead of failing."""
        self.queue = f"tap.{uuid.uuid4().hex[:10]}"
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._codec = JsonCodec(max_message_bytes=16 * 1024 * 1024)

    async def start(self) -> Tap:
        """Declare the exchange (idempotent) and the tap queue with its bindings."""
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(routing.EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(self.queue, durable=True, arguments={"x-queue-type": "quorum"})
        for pattern in self.patterns:
            await queue.bind(exchange, routing_key=pattern)
        await channel.close()
        return self

    async def messages(self) -> list[tuple[str, Envelope, str | None]]:
        """``(routing key, envelope, user_id)`` of every message tapped so far (left in the queue)."""
        assert self._connection is not None
        channel = await self._connection.channel()
        fetched = []
        try:
            queue = await channel.declare_queue(self.queue, passive=True)
            while True:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                fetched.append(message)
            if fetched:
                await fetched[-1].nack(multiple=True, requeue=True)
        finally:
            await channel.close()
        out = []
        for m in fetched:
            try:
                out.append((m.routing_key or "", self._codec.decode(m.body), m.user_id))
            except MessageRejected:
                if not self.skip_invalid:
                    raise
        return out

    async def close(self) -> None:
        """Delete the tap queue and disconnect."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                channel = await self._connection.channel()
                await channel.queue_delete(self.queue)
            await self._connection.close()


# ------------------------------------------------------------------------------ the stack


@dataclass
class StackHandle:
    """A running multi-process stack of a test (see :func:`launch_stack`)."""

    run_dir: Path
    vhost: str
    dsn: str
    influx_db: str
    api: httpx.AsyncClient
    prefix: str
    env: dict[str, str]
    token: str
    heartbeat_timeout_s: float
    rabbit_base: str = RABBIT_BASE
    """``amqp://guest:guest@host:port`` of the broker the stack runs on."""

    @property
    def amqp_host(self) -> str:
        """``host:port`` of the stack's broker."""
        return self.rabbit_base.split("@", 1)[1]

    @property
    def auth(self) -> dict[str, str]:
        """The API's bearer header."""
        return {"Authorization": f"Bearer {self.token}"}

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """``tradeswarm stack <args> --run-dir <run dir>``."""
        return subprocess.run(
            [sys.executable, "-m", "tradeswarm", "stack", *args, "--run-dir", str(self.run_dir)],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def state(self) -> stack.StackState:
        """The supervisor's state file."""
        state = stack.read_state(self.run_dir)
        assert state is not None
        return state

    def user(self, kind: str) -> str:
        """The broker user of agent ``kind`` in this stack."""
        return user_name(kind, self.vhost, self.prefix)

    def url_as(self, kind: str) -> str:
        """An AMQP URL to the stack's vhost with agent ``kind``'s own credentials (from secrets.json)."""
        secrets = orjson.loads((self.run_dir / "secrets.json").read_bytes())
        user = self.user(kind)
        credentials = f"{quote(user, safe='')}:{quote(secrets[user], safe='')}"
        return f"amqp://{credentials}@{self.amqp_host}/{quote(self.vhost, safe='')}"

    @property
    def guest_url(self) -> str:
        """An AMQP URL to the stack's vhost as ``guest`` (full permissions there, but no agent's user)."""
        return f"{self.rabbit_base}/{quote(self.vhost, safe='')}"

    def logs(self, tail: int = 15) -> str:
        """The end of every agent's log."""
        out = []
        for path in sorted((self.run_dir / "logs").glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(line[:400] for line in lines))
        return "\n".join(out)

    async def wait(self, condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
        """Poll ``condition`` (sync or async) until truthy; fail with the agents' logs after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
                if asyncio.iscoroutine(value):
                    value = await value
            except TRANSIENT:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs()}")
            await asyncio.sleep(interval)

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """Rows of a query on the stack's database (rides over a restarting server)."""
        for _ in range(60):
            try:
                conn = await asyncpg.connect(self.dsn)
                try:
                    return list(await conn.fetch(sql, *args))
                finally:
                    await conn.close()
            except TRANSIENT:
                await asyncio.sleep(0.5)
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def value(self, sql: str, *args: object) -> Any:
        """The first column of the first row (None without rows)."""
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None

    async def agent(self, agent_id: str) -> dict[str, Any]:
        """The orchestrator's view of one agent (``/agents``)."""
        agents = (await self.api.get("/agents")).json()
        return next((a for a in agents if a["agent_id"] == agent_id), {})

    async def command_complete(self, command_id: str) -> dict[str, Any] | None:
        """The command's view once complete, else None."""
        view = (await self.api.get(f"/control/commands/{command_id}")).json()
        return view if view.get("complete") else None

    def agent_pid(self, name: str) -> int:
        """The pid of agent ``name``'s current process."""
        pid = self.state().agents[name].pid
        assert pid is not None
        return pid

    def environment_of(self, name: str) -> dict[str, str]:
        """The environment agent ``name``'s process was started with (``/proc/<pid>/environ``)."""
        raw = Path(f"/proc/{self.agent_pid(name)}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)

    def kill9(self, name: str) -> int:
        """SIGKILL agent ``name``'s process (the supervisor restarts it); returns the pid killed."""
        pid = self.agent_pid(name)
        os.kill(pid, signal.SIGKILL)
        return pid


@contextlib.asynccontextmanager
async def launch_stack(
    vhost: str,
    dsn: str,
    run_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    up_args: Sequence[str] = (),
    replay_speed: float = 3600 / 0.05,
    heartbeat_interval_s: float = 0.5,
    heartbeat_timeout_s: float = 3.0,
    restart_backoff_s: float = 0.5,
    token: str = "stack-token",
    prefix: str | None = None,
    replay_path: Path = CSV,
    rabbit_base: str = RABBIT_BASE,
    influx_url: str = INFLUX_URL,
) -> AsyncIterator[StackHandle]:
    """``tradeswarm stack up`` on the shared RabbitMQ (vhost ``vhost``, fresh users with a random
    prefix), PostgreSQL (``dsn``) and InfluxDB (a fresh database), replaying real BTC/USDT 1h candles
    (tests/data); yields once every agent is ready; stops the stack and removes its users and
    InfluxDB database afterwards. The paper venue keeps its whole book (no retention: the invariants
    compare every order with it). ``env`` adds settings for every agent (``--env`` style values go
    through the operator's environment, as an operator would set them). ``prefix`` (default: random)
    is the broker user prefix: two stacks given the same one share user NAMES but live on two vhosts.
    ``rabbit_base``/``influx_url`` point the stack at private instances (a :class:`PrivateBroker`: put
    its :meth:`~PrivateBroker.ctl_wrapper` first on ``PATH`` in ``env`` so ``stack up`` applies the
    definitions to it)."""
    influx_db = f"ts_stack_{uuid.uuid4().hex[:10]}"
    api_port = free_port()
    base_port = free_block(len(AGENT_NAMES))
    prefix = prefix if prefix is not None else f"s{uuid.uuid4().hex[:6]}_"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")},
        "TRADESWARM_RABBITMQ_URL": f"{rabbit_base}/",
        "TRADESWARM_POSTGRES_DSN": dsn,
        "TRADESWARM_INFLUX_URL": influx_url,
        "TRADESWARM_INFLUX_API": "v1",
        "TRADESWARM_INFLUX_BUCKET": influx_db,
        "TRADESWARM_SYMBOLS": "BTC/USDT",
        "TRADESWARM_TIMEFRAMES": "1h",
        "TRADESWARM_HEARTBEAT_INTERVAL_S": str(heartbeat_interval_s),
        "TRADESWARM_HEARTBEAT_TIMEOUT_S": str(heartbeat_timeout_s),
        "TRADESWARM_SHUTDOWN_GRACE_S": "10",
        "TRADESWARM_API_TOKEN": token,
        "TRADESWARM_LOG_FORMAT": "json",
        "TRADESWARM_ORCHESTRATOR_API_HOST": "127.0.0.1",
        # the invariants compare every order with the venue's book, and a replay runs execution on market
        # time (hundreds of candle-hours, weeks): keep the whole book (its retention is proved elsewhere)
        "TRADESWARM_EXECUTION_PAPER_ORDER_RETENTION_DAYS": "none",
        **(env or {}),
    }
    handle = StackHandle(
        run_dir, vhost, dsn, influx_db, httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10),
        prefix, full_env, token, heartbeat_timeout_s, rabbit_base,
    )  # fmt: skip
    up = handle.cli(
        "up", "--vhost", vhost, "--broker-user-prefix", prefix, "--data-source", "replay",
        "--replay-path", str(replay_path), "--replay-speed", str(replay_speed), "--api-port", str(api_port),
        "--base-port", str(base_port), "--restart-backoff", str(restart_backoff_s),
        "--restart-backoff-max", "2", "--stop-timeout", "20", "--wait", "120", *up_args,
    )  # fmt: skip
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout}\n{up.stderr}\n{handle.logs()}"
        yield handle
    finally:
        if stack.running_supervisor(run_dir) is not None:
            stack.stop(run_dir)
        await handle.api.aclose()
        users = [line.split("\t")[0] for line in rabbitmqctl("list_users", "-q").stdout.splitlines()]
        for user in users:
            if user.startswith(prefix) and user.endswith(f"@{vhost}"):
                rabbitmqctl("delete_user", user, check=False)
        async with httpx.AsyncClient() as client:
            with contextlib.suppress(httpx.HTTPError):
                await client.post(f"{influx_url}/query", params={"q": f'DROP DATABASE "{influx_db}"'})


def rabbitmq_available() -> None:
    """Fail (never skip) when the RabbitMQ CLI is missing."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not installed: these tests need RabbitMQ")
