"""The multi-process stack without Docker: every agent its own OS process, supervised.

``tradeswarm stack up`` writes the stack's configuration under a run directory (default
``.stack/``) and starts a detached supervisor (``python -m tradeswarm.stack supervise RUN_DIR``).
The supervisor starts ``python -m agents.<name>`` for every agent, each with its own agent id,
HTTP port (``/metrics``, ``/healthz``, ``/readyz``) and log file, and restarts an agent that exits
with an exponential backoff (like a container restart policy: 0.5 s, 1 s, 2 s ... capped; the
backoff resets once the agent stayed up for ``stable_after_s``). Its state (pids, ports, restarts,
log files) is kept in ``RUN_DIR/state.json``.

On SIGTERM the supervisor stops the agents in pipeline order (producers first, so downstream agents
drain what was already published, the orchestrator last): SIGTERM, wait for a graceful exit (the
agent finishes and acks the message in hand), SIGKILL after ``stop_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from agents.base.registry import AGENT_NAMES
from core.errors import ConfigurationError
from core.logging import get_logger

DEFAULT_RUN_DIR = Path(".stack")
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
SUPERVISOR_LOG = "supervisor.log"


class StackConfig(BaseModel):
    """What ``stack up`` runs. Saved as ``RUN_DIR/config.json`` (0600: it may hold credentials)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: tuple[str, ...] = AGENT_NAMES
    base_port: int = Field(default=9101, ge=1024, le=65000, description="HTTP port of the first agent.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment of every agent.")
    agent_env: dict[str, dict[str, str]] = Field(default_factory=dict, description="Extra environment per agent.")
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    stable_after_s: float = Field(default=30.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)
    market_time_agents: tuple[str, ...] = Field(
        default=(), description="Agents run on market time (backtesting.replay_host): replays of history."
    )


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """One agent process of the stack."""

    name: str
    agent_id: str
    http_port: int
    env: dict[str, str]
    module: tuple[str, ...]
    """``python -m`` arguments: ``agents.<name>``, or ``backtesting.replay_host <name>``."""


def plan(config: StackConfig) -> list[AgentPlan]:
    """The processes of a stack, in pipeline order, each with its id, port and environment."""
    unknown = [a for a in config.agents if a not in AGENT_NAMES]
    if unknown:
        raise ConfigurationError(f"unknown agents {unknown}; choose from {', '.join(AGENT_NAMES)}")
    plans = []
    for index, name in enumerate(config.agents):
        agent_id = f"{name.replace('_', '-')}-1"
        port = config.base_port + index
        env = {
            **config.env,
            **config.agent_env.get(name, {}),
            "TRADESWARM_AGENT_ID": agent_id,
            "TRADESWARM_HTTP_PORT": str(port),
        }
        module = ("backtesting.replay_host", name) if name in config.market_time_agents else (f"agents.{name}",)
        plans.append(AgentPlan(name, agent_id, port, env, module))
    return plans


AGENT_SECRETS: Mapping[str, tuple[str, ...]] = {
    "TRADESWARM_API_TOKEN": ("orchestrator",),
    "TRADESWARM_EXCHANGE_API_KEY": ("execution",),
    "TRADESWARM_EXCHANGE_API_SECRET": ("execution",),
    "TRADESWARM_POSTGRES_DSN": ("risk", "compliance", "execution", "orchestrator", "desk"),
    "TRADESWARM_INFLUX_TOKEN": ("data_collection", "technical_analysis"),
    "TRADESWARM_LLM_API_KEY": ("desk", "orchestrator"),
}
"""Secret variables and the only agents that get them (the API token only reaches the orchestrator,
exchange keys only execution). Any other ``TRADESWARM_`` variable named like a secret (see
:data:`SECRET_SUFFIXES`) reaches no agent unless it is listed here or starts with the agent's own
prefix (``TRADESWARM_<AGENT>_``)."""

SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_PASSWORD", "_API_KEY", "_DSN")

OS_VARIABLES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
        "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
        "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip
"""The operator's non-tradeswarm variables an agent process inherits (plus ``LC_*``): nothing else
(cloud credentials, other tools' tokens) leaves the operator's shell."""


def agent_environment(name: str, base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of agent ``name``'s process: only what it needs.

    From ``base`` (the operator's environment): :data:`OS_VARIABLES`, ``LC_*`` and the
    ``TRADESWARM_`` settings, minus the secrets this agent does not use (:data:`AGENT_SECRETS`);
    then ``extra`` (the stack's own settings for this agent) on top.
    """
    own_prefix = f"TRADESWARM_{name.upper()}_"
    env: dict[str, str] = {}
    for key, value in base.items():
        if key in OS_VARIABLES or key.startswith("LC_"):
            env[key] = value
        elif key.startswith("TRADESWARM_"):
            allowed = AGENT_SECRETS.get(key)
            if allowed is not None:
                if name in allowed:
                    env[key] = value
            elif not key.endswith(SECRET_SUFFIXES) or key.startswith(own_prefix):
                env[key] = value
    env.update(extra)
    return env


def stop_order(names: Sequence[str]) -> list[str]:
    """Producers first, the orchestrator last: downstream agents drain what upstream published."""
    ordered = [n for n in AGENT_NAMES if n in names and n != "orchestrator"]
    ordered += [n for n in names if n not in ordered and n != "orchestrator"]
    return ordered + (["orchestrator"] if "orchestrator" in names else [])


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """The wait before restart number ``failures`` (0-based) of a crash loop: exponential, capped."""
    return float(min(maximum, initial * (2 ** min(failures, 30))))


@dataclass(slots=True)
class AgentState:
    """What the supervisor knows about one agent process (serialised to ``state.json``)."""

    name: str
    agent_id: str
    http_port: int
    log: str
    pid: int | None = None
    status: str = "starting"
    restarts: int = 0
    last_exit: int | None = None
    started_at: float | None = None


@dataclass(slots=True)
class StackState:
    """The supervisor's pid and every agent's state."""

    supervisor_pid: int
    started_at: float
    stopping: bool = False
    agents: dict[str, AgentState] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Serialise."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> StackState:
        """Deserialise."""
        raw: dict[str, Any] = orjson.loads(data)
        agents = {name: AgentState(**value) for name, value in raw.pop("agents", {}).items()}
        return cls(**raw, agents=agents)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file so that readers never see a half-written one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_state(run_dir: Path) -> StackState | None:
    """The last state the supervisor wrote (None when no stack ran here)."""
    path = run_dir / STATE_FILE
    try:
        return StackState.from_json(path.read_bytes())
    except FileNotFoundError:
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (and is not a zombie of ours)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True


def probe(port: int, path: str = "/readyz", timeout: float = 1.0) -> bool:
    """Whether ``http://127.0.0.1:<port><path>`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        # HTTPException: not an HTTP answer, e.g. a probe of a port in the ephemeral range before the
        # agent listens can connect to itself (TCP simultaneous open) and read its own request back
        return False


class Supervisor:
    """Runs and restarts the agent processes of one stack until SIGTERM, then stops them in order."""

    def __init__(self, run_dir: Path, config: StackConfig, base_env: Mapping[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.config = config
        self.base_env = dict(base_env if base_env is not None else os.environ)
        self.plans = plan(config)
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.state = StackState(supervisor_pid=os.getpid(), started_at=time.time())
        for p in self.plans:
            self.state.agents[p.name] = AgentState(
                name=p.name, agent_id=p.agent_id, http_port=p.http_port, log=str(run_dir / "logs" / f"{p.name}.log")
            )
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()
        self.log = get_logger("tradeswarm.stack", run_dir=str(run_dir))
        self._wake: dict[str, asyncio.Event] = {p.name: asyncio.Event() for p in self.plans}

    def save(self) -> None:
        """Write ``state.json``."""
        write_atomic(self.run_dir / STATE_FILE, self.state.to_json())

    def request_stop(self) -> None:
        """Begin the graceful shutdown (what SIGTERM does)."""
        self._stop.set()
        for event in self._wake.values():
            event.set()

    async def run(self) -> int:
        """Supervise until stopped; returns 0 after a clean shutdown."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        self.save()
        self.log.info("supervisor started", agents=[p.name for p in self.plans])
        keepers = [asyncio.create_task(self._keep(p), name=f"keep:{p.name}") for p in self.plans]
        await self._stop.wait()
        self.log.info("stopping the agents", order=stop_order([p.name for p in self.plans]))
        self.state.stopping = True
        self.save()
        for name in stop_order([p.name for p in self.plans]):
            await self._terminate(name)
        await asyncio.gather(*keepers, return_exceptions=True)
        self.save()
        return 0

    async def _keep(self, agent: AgentPlan) -> None:
        state = self.state.agents[agent.name]
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with open(state.log, "ab") as log:  # noqa: ASYNC230 - opening a log file does not block
                    process = await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        *agent.module,
                        env=agent_environment(agent.name, self.base_env, agent.env),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # a Ctrl-C in the terminal reaches the supervisor only
                    )
            except OSError as exc:
                self.log.error("agent process could not start", agent=agent.name, error=str(exc))
                code = -1
            else:
                self._processes[agent.name] = process
                state.pid, state.status, state.started_at = process.pid, "running", time.time()
                self.save()
                if self._stop.is_set():  # stop arrived while it was starting: _terminate may have passed it
                    await self._terminate(agent.name)
                code = await process.wait()
            state.last_exit = code
            if self._stop.is_set():
                state.status = "stopped"
                self.save()
                return
            failures = 0 if time.monotonic() - started >= self.config.stable_after_s else failures + 1
            delay = backoff_delay(
                failures - 1 if failures else 0, self.config.backoff_initial_s, self.config.backoff_max_s
            )
            state.restarts += 1
            state.status = "backoff"
            self.save()
            self.log.warning("agent exited: restarting", agent=agent.name, exit_code=code, restart_in_s=delay,
                             restarts=state.restarts)  # fmt: skip
            self._wake[agent.name].clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake[agent.name].wait(), timeout=delay)
        state.status = "stopped"
        self.save()

    async def _terminate(self, name: str) -> None:
        process = self._processes.get(name)
        state = self.state.agents[name]
        if process is None or process.returncode is not None:
            state.status = "stopped"
            return
        state.status = "stopping"
        self.save()
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=self.config.stop_timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        state.last_exit = process.returncode
        state.status = "stopped"
        self.save()


# ---------------------------------------------------------------------------------- commands


def save_config(run_dir: Path, config: StackConfig) -> None:
    """Write ``RUN_DIR/config.json`` (0600)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG_FILE, config.model_dump_json(indent=2).encode())


def load_config(run_dir: Path) -> StackConfig:
    """Read ``RUN_DIR/config.json``."""
    try:
        return StackConfig.model_validate_json((run_dir / CONFIG_FILE).read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"no stack configuration in {run_dir}: run `tradeswarm stack up`") from None


def running_supervisor(run_dir: Path) -> int | None:
    """The pid of this run directory's live supervisor, if any."""
    state = read_state(run_dir)
    if state is not None and pid_alive(state.supervisor_pid):
        return state.supervisor_pid
    return None


def start_detached(run_dir: Path, config: StackConfig, env: Mapping[str, str] | None = None) -> int:
    """Save the configuration and start the supervisor in the background; returns its pid."""
    if (pid := running_supervisor(run_dir)) is not None:
        raise ConfigurationError(f"a stack is already running from {run_dir} (supervisor pid {pid})")
    save_config(run_dir, config)
    with contextlib.suppress(FileNotFoundError):
        (run_dir / STATE_FILE).unlink()
    with open(run_dir / SUPERVISOR_LOG, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "tradeswarm.stack", "supervise", str(run_dir)],
            env=dict(env if env is not None else os.environ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process.pid


def wait_ready(run_dir: Path, timeout: float) -> dict[str, bool]:
    """Wait until every agent answers ``/readyz`` (or ``timeout``); returns readiness per agent."""
    deadline = time.monotonic() + timeout
    ready: dict[str, bool] = {}
    while True:
        state = read_state(run_dir)
        if state is not None and state.agents:
            ready = {name: probe(a.http_port) for name, a in state.agents.items()}
            if all(ready.values()):
                return ready
        if time.monotonic() > deadline:
            return ready
        if state is not None and not pid_alive(state.supervisor_pid):
            return ready
        time.sleep(0.25)


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One line of ``stack status``."""

    name: str
    agent_id: str
    pid: int | None
    up: bool
    status: str
    restarts: int
    ready: bool
    http_port: int
    log: str


def status(run_dir: Path) -> tuple[int | None, list[AgentRow]]:
    """The supervisor's pid (None when it is not running) and one row per agent."""
    state = read_state(run_dir)
    if state is None:
        return None, []
    supervisor = state.supervisor_pid if pid_alive(state.supervisor_pid) else None
    rows = []
    for a in state.agents.values():
        up = pid_alive(a.pid)
        rows.append(
            AgentRow(
                name=a.name,
                agent_id=a.agent_id,
                pid=a.pid,
                up=up,
                status=a.status if supervisor else ("orphaned" if up else "stopped"),
                restarts=a.restarts,
                ready=up and probe(a.http_port),
                http_port=a.http_port,
                log=a.log,
            )
        )
    return supervisor, rows


def stop(run_dir: Path, timeout: float | None = None) -> list[str]:
    """Stop the stack gracefully; returns problems (empty after a clean stop).

    SIGTERM to the supervisor, which stops the agents in order; if it does not finish within
    ``timeout`` (default: the per-agent stop timeout times the number of agents, plus 10 s), or
    it is already gone, the agents still alive get SIGTERM, then SIGKILL.
    """
    state = read_state(run_dir)
    if state is None:
        return []
    config = load_config(run_dir) if (run_dir / CONFIG_FILE).exists() else StackConfig()
    limit = timeout if timeout is not None else config.stop_timeout_s * max(len(state.agents), 1) + 10
    problems: list[str] = []
    if pid_alive(state.supervisor_pid):
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + limit
        while pid_alive(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(state.supervisor_pid):
            problems.append(f"supervisor {state.supervisor_pid} did not stop within {limit:.0f}s: killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.supervisor_pid, signal.SIGKILL)
    state = read_state(run_dir) or state
    leftovers = [a for a in state.agents.values() if pid_alive(a.pid)]
    for agent in leftovers:
        assert agent.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(agent.pid, signal.SIGTERM)
    deadline = time.monotonic() + config.stop_timeout_s
    for agent in leftovers:
        while pid_alive(agent.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(agent.pid):
            assert agent.pid is not None
            problems.append(f"{agent.name} (pid {agent.pid}) ignored SIGTERM: killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent.pid, signal.SIGKILL)
        else:
            problems.append(f"{agent.name} (pid {agent.pid}) outlived its supervisor: stopped")
    return problems


def supervise(run_dir: Path) -> int:
    """Entry point of the detached supervisor process."""
    from core.logging import configure_logging

    configure_logging("info", "json")
    config = load_config(run_dir)
    supervisor = Supervisor(run_dir, config)
    return asyncio.run(supervisor.run())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "supervise":
        raise SystemExit(supervise(Path(sys.argv[2])))
    sys.stderr.write("usage: python -m tradeswarm.stack supervise RUN_DIR\n")
    raise SystemExit(2)
