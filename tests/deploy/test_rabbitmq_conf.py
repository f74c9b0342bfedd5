"""docker/rabbitmq: every rabbitmq.conf key is known to the installed RabbitMQ, every plugin exists.

RabbitMQ's cuttlefish schemas (``priv/schema/*.schema`` of the server and its plugins) list every
valid configuration key; RabbitMQ refuses to boot with an unknown key, so a typo here would stop
the broker container. The test reads the schemas of the RabbitMQ installed on this machine (CI
installs it for the integration tests) and FAILS when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.deploy._support import ROOT, load_yaml, run

RABBITMQ_LIB = Path("/usr/lib/rabbitmq/lib")
CONF = ROOT / "docker/rabbitmq/rabbitmq.conf"
PLUGINS = ROOT / "docker/rabbitmq/enabled_plugins"


def _installation() -> Path:
    servers = sorted(RABBITMQ_LIB.glob("rabbitmq_server-*"))
    if not servers:
        pytest.fail(f"RabbitMQ is not installed under {RABBITMQ_LIB}: apt-get install rabbitmq-server")
    return servers[-1]


def _known_keys() -> list[re.Pattern[str]]:
    patterns = []
    for schema in _installation().rglob("*.schema"):
        for key in re.findall(r'\{mapping,\s*"([^"]+)"', schema.read_text(encoding="utf-8", errors="replace")):
            regex = "\\.".join("[^.]+" if part.startswith("$") else re.escape(part) for part in key.split("."))
            patterns.append(re.compile(regex))
    return patterns


def _conf_keys() -> list[str]:
    keys = []
    for raw in CONF.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key = value line: {line!r}"
        assert value.strip(), f"no value: {line!r}"
        keys.append(key.strip())
    return keys


def test_every_key_is_a_known_setting() -> None:
    known = _known_keys()
    assert len(known) > 100, "the RabbitMQ schemas were not found"
    unknown = [key for key in _conf_keys() if not any(p.fullmatch(key) for p in known)]
    assert not unknown, f"RabbitMQ would refuse to start with: {unknown}"


def test_an_unknown_key_is_detected() -> None:
    known = _known_keys()
    assert not any(p.fullmatch("prometheus.return_per_object_metricz") for p in known)


def test_conf_loads_definitions_and_exposes_per_queue_metrics() -> None:
    conf = dict(
        line.split("=", 1) for line in CONF.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    conf = {k.strip(): v.strip() for k, v in conf.items()}
    assert conf["definitions.local.path"] == "/etc/rabbitmq/definitions.json"
    assert conf["prometheus.return_per_object_metrics"] == "true"
    assert conf["prometheus.tcp.port"] == "15692"
    assert conf["loopback_users.guest"] == "true"


def test_enabled_plugins_exist() -> None:
    text = PLUGINS.read_text(encoding="utf-8").strip()
    match = re.fullmatch(r"\[([\w,\s]*)\]\.", text)
    assert match, "enabled_plugins is an Erlang list terminated by a dot"
    plugins = {p.strip() for p in match.group(1).split(",") if p.strip()}
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= plugins
    available = {p.name.rsplit("-", 1)[0] for p in (_installation() / "plugins").iterdir()}
    assert plugins <= available, f"unknown plugins: {plugins - available}"


# --- set-passwords.sh against the real local broker -----------------------------------------------


def _ctl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        pytest.fail("rabbitmqctl is not installed: this test needs the local RabbitMQ")
    result = subprocess.run([exe, "-q", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"rabbitmqctl {args[0]} failed: {result.stdout}{result.stderr}")
    return result


@pytest.mark.integration
@pytest.mark.slow
def test_set_passwords_gives_users_their_passwords_and_creates_the_ui_user() -> None:
    """The broker container's password step, run on the local broker with test users."""
    suffix = uuid.uuid4().hex[:8]
    agent_user, admin_user, monitor_user = (
        f"tsdeploy_{suffix}_risk",
        f"tsdeploy_{suffix}_admin",
        f"tsdeploy_{suffix}_mon",
    )
    vhost = f"tsdeploy-{suffix}"
    _ctl("add_vhost", vhost)
    _ctl("add_user", agent_user, stdin=uuid.uuid4().hex)
    _ctl("clear_password", agent_user)  # as definitions.json leaves it: cannot log in
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            f"RABBITMQ_PASSWORD_{agent_user.upper()}": "agent-pass-1",
            "RABBITMQ_ADMIN_USER": admin_user,
            "RABBITMQ_ADMIN_PASSWORD": "admin-pass-1",
            "RABBITMQ_MONITORING_USER": monitor_user,
            "RABBITMQ_MONITORING_PASSWORD": "monitor-pass-1",
        }
        script = ROOT / "docker/rabbitmq/set-passwords.sh"
        result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "agent-pass-1" not in result.stdout + result.stderr, "passwords are never echoed"
        assert _ctl("authenticate_user", agent_user, "agent-pass-1", check=False).returncode == 0
        assert _ctl("authenticate_user", agent_user, "wrong", check=False).returncode != 0
        assert _ctl("authenticate_user", admin_user, "admin-pass-1", check=False).returncode == 0
        users = {line.split("\t")[0]: line for line in _ctl("list_users", "--no-table-headers").stdout.splitlines()}
        assert users[admin_user].endswith("[monitoring]")  # the UI's user watches: it cannot publish
        assert "monitoring" in users[monitor_user]
        permissions = _ctl("list_permissions", "-p", vhost, "--no-table-headers").stdout
        assert f"{admin_user}\t^$\t^$\t\\.dlq$" in permissions
        assert f"{monitor_user}\t^$\t^$\t^$" in permissions
        topic = _ctl("list_topic_permissions", "-p", vhost, "--no-table-headers").stdout
        assert f"{admin_user}\ttradeswarm.events\t^$\t^$" in topic

        # a second run (every container start) changes passwords in place
        env[f"RABBITMQ_PASSWORD_{agent_user.upper()}"] = "agent-pass-2"
        for key in ("RABBITMQ_ADMIN_USER", "RABBITMQ_ADMIN_PASSWORD", "RABBITMQ_MONITORING_USER"):
            del env[key]  # the optional users are skipped when their variables are unset
        rerun = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert _ctl("authenticate_user", agent_user, "agent-pass-2", check=False).returncode == 0
        assert "administrator" not in rerun.stdout
    finally:
        for user in (agent_user, admin_user, monitor_user):
            _ctl("delete_user", user, check=False)
        _ctl("delete_vhost", vhost, check=False)


def test_broker_entrypoint_marks_ready_only_after_the_passwords() -> None:
    entrypoint = (ROOT / "docker/rabbitmq/entrypoint.sh").read_text(encoding="utf-8")
    assert entrypoint.index("set-passwords.sh") < entrypoint.index('touch "$READY_FLAG"')
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(compose, dict)
    check = " ".join(compose["services"]["rabbitmq"]["healthcheck"]["test"])
    assert "/tmp/tradeswarm-broker-ready" in check
    for script in ("entrypoint.sh", "set-passwords.sh"):
        run(["sh", "-n", str(ROOT / "docker/rabbitmq" / script)])


def test_conf_overrides_the_image_defaults() -> None:
    """The official image's conf.d/10-defaults.conf opens guest to the network; ours is read after it."""
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(compose, dict)
    mounts = compose["services"]["rabbitmq"]["volumes"]
    assert "./docker/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/90-tradeswarm.conf:ro" in mounts
    text = (ROOT / "k8s/base/backends/rabbitmq.yaml").read_text(encoding="utf-8")
    assert "mountPath: /etc/rabbitmq/conf.d/90-tradeswarm.conf" in text
