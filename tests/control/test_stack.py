"""The process supervisor: plans, restart policy, status and graceful stop, with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.base.registry import AGENT_NAMES
from core.errors import ConfigurationError
from tests.conftest import rabbitmqctl
from tests.control.helpers import free_block
from tradeswarm import stack
from tradeswarm.cli_stack import agent_url


def test_plan_gives_each_agent_its_id_port_and_environment() -> None:
    config = stack.StackConfig(
        base_port=9200,
        env={"TRADESWARM_SYMBOLS": "BTC/USDT"},
        agent_env={"risk": {"TRADESWARM_RABBITMQ_URL": "amqp://risk:pw@127.0.0.1/paper"}},
        market_time_agents=("execution",),
    )
    plans = {p.name: p for p in stack.plan(config)}
    assert list(plans) == list(AGENT_NAMES)
    assert plans["risk"].agent_id == "risk-1"
    assert plans["data_collection"].agent_id == "data-collection-1"
    assert [p.http_port for p in plans.values()] == list(range(9200, 9200 + len(AGENT_NAMES)))
    assert plans["risk"].env["TRADESWARM_RABBITMQ_URL"].startswith("amqp://risk:")
    assert "TRADESWARM_RABBITMQ_URL" not in plans["strategy"].env
    assert plans["strategy"].env["TRADESWARM_HTTP_PORT"] == str(plans["strategy"].http_port)
    assert plans["execution"].module == ("backtesting.replay_host", "execution")
    assert plans["risk"].module == ("agents.risk",)
    with pytest.raises(ConfigurationError, match="unknown agents"):
        stack.plan(stack.StackConfig(agents=("risk", "oracle")))


def test_stop_order_drains_the_pipeline_and_stops_the_orchestrator_last() -> None:
    assert stack.stop_order(["orchestrator", "execution", "data_collection", "risk"]) == [
        "data_collection",
        "risk",
        "execution",
        "orchestrator",
    ]


def test_backoff_doubles_and_is_capped() -> None:
    assert [stack.backoff_delay(n, 0.5, 5.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_probe_counts_a_non_http_answer_as_not_ready() -> None:
    """A port that answers something other than HTTP (e.g. a probe connected to itself and reading
    its own request back) is 'not ready', never an exception that stops ``stack up``."""
    import socket
    import threading

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def echo_request_line() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"GET /readyz HTTP/1.1\r\n\r\n")

        thread = threading.Thread(target=echo_request_line, daemon=True)
        thread.start()
        assert stack.probe(port) is False
        thread.join(timeout=5)


def test_agent_url_swaps_user_and_vhost() -> None:
    base = "amqp://guest:guest@127.0.0.1:5672/"
    assert agent_url(base, "risk", "p@ss/w", "paper") == "amqp://risk:p%40ss%2Fw@127.0.0.1:5672/paper"
    assert agent_url(base, None, None, "ts-test") == "amqp://guest:guest@127.0.0.1:5672/ts-test"


def _env(rabbit_url: str, postgres_dsn: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TRADESWARM_RABBITMQ_URL": rabbit_url,
        "TRADESWARM_POSTGRES_DSN": postgres_dsn,
        "TRADESWARM_HEARTBEAT_INTERVAL_S": "0.5",
        "TRADESWARM_HEARTBEAT_TIMEOUT_S": "3",
        "TRADESWARM_ORCHESTRATOR_API_PORT": "0",
        "TRADESWARM_LOG_FORMAT": "json",
        **extra,
    }


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.integration
def test_supervisor_restarts_a_killed_agent_and_stops_gracefully(
    rabbit_url: str, postgres_dsn: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "stack"
    port = free_block(1)
    config = stack.StackConfig(agents=("orchestrator",), base_port=port, backoff_initial_s=0.2, stop_timeout_s=20)
    pid = stack.start_detached(run_dir, config, _env(rabbit_url, postgres_dsn))
    try:
        ready = stack.wait_ready(run_dir, 60)
        assert ready == {"orchestrator": True}, (run_dir / "logs" / "orchestrator.log").read_text()[-3000:]
        with pytest.raises(ConfigurationError, match="already running"):
            stack.start_detached(run_dir, config, _env(rabbit_url, postgres_dsn))
        supervisor, rows = stack.status(run_dir)
        assert supervisor == pid
        (row,) = rows
        assert (row.name, row.up, row.ready, row.restarts, row.status) == ("orchestrator", True, True, 0, "running")

        os.kill(row.pid, signal.SIGKILL)  # type: ignore[arg-type]
        _wait(lambda: stack.status(run_dir)[1][0].restarts == 1, 30, "the restart")
        _wait(lambda: stack.status(run_dir)[1][0].ready, 60, "the restarted agent ready")
        assert stack.status(run_dir)[1][0].pid != row.pid

        assert stack.stop(run_dir) == []
    finally:
        stack.stop(run_dir)
    state = stack.read_state(run_dir)
    assert state is not None
    assert not stack.pid_alive(pid)
    agent = state.agents["orchestrator"]
    assert (agent.status, agent.last_exit) == ("stopped", 0)
    assert not stack.pid_alive(agent.pid)
    log = (run_dir / "logs" / "orchestrator.log").read_text()
    assert log.count('"agent stopped"') == 1  # the killed one never got to say it; the last one did
    queues = rabbitmqctl("list_queues", "-q", "-p", rabbit_url.rsplit("/", 1)[1], "name", "messages_unacknowledged")
    assert all(line.split("\t")[-1] == "0" for line in queues.stdout.splitlines()[1:])


@pytest.mark.integration
def test_crash_loop_backs_off_and_down_works_without_the_supervisor(
    rabbit_url: str, postgres_dsn: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "stack"
    # Invalid settings: the agent exits at once, every time.
    env = _env(rabbit_url, postgres_dsn, TRADESWARM_HEARTBEAT_TIMEOUT_S="0.1")
    config = stack.StackConfig(agents=("risk",), base_port=free_block(1), backoff_initial_s=0.2, backoff_max_s=0.8)
    pid = stack.start_detached(run_dir, config, env)
    try:

        def restarts() -> int:
            state = stack.read_state(run_dir)
            return state.agents["risk"].restarts if state is not None and "risk" in state.agents else 0

        _wait(lambda: restarts() >= 3, 60, "three restarts")
        state = stack.read_state(run_dir)
        assert state is not None
        assert state.agents["risk"].last_exit not in (0, None)
        assert "heartbeat_timeout_s must exceed" in (run_dir / "logs" / "risk.log").read_text()
    finally:
        os.kill(pid, signal.SIGKILL)  # the supervisor dies without cleaning up
        _wait(lambda: not stack.pid_alive(pid), 10, "the supervisor gone")
    supervisor, _ = stack.status(run_dir)
    assert supervisor is None
    problems = stack.stop(run_dir)
    assert all("outlived its supervisor" in p for p in problems)
    assert not any(stack.pid_alive(r.pid) for r in stack.status(run_dir)[1])


@pytest.mark.integration
def test_cli_status_and_down_without_a_stack(tmp_path: Path) -> None:
    status = subprocess.run(
        [sys.executable, "-m", "tradeswarm", "stack", "status", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert status.returncode == 1
    assert "not running" in status.stdout
    down = subprocess.run(
        [sys.executable, "-m", "tradeswarm", "stack", "down", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert down.returncode == 2
    assert "no stack state" in down.stderr
