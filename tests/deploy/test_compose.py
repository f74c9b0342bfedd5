"""docker-compose.yml: valid Compose Specification, complete, healthy ordering, paper mode, no secrets.

No Docker engine runs in CI, so the file is validated against the Compose Specification JSON
Schema (a copy in tests/deploy/schemas, see its README) and checked structurally.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from tests.deploy._support import AGENT_NAMES, ROOT, load_yaml, service_name

COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA = json.loads((ROOT / "tests/deploy/schemas/compose-spec.json").read_text(encoding="utf-8"))
INFRA = ("rabbitmq", "timescaledb", "influxdb", "prometheus", "grafana")
PUBLISHED = {"rabbitmq": 15672, "grafana": 3000, "prometheus": 9090, "orchestrator": 8000}
DOCS = (ROOT / "docs/deployment.md", ROOT / "docs/monitoring.md", ROOT / "README.md")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


def test_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("key", "value"), [("restart_policy", "always"), ("ports", "8000"), ("depends_on", {"rabbitmq": {"condition": 1}})]
)
def test_the_schema_rejects_a_broken_service(compose: dict[str, Any], key: str, value: object) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["risk"][key] = value
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(broken))


def test_every_agent_and_backend_service_exists(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for agent in AGENT_NAMES:
        service = services[service_name(agent)]
        assert service["command"] == ["agent", agent]
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
    for name in INFRA:
        assert name in services


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check.get("test"), f"{name} has no healthcheck test"
        assert not check.get("disable"), f"{name} disables its healthcheck"
    for agent in AGENT_NAMES:
        test = " ".join(compose["services"][service_name(agent)]["healthcheck"]["test"])
        assert "/healthz" in test
        assert "9100" in test


def test_dependencies_wait_until_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] == "service_healthy", f"{name} -> {dependency}"
    for agent in AGENT_NAMES:
        assert {"rabbitmq", "timescaledb", "influxdb"} <= set(services[service_name(agent)]["depends_on"])


def test_agents_run_paper_mode_without_exchange_keys(compose: dict[str, Any]) -> None:
    for agent in AGENT_NAMES:
        env = compose["services"][service_name(agent)]["environment"]
        assert env["TRADESWARM_MODE"] == "paper"
        assert env["TRADESWARM_HTTP_HOST"] == "0.0.0.0"
        assert not [k for k in env if "EXCHANGE_API" in k or k == "TRADESWARM_LIVE_TRADING_CONFIRMED"]
    assert "EXCHANGE_API" not in COMPOSE_FILE.read_text(encoding="utf-8")


def test_each_agent_uses_its_own_broker_user(compose: dict[str, Any]) -> None:
    urls = {}
    for agent in AGENT_NAMES:
        url = compose["services"][service_name(agent)]["environment"]["TRADESWARM_RABBITMQ_URL"]
        match = re.fullmatch(r"amqp://(\w+):\$\{(\w+):\?[^}]+\}@rabbitmq:5672/paper", url)
        assert match, url
        assert match.group(1) == agent
        urls[agent] = match.group(2)
    assert len(set(urls.values())) == len(AGENT_NAMES), "one password variable per agent"


def test_agent_containers_are_hardened(compose: dict[str, Any]) -> None:
    for agent in AGENT_NAMES:
        service = compose["services"][service_name(agent)]
        assert service["read_only"] is True
        assert service["user"].split(":")[0] != "0"
        assert "ALL" in service["cap_drop"]
        assert "no-new-privileges:true" in service["security_opt"]


def test_only_gateways_and_published_services_reach_outside(compose: dict[str, Any]) -> None:
    assert compose["networks"]["backend"]["internal"] is True
    services = compose["services"]
    outside = {name for name, s in services.items() if "edge" in s.get("networks", [])}
    assert outside == {"data-collection", "execution", "desk", "orchestrator", "rabbitmq", "prometheus", "grafana"}
    for name, port in PUBLISHED.items():
        published = [p for p in services[name].get("ports", []) if str(p).endswith(f":{port}:{port}")]
        assert published, f"{name} does not publish {port}"
        assert name in outside, f"{name} publishes a port but sits only on the internal network"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    missing = []
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not (ROOT / source).exists():
                missing.append(source)
    assert not missing, f"bind mounts without a file in the repository: {missing}"


def test_every_variable_is_documented_in_env_example() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{(\w+)", text))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*(\w+)=", example, flags=re.MULTILINE))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def test_required_secrets_have_no_default() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for variable in re.findall(r"\$\{(\w*(?:PASSWORD|TOKEN)\w*)([^}]*)\}", text):
        name, modifier = variable
        assert modifier.startswith(":?"), f"{name} must be required (${{{name}:?...}}), never defaulted"


def test_services_named_in_the_docs_exist(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    mentioned: set[str] = set()
    pattern = re.compile(r"docker compose (?:logs|restart|stop|start|up|exec|ps)(?: -[-\w]+)* ([a-z][\w-]*)")
    table_row = re.compile(r"^\|\s*`([a-z][\w-]*)`\s*\|", re.MULTILINE)
    for doc in DOCS:
        if not doc.exists():
            continue
        text = doc.read_text(encoding="utf-8")
        for match in pattern.finditer(text):
            mentioned.add(match.group(1))
        if doc.name == "deployment.md":
            mentioned.update(table_row.findall(text.split("## Run with Docker", 1)[-1].split("\n## ", 1)[0]))
    assert mentioned, "docs/deployment.md lists the services"
    assert mentioned <= services, f"documented but not in docker-compose.yml: {sorted(mentioned - services)}"
    assert services <= mentioned, f"in docker-compose.yml but not documented: {sorted(services - mentioned)}"


def test_docs_list_the_urls_of_the_published_ports(compose: dict[str, Any]) -> None:
    text = (ROOT / "docs/deployment.md").read_text(encoding="utf-8")
    for section in ("## Run with Docker", "## Deploy on Kubernetes", "kubectl apply -k k8s/overlays/paper"):
        assert section in text
    for name, port in PUBLISHED.items():
        url = f"http://localhost:{port}" + ("/docs" if name == "orchestrator" else "")
        assert url in text, f"docs/deployment.md does not give {url} ({name})"
    assert "## Run with Docker" in text
    assert "# Monitoring" in (ROOT / "docs/monitoring.md").read_text(encoding="utf-8")
