"""Prometheus: the config and rules pass promtool, the alerts fire as specified, and the real
Prometheus scrapes locally started agent endpoints, evaluates the rules and every dashboard query.

promtool and prometheus come from Debian's ``prometheus`` package (CI installs it); a missing binary
fails these tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.deploy._promql import exported_names, metric_names
from tests.deploy._support import AGENT_NAMES, ROOT, load_yaml, require_binary, run, service_name
from tests.factories import free_port

PROM_DIR = ROOT / "docker/prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
K8S_CONFIG = ROOT / "k8s/monitoring/prometheus.yml"
RULES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
REQUIRED_ALERTS = {
    "TradeswarmAgentDown",
    "TradeswarmDeadLetterQueueNotEmpty",
    "TradeswarmConsumerLag",
    "TradeswarmDrawdownOverLimit",
    "TradeswarmRiskHalted",
    "TradeswarmFeedStale",
    "TradeswarmOrderRejectsSpike",
}


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULES:
        data = load_yaml(path)
        assert isinstance(data, dict)
        for group in data["groups"]:
            found += group["rules"]
    return found


@pytest.mark.parametrize("config", [CONFIG, K8S_CONFIG], ids=["compose", "kubernetes"])
def test_promtool_check_config(config: Path) -> None:
    promtool = require_binary("promtool")
    out = run([promtool, "check", "config", str(config)])
    assert "SUCCESS" in out.stdout + out.stderr


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool")
    assert RULES
    out = run([promtool, "check", "rules", *map(str, RULES)])
    assert "SUCCESS" in out.stdout + out.stderr


def test_promtool_rule_unit_tests() -> None:
    """docker/prometheus/tests: every alert fires on synthetic series as specified, and only then."""
    promtool = require_binary("promtool")
    assert RULE_TESTS
    run([promtool, "test", "rules", *map(str, RULE_TESTS)])
    tested = set()
    for path in RULE_TESTS:
        data = load_yaml(path)
        assert isinstance(data, dict)
        for case in data["tests"]:
            tested |= {check["alertname"] for check in case.get("alert_rule_test", [])}
    assert {r["alert"] for r in rules() if "alert" in r} <= tested, "every alert has a unit test"


def test_required_alerts_exist() -> None:
    assert {r["alert"] for r in rules() if "alert" in r} >= REQUIRED_ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]


def test_rules_name_only_exported_metrics() -> None:
    known = exported_names()
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert')}: {sorted(unknown)} are not exported (metric catalogue)"


def test_scrape_config_covers_every_agent_and_the_broker() -> None:
    config = load_yaml(CONFIG)
    assert isinstance(config, dict)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for c in jobs["tradeswarm-agents"]["static_configs"] for t in c["targets"]}
    assert targets == {f"{service_name(a)}:9100" for a in AGENT_NAMES}
    assert {t for c in jobs["rabbitmq"]["static_configs"] for t in c["targets"]} == {"rabbitmq:15692"}
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(compose, dict)
    assert {t.split(":")[0] for t in targets} <= set(compose["services"])
    # the relabelling names each target by its compose service, and not `agent` (the metrics' own label)
    (relabel,) = jobs["tradeswarm-agents"]["relabel_configs"]
    assert relabel["target_label"] == "service"
    for target in targets:
        match = re.fullmatch(relabel["regex"], target)
        assert match
        assert match.expand(relabel["replacement"].replace("$", "\\")) == target.split(":")[0]


# --- the real Prometheus ------------------------------------------------------------------------


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def agent_endpoints() -> Iterator[dict[str, int]]:
    """Three agent metric endpoints (agents.base.http.HealthServer) in a separate process."""
    kinds = ["risk", "strategy", "execution"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.deploy._metrics_endpoint", *kinds],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"the metrics endpoint did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield {kind: int(port) for kind, port in json.loads(line).items()}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_prometheus(tmp_path: Path, endpoints: dict[str, int]) -> Iterator[str]:
    """The real Prometheus on a free loopback port, with the repository's config, rules and jobs,
    pointed at local agent endpoints ``{agent kind: port}`` (scrape and evaluation every second)."""
    binary = require_binary("prometheus")
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = load_yaml(CONFIG)
    assert isinstance(config, dict)
    port = free_port()
    config["global"] |= {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROM_DIR / "rules" / "*.yml")]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    agents = jobs["tradeswarm-agents"]
    # loopback addresses carry no service name: label each target as its compose service instead
    agents["relabel_configs"] = []
    agents["static_configs"] = [
        {"targets": [f"127.0.0.1:{p}"], "labels": {"service": service_name(kind)}} for kind, p in endpoints.items()
    ]
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    config["scrape_configs"] = [agents, jobs["prometheus"]]  # no RabbitMQ metrics plugin runs here
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "prometheus.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"Prometheus did not start:\n{log_path.read_text()}")
                    time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def prometheus(tmp_path: Path, agent_endpoints: dict[str, int]) -> Iterator[str]:
    """The real Prometheus scraping the stand-in agent endpoints."""
    with running_prometheus(tmp_path, agent_endpoints) as base:
        yield base


def wait_for(check: Any, what: str, timeout: float = 45) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last answer: {last}")


def wait_for_series(base: str, expr: str, count: int) -> list[dict[str, Any]]:
    """Poll an instant query until it returns ``count`` series."""

    def enough() -> list[dict[str, Any]] | None:
        result: list[dict[str, Any]] = query(base, expr)["data"]["result"]
        return result if len(result) == count else None

    found: list[dict[str, Any]] = wait_for(enough, f"{count} series of {expr}")
    return found


def query(base: str, expr: str) -> dict[str, Any]:
    answer: dict[str, Any] = get_json(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    return answer


def grafana_exprs() -> list[str]:
    exprs = []
    for path in sorted((ROOT / "docker/grafana/dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [t["expr"] for t in panel["targets"] if "expr" in t]
    return exprs


@pytest.mark.slow
def test_real_prometheus_scrapes_agents_and_evaluates_rules(prometheus: str, agent_endpoints: dict[str, int]) -> None:
    def targets_up() -> list[dict[str, Any]] | None:
        active = get_json(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
        agents = [t for t in active if t["labels"]["job"] == "tradeswarm-agents"]
        return agents if len(agents) == len(agent_endpoints) and all(t["health"] == "up" for t in agents) else None

    agents = wait_for(targets_up, "every agent target up")
    assert {t["labels"]["service"] for t in agents} == {service_name(k) for k in agent_endpoints}

    wait_for_series(prometheus, 'up{job="tradeswarm-agents"} == 1', len(agent_endpoints))

    # every catalogue series name the dashboards and rules rely on is really exported and scraped
    names = {
        n
        for e in grafana_exprs() + [r["expr"] for r in rules()]
        for n in metric_names(e)
        if n.startswith("tradeswarm_")
    }
    missing = [n for n in sorted(names) if not query(prometheus, f"count({n})")["data"]["result"]]
    assert not missing, f"not exported by the agents' /metrics: {missing}"

    # the rules are loaded and evaluate without error; the HALTED state fires its alert
    def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        evaluated = [r for r in loaded if r.get("lastEvaluation", "").startswith("0001")] == []
        return loaded if loaded and evaluated else None

    loaded = wait_for(rules_evaluated, "rules evaluated")
    assert len(loaded) == len(rules())
    assert all(r["health"] == "ok" for r in loaded), [r for r in loaded if r["health"] != "ok"]
    firing = wait_for(
        lambda: [
            a
            for a in get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == "TradeswarmRiskHalted" and a["state"] == "firing"
        ],
        "TradeswarmRiskHalted firing",
    )
    assert firing[0]["labels"]["severity"] == "critical"


@pytest.mark.slow
def test_real_prometheus_parses_every_dashboard_query(prometheus: str) -> None:
    substitutions = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
    exprs = grafana_exprs()
    assert len(exprs) > 20
    problems = []
    for template in exprs:
        expr = template
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        try:
            answer = query(prometheus, expr)
        except urllib.error.HTTPError as exc:
            problems.append(f"{expr}: {exc.read().decode()}")
            continue
        if answer["status"] != "success":
            problems.append(f"{expr}: {answer}")
    assert not problems, "\n".join(problems)


@pytest.fixture
def real_agents(rabbit_url: str, tmp_path: Path) -> Iterator[dict[str, int]]:
    """Real agent processes, started as the containers start them (``tradeswarm agent <kind>``),
    on the local RabbitMQ (a fresh vhost); ``{kind: metrics port}`` once each is ready."""
    kinds = ("technical_analysis", "strategy")
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    logs: list[IO[bytes]] = []
    try:
        for kind in kinds:
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "TRADESWARM_MODE": "paper",
                "TRADESWARM_RABBITMQ_URL": rabbit_url,
                "TRADESWARM_HTTP_HOST": "127.0.0.1",
                "TRADESWARM_HTTP_PORT": str(port),
                "TRADESWARM_AGENT_ID": f"{kind.replace('_', '-')}-deploytest",
                "TRADESWARM_HEARTBEAT_INTERVAL_S": "1",
                "TRADESWARM_HEARTBEAT_TIMEOUT_S": "5",
                "TRADESWARM_LOG_FORMAT": "json",
            }
            log = (tmp_path / f"{kind}.log").open("wb")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tradeswarm", "agent", kind], cwd=ROOT, env=env, stdout=log, stderr=log
                )
            )
            ports[kind] = port
        for (kind, port), proc in zip(ports.items(), procs, strict=True):

            def ready(port: int = port, proc: subprocess.Popen[bytes] = proc, kind: str = kind) -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"{kind} exited {proc.returncode}:\n{(tmp_path / f'{kind}.log').read_text()}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                        return bool(response.status == 200)
                except OSError:
                    return False

            wait_for(ready, f"{kind} ready", timeout=90)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in logs:
            handle.close()


@pytest.mark.integration
@pytest.mark.slow
def test_real_prometheus_scrapes_real_agents(real_agents: dict[str, int], tmp_path: Path) -> None:
    """The agents as the image runs them, scraped by the real Prometheus with the repository's config."""
    with running_prometheus(tmp_path / "prometheus", real_agents) as base:
        ready = wait_for_series(
            base, 'tradeswarm_agent_ready == 1 and on (service) up{job="tradeswarm-agents"} == 1', len(real_agents)
        )
        assert {r["metric"]["agent"] for r in ready} == set(real_agents)
        assert {r["metric"]["service"] for r in ready} == {service_name(k) for k in real_agents}
        info = wait_for_series(base, "tradeswarm_agent_info == 1", len(real_agents))
        assert {r["metric"]["agent"] for r in info} == set(real_agents)
        assert all(r["metric"]["version"] for r in info)
