"""``tradeswarm stack``: run the whole swarm as supervised OS processes on this machine."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit, urlunsplit

import orjson
import typer

from agents.base.registry import AGENT_NAMES
from core.errors import ConfigurationError
from tradeswarm.stack import DEFAULT_RUN_DIR, StackConfig, write_atomic

stack_app = typer.Typer(
    help="The paper-trading stack without Docker: every agent its own supervised process.",
    no_args_is_help=True,
)

SECRETS_FILE = "secrets.json"
TOPOLOGY_SETTINGS = (
    "TRADESWARM_SYMBOLS",
    "TRADESWARM_TIMEFRAMES",
    "TRADESWARM_RABBITMQ_DELIVERY_LIMIT",
    "TRADESWARM_RABBITMQ_MAX_QUEUE_LENGTH",
)
"""``--env`` settings that shape the broker definitions (bindings, queue arguments)."""
RunDir = Annotated[Path, typer.Option(help="Where the stack keeps its state, logs and generated secrets.")]


def agent_url(base: str, user: str | None, password: str | None, vhost: str) -> str:
    """``base`` (an AMQP URL) with another user and vhost."""
    parts = urlsplit(base)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{host}:{parts.port}" if parts.port else host
    if user is not None:
        netloc = f"{quote(user, safe='')}:{quote(password or '', safe='')}@{netloc}"
    elif parts.username:
        netloc = f"{parts.username}:{parts.password or ''}@{netloc}"
    return urlunsplit((parts.scheme or "amqp", netloc, "/" + quote(vhost, safe=""), "", ""))


def _broker_passwords(run_dir: Path, users: list[str]) -> dict[str, str]:
    """Per-user passwords, generated once and kept in ``RUN_DIR/secrets.json`` (0600)."""
    path = run_dir / SECRETS_FILE
    known: dict[str, str] = orjson.loads(path.read_bytes()) if path.exists() else {}
    for user in users:
        known.setdefault(user, secrets.token_urlsafe(24))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, orjson.dumps(known))
    return {u: known[u] for u in users}


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


@stack_app.command("up")
def up(
    run_dir: RunDir = DEFAULT_RUN_DIR,
    agents: Annotated[str, typer.Option(help="Comma-separated agents to run.")] = ",".join(AGENT_NAMES),
    vhost: Annotated[str, typer.Option(help="RabbitMQ vhost of the stack.")] = "paper",
    broker_users: Annotated[
        bool,
        typer.Option(help="Apply the broker definitions to the vhost and give each agent its own user."),
    ] = True,
    broker_user_prefix: Annotated[
        str, typer.Option(help="Prefix of the agents' broker user names (isolated test stacks).", hidden=True)
    ] = "",
    data_source: Annotated[
        str | None, typer.Option(help="Market data: ccxt (live venue), replay (candle files) or synthetic.")
    ] = None,
    replay_path: Annotated[Path | None, typer.Option(help="Candle file or folder for --data-source replay.")] = None,
    replay_speed: Annotated[float | None, typer.Option(help="0 = as fast as possible; N = N x real time.")] = None,
    market_time: Annotated[
        bool | None,
        typer.Option(help="Run execution on market time (default: on with replay/synthetic data)."),
    ] = None,
    api_port: Annotated[int, typer.Option(help="Port of the orchestrator's REST API.")] = 8000,
    base_port: Annotated[int, typer.Option(help="HTTP port (/metrics, /readyz) of the first agent; +1 each.")] = 9101,
    env: Annotated[list[str] | None, typer.Option("--env", help="Extra KEY=VALUE for every agent.")] = None,
    stop_timeout: Annotated[float, typer.Option(help="Seconds an agent gets to exit after SIGTERM.")] = 30.0,
    restart_backoff: Annotated[
        float, typer.Option(help="First wait before restarting a crashed agent; doubles per quick crash.")
    ] = 0.5,
    restart_backoff_max: Annotated[float, typer.Option(help="Longest wait between restarts.")] = 30.0,
    detach: Annotated[bool, typer.Option(help="Run the supervisor in the background.")] = True,
    wait: Annotated[float, typer.Option(help="With --detach: seconds to wait for every agent to be ready.")] = 90.0,
) -> None:
    """Start every agent as its own process against RabbitMQ, PostgreSQL and InfluxDB on loopback.

    Example: tradeswarm stack up --data-source replay --replay-path data/samples
    """
    from core.settings import load_settings
    from tradeswarm import stack

    names = tuple(a.strip() for a in agents.split(",") if a.strip())
    settings = load_settings()
    extra = _parse_env(env or [])
    common: dict[str, str] = {"TRADESWARM_ORCHESTRATOR_API_PORT": str(api_port), **extra}
    if data_source is not None:
        common["TRADESWARM_DATA_SOURCE"] = data_source
    if replay_path is not None:
        common["TRADESWARM_DATA_REPLAY_PATH"] = str(replay_path.resolve())
    if replay_speed is not None:
        common["TRADESWARM_DATA_REPLAY_SPEED"] = str(replay_speed)
    base_url = settings.rabbitmq_url.get_secret_value()
    per_agent: dict[str, dict[str, str]] = {}
    if broker_users:
        from infrastructure.messaging.definitions import build_definitions, user_name
        from tradeswarm.broker import apply, swarm_topology

        # The definitions of THIS stack's settings (symbols, timeframes), for its vhost and users.
        agent_settings = load_settings(**{k.removeprefix("TRADESWARM_").lower(): v for k, v in extra.items()
                                          if k in TOPOLOGY_SETTINGS})  # fmt: skip
        profile = "live" if vhost == "live" else "paper"
        doc = build_definitions(
            swarm_topology(agent_settings),
            vhosts=[profile],
            delivery_limit=agent_settings.rabbitmq_delivery_limit,
            max_queue_length=agent_settings.rabbitmq_max_queue_length,
            user_prefix=broker_user_prefix,
        )
        users = {name: user_name(name, vhost, broker_user_prefix, profile=profile) for name in AGENT_NAMES}
        passwords = _broker_passwords(run_dir, list(users.values()))
        apply(vhost, source_vhost=profile, definitions=doc, passwords=passwords)
        for name in names:
            user = users[name]
            per_agent[name] = {"TRADESWARM_RABBITMQ_URL": agent_url(base_url, user, passwords[user], vhost)}
        per_agent.setdefault("execution", {})["TRADESWARM_EXECUTION_TRUSTED_ORDER_SENDERS"] = users["compliance"]
        for name in names:  # commands are obeyed from the orchestrator's broker user only
            per_agent.setdefault(name, {})["TRADESWARM_CONTROL_SENDERS"] = users["orchestrator"]
    else:
        common["TRADESWARM_RABBITMQ_URL"] = agent_url(base_url, None, None, vhost)
    source = data_source or os.environ.get("TRADESWARM_DATA_SOURCE", "ccxt")
    on_market_time = market_time if market_time is not None else source in ("replay", "synthetic")
    config = StackConfig(
        market_time_agents=("execution",) if on_market_time else (),
        agents=names,
        base_port=base_port,
        env=common,
        agent_env=per_agent,
        stop_timeout_s=stop_timeout,
        backoff_initial_s=restart_backoff,
        backoff_max_s=max(restart_backoff_max, restart_backoff),
    )
    stack.plan(config)  # validates the agent names before anything starts
    if not detach:
        import asyncio

        stack.save_config(run_dir, config)
        raise typer.Exit(asyncio.run(stack.Supervisor(run_dir, config).run()))
    pid = stack.start_detached(run_dir, config, os.environ)
    typer.echo(f"supervisor started (pid {pid}); state in {run_dir}")
    ready = stack.wait_ready(run_dir, wait)
    _print_status(run_dir)
    if not ready or not all(ready.values()):
        missing = [n for n, ok in ready.items() if not ok] or list(names)
        typer.echo(f"not ready after {wait:.0f}s: {', '.join(missing)} (see {run_dir}/logs)", err=True)
        raise typer.Exit(1)
    if "orchestrator" in names:
        typer.echo(f"dashboard: http://127.0.0.1:{api_port}/  (state-changing calls need TRADESWARM_API_TOKEN)")


def _print_status(run_dir: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    from tradeswarm import stack

    supervisor, rows = stack.status(run_dir)
    table = Table(title=f"tradeswarm stack ({run_dir}) supervisor: {supervisor or 'not running'}")
    for column in ("agent", "agent id", "pid", "up", "status", "restarts", "readyz", "port"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            row.agent_id,
            str(row.pid or "-"),
            "up" if row.up else "down",
            row.status,
            str(row.restarts),
            "ready" if row.ready else "not ready",
            str(row.http_port),
        )
    Console(width=120).print(table)
    return 0 if supervisor and rows and all(r.ready for r in rows) else 1


@stack_app.command("status")
def status_command(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Show every agent: pid, up/down, restarts, /readyz. Exit code 1 unless all are ready."""
    raise typer.Exit(_print_status(run_dir))


@stack_app.command("down")
def down(
    run_dir: RunDir = DEFAULT_RUN_DIR,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for the supervisor.")] = None,
) -> None:
    """Stop the stack gracefully: SIGTERM, drain and ack, exit; SIGKILL after the timeout."""
    from tradeswarm import stack

    if stack.read_state(run_dir) is None:
        raise ConfigurationError(f"no stack state in {run_dir}")
    problems = stack.stop(run_dir, timeout)
    for problem in problems:
        typer.echo(problem, err=True)
    typer.echo("stack stopped" + (" with problems" if problems else ""))
    raise typer.Exit(1 if problems else 0)
