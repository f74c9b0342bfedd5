"""Broker topology as code: discover the agents' queues, render ``docker/rabbitmq/definitions.json``,
and apply it to a running broker with ``rabbitmqctl`` (the management plugin is not needed).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from agents.base import Agent, AgentContext
from agents.base.registry import AGENT_NAMES
from core.clock import WallClock
from core.errors import ConfigurationError
from core.logging import get_logger
from core.ports import QueueSpec
from core.routing import queue_name
from core.settings import Settings
from infrastructure.messaging.definitions import (
    PUBLISHES,
    VHOSTS,
    AgentTopology,
    build_definitions,
    for_vhost,
    users_of,
)
from infrastructure.messaging.memory import InMemoryBus

DEFINITIONS_PATH = Path(__file__).resolve().parents[1] / "docker" / "rabbitmq" / "definitions.json"
PASSWORD_ENV = "RABBITMQ_PASSWORD_{}"  # noqa: S105 - a variable name, not a password
"""Environment variable (or secret file name) holding the password of a user (upper-cased name)."""


def _agent_class(kind: str) -> type[Agent]:
    for module_name in (f"agents.{kind}.agent", f"agents.{kind}.wiring", f"agents.{kind}"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Agent) and obj is not Agent and obj.kind == kind:
                return obj
    raise ConfigurationError(f"no Agent subclass with kind {kind!r} found in agents.{kind}")


def agent_queues(kind: str, settings: Settings) -> tuple[QueueSpec, ...]:
    """The queues agent ``kind`` declares, exactly as :meth:`Agent.start` builds them.

    ``subscriptions()`` is called on an instance that has only its context: subscriptions depend
    on settings, never on adapters (a database, a venue), so the agent needs none of those here.
    """
    cls = _agent_class(kind)
    agent = object.__new__(cls)
    agent.ctx = AgentContext(
        bus=InMemoryBus(), clock=WallClock(), settings=settings, agent_id=f"{kind.replace('_', '-')}-definitions",
        log=get_logger("tradeswarm.broker"), instrument=False,
    )  # fmt: skip
    return tuple(
        QueueSpec(
            name=queue_name(kind, sub.purpose, sub.partition),
            patterns=sub.patterns,
            prefetch=sub.prefetch or settings.rabbitmq_prefetch,
            delivery_limit=settings.rabbitmq_delivery_limit,
            single_active_consumer=sub.single_active_consumer,
        )
        for sub in cls.subscriptions(agent)
    )


def swarm_topology(settings: Settings | None = None) -> list[AgentTopology]:
    """Every agent kind with its queues and the topics it owns."""
    settings = settings or Settings()
    return [AgentTopology(kind, agent_queues(kind, settings), PUBLISHES.get(kind, ())) for kind in AGENT_NAMES]


def render_definitions(settings: Settings | None = None) -> bytes:
    """The committed definitions document (core defaults: paper and live vhosts)."""
    settings = settings or Settings()
    doc = build_definitions(
        swarm_topology(settings),
        delivery_limit=settings.rabbitmq_delivery_limit,
        max_queue_length=settings.rabbitmq_max_queue_length,
    )
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def load_definitions(path: Path = DEFINITIONS_PATH) -> dict[str, Any]:
    """Read a definitions file."""
    try:
        loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"{path} does not exist: run `tradeswarm broker export`") from None
    return loaded


def _rabbitmqctl(*args: str, stdin: bytes | None = None) -> str:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise ConfigurationError("rabbitmqctl is not installed (it must run on the broker's host, as root)")
    result = subprocess.run([exe, "-q", *args], input=stdin, capture_output=True, timeout=120, check=False)  # noqa: S603
    if result.returncode != 0:
        # Passwords never are arguments (they go through stdin), so the output cannot echo one.
        raise ConfigurationError(
            f"rabbitmqctl {args[0]} failed: {result.stderr.decode(errors='replace').strip() or result.stdout.decode()}"
        )
    return result.stdout.decode()


def password_for(user: str, env: Mapping[str, str], secrets_dir: Path | None) -> str | None:
    """The password of ``user``: ``RABBITMQ_PASSWORD_<USER>`` from a secret file or the environment
    (``<USER>`` upper-cased, any character but letters, digits and ``_`` as ``_``: ``risk@staging``
    reads ``RABBITMQ_PASSWORD_RISK_STAGING``)."""
    name = PASSWORD_ENV.format(re.sub(r"[^A-Z0-9_]", "_", user.upper()))
    if secrets_dir is not None and (secrets_dir / name).is_file():
        return (secrets_dir / name).read_text().strip() or None
    return env.get(name) or None


def apply(
    vhost: str,
    *,
    source_vhost: str | None = None,
    definitions: Mapping[str, Any] | None = None,
    passwords: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
) -> list[str]:
    """Apply the definitions of ``source_vhost`` (default: ``vhost``, else ``paper``) to ``vhost``.

    Users are those of ``source_vhost`` named for ``vhost`` (``<kind>@<vhost>`` on a vhost other than
    ``paper``/``live``: :func:`~infrastructure.messaging.definitions.user_name`), so stacks on several
    vhosts of one broker never share a user; an existing user with permissions on another vhost is
    refused (:class:`ConfigurationError`), never taken over.
    Users are created when missing; a user with a password from ``passwords``/the environment/
    ``secrets_dir`` gets it set, a NEW user without one gets none (it cannot log in until it
    has one). Then exchanges, queues, bindings, policies and (topic) permissions are imported with
    ``rabbitmqctl import_definitions``. Returns the users concerned.
    """
    doc = dict(definitions) if definitions is not None else load_definitions()
    source = source_vhost or (vhost if vhost in VHOSTS else "paper")
    part = for_vhost(doc, source, vhost)
    users = users_of(doc, source, vhost)
    env = env if env is not None else os.environ
    existing = {line.split("\t")[0] for line in _rabbitmqctl("list_users", "--no-table-headers").splitlines() if line}
    for user in users:
        password = (passwords or {}).get(user) or password_for(user, env, secrets_dir)
        if user in existing:
            _refuse_foreign(user, vhost)
        # Passwords go through standard input: never on a command line (ps) or in an error message.
        if user not in existing:
            _rabbitmqctl("add_user", user, stdin=(password or secrets.token_urlsafe(32)).encode())
            if password is None:
                _rabbitmqctl("clear_password", user)
        elif password is not None:
            _rabbitmqctl("change_password", user, stdin=password.encode())
    # From standard input: the CLI runs as the broker's user, which may not read our files.
    _rabbitmqctl("import_definitions", "--format", "json", stdin=orjson.dumps(part))
    return list(users)


def _refuse_foreign(user: str, vhost: str) -> None:
    """Refuse to take over ``user`` when it has permissions on another vhost than ``vhost``.

    Users are global to a broker: applying definitions to a vhost must never change the password
    or the permissions of a user another stack (another vhost) logs in with.
    """
    lines = _rabbitmqctl("list_user_permissions", user, "--no-table-headers").splitlines()
    others = sorted({line.split("\t")[0] for line in lines if line and line.split("\t")[0] != vhost})
    if others:
        raise ConfigurationError(
            f"broker user {user!r} already has permissions on vhost(s) {', '.join(others)}: applying the definitions "
            f"to {vhost!r} would change the credentials another stack uses. Apply them with --source-vhost to give "
            f"{vhost!r} users of its own (<kind>@{vhost}), or remove that user's other permissions first."
        )


def delete_users(users: Sequence[str]) -> None:
    """Delete broker users (tests, decommissioning)."""
    for user in users:
        _rabbitmqctl("delete_user", user)
