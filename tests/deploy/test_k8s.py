"""Kubernetes manifests: both overlays render with kustomize and every object is valid and hardened.

Runs offline: ``kubectl kustomize`` renders, ``kubernetes-validate`` checks each object against the
newest Kubernetes schema it ships, and KEDA objects (a CRD) against tests/deploy/schemas.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from core.ports import QueueSpec
from core.routing import dead_letter_queue, partition_of, queue_name
from core.settings import Settings
from tests.deploy._support import AGENT_NAMES, ROOT, require_binary, run, service_name
from tradeswarm.broker import agent_queues

K8S = ROOT / "k8s"
OVERLAYS = ("paper", "live")
KEDA_SCHEMA = json.loads((ROOT / "tests/deploy/schemas/keda-scaledobject.json").read_text(encoding="utf-8"))
SCALABLE = {"technical-analysis", "strategy"}
GATEWAYS = {"data-collection", "execution", "desk"}
"""The agents that reach the internet on 443: the exchange gateways and the AI desk (its model's API)."""
WORKLOADS = ("Deployment", "StatefulSet")


def render(path: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` renders for a kustomization directory."""
    kubectl = require_binary("kubectl")
    out = run([kubectl, "kustomize", str(path)]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(K8S / "overlays" / request.param)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_kubernetes_validate_ships_a_current_version() -> None:
    major, minor, _ = (int(p) for p in kubernetes_validate.latest_version().split("."))
    assert (major, minor) >= (1, 30)


def test_every_object_validates(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    version = kubernetes_validate.latest_version()
    keda_kinds = {"ScaledObject", "TriggerAuthentication"}
    problems = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith("keda.sh/"):
            assert obj["kind"] in keda_kinds, name
            schema = {**KEDA_SCHEMA, "$ref": f"#/definitions/{obj['kind']}"}
            errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
            problems += [f"{name}: {e}" for e in errors]
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_a_validation_error_is_caught() -> None:
    """The validator really rejects a broken object (guards against a silently passing check)."""
    deployment = by_kind(render(K8S / "overlays/paper"), "Deployment")["risk"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_a_deployment_per_agent_running_its_agent(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    deployments = by_kind(objects, "Deployment")
    services = by_kind(objects, "Service")
    for agent in AGENT_NAMES:
        name = service_name(agent)
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["agent", agent]
        assert container["image"].endswith(":0.1.0"), "the overlay pins the image tag"
        assert name in services
    assert any(p["port"] == 8000 for p in services["orchestrator"]["spec"]["ports"])


def test_workloads_are_hardened(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    for obj in objects:
        if obj["kind"] not in WORKLOADS:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container, f"{name}: no {probe}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert {"cpu", "memory"} <= set(resources["limits"]), name
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name


def test_agents_probe_their_health_endpoints(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    for name, deployment in by_kind(objects, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http-metrics"] == 9100


def test_config_map_holds_valid_settings_and_no_secret(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    mode, objects = overlay
    data = by_kind(objects, "ConfigMap")["tradeswarm-config"]["data"]
    assert data["TRADESWARM_MODE"] == mode
    secret_fields = {
        "RABBITMQ_URL",
        "POSTGRES_DSN",
        "INFLUX_TOKEN",
        "EXCHANGE_API_KEY",
        "EXCHANGE_API_SECRET",
        "API_TOKEN",
    }
    assert not {f"TRADESWARM_{f}" for f in secret_fields} & set(data), "secrets never go in a ConfigMap"
    fields = {k.removeprefix("TRADESWARM_").lower(): v for k, v in data.items()}
    if mode == "live":
        assert data["TRADESWARM_LIVE_TRADING_CONFIRMED"] == "true"
        fields |= {"exchange_api_key": "k", "exchange_api_secret": "s"}  # mounted from the Secret
    else:
        assert data["TRADESWARM_LIVE_TRADING_CONFIRMED"] == "false"
    settings = Settings.model_validate(fields)
    assert settings.mode.value == mode
    assert settings.http_host == "0.0.0.0"


def test_paper_holds_no_exchange_keys_live_only_in_execution(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    mode, objects = overlay
    rendered = yaml.safe_dump_all(objects)
    holders = {
        name
        for name, d in by_kind(objects, "Deployment").items()
        if "tradeswarm-exchange" in yaml.safe_dump(d["spec"]["template"]["spec"]["volumes"])
    }
    if mode == "paper":
        assert "EXCHANGE_API" not in rendered
        assert not holders
    else:
        assert holders == {"execution"}


def test_no_secret_object_is_rendered(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Secrets are created out of band, so `kubectl apply -k` never overwrites real values."""
    _, objects = overlay
    assert not by_kind(objects, "Secret")


def test_secret_templates_hold_no_values() -> None:
    for mode in OVERLAYS:
        docs = [d for d in yaml.safe_load_all((K8S / "overlays" / mode / "secrets.template.yaml").read_text()) if d]
        version = kubernetes_validate.latest_version()
        names = set()
        for doc in docs:
            assert doc["kind"] == "Secret"
            assert doc["metadata"]["namespace"] == f"tradeswarm-{mode}"
            assert "data" not in doc
            assert all(value == "" for value in doc["stringData"].values()), doc["metadata"]["name"]
            kubernetes_validate.validate(doc, version, strict=True)
            names.add(doc["metadata"]["name"])
        referenced = _referenced_secrets(render(K8S / "overlays" / mode))
        assert referenced <= names | {"rabbitmq-definitions"}, f"templates miss {referenced - names}"


def _referenced_secrets(objects: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("secretName",):
                if key in node:
                    found.add(node[key])
            if "secretKeyRef" in node:
                found.add(node["secretKeyRef"]["name"])
            if "secret" in node and isinstance(node["secret"], dict) and "name" in node["secret"]:
                found.add(node["secret"]["name"])
            if "secretTargetRef" in node:
                found.update(ref["name"] for ref in node["secretTargetRef"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objects)
    return found


def test_live_overlay_uses_its_own_namespace_vhost_and_flag() -> None:
    paper, live = render(K8S / "overlays/paper"), render(K8S / "overlays/live")
    assert {o["metadata"].get("namespace") for o in paper if o["kind"] != "Namespace"} == {"tradeswarm-paper"}
    assert {o["metadata"].get("namespace") for o in live if o["kind"] != "Namespace"} == {"tradeswarm-live"}
    for objects, vhost in ((paper, "paper"), (live, "live")):
        for scaled in by_kind(objects, "ScaledObject").values():
            rabbit = [t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"]
            assert rabbit[0]["metadata"]["vhostName"] == vhost
    template = (K8S / "overlays/live/secrets.template.yaml").read_text()
    assert "@rabbitmq:5672/live" in template
    assert "@rabbitmq:5672/paper" not in template


def settings_of(objects: list[dict[str, Any]]) -> Settings:
    """The core settings an agent of the overlay gets (exchange keys stand in for the live Secret)."""
    data = by_kind(objects, "ConfigMap")["tradeswarm-config"]["data"]
    fields = {k.removeprefix("TRADESWARM_").lower(): v for k, v in data.items()}
    if fields["mode"] == "live":
        fields |= {"exchange_api_key": "k", "exchange_api_secret": "s"}
    return Settings.model_validate(fields)


def partition_safe(queues: tuple[QueueSpec, ...], partitions: int) -> bool:
    """Whether replicas of an agent keep per-symbol order: every queue single-active-consumer and,
    with several partitions, one queue per partition (``<kind>.<purpose>.p<N>``)."""
    if not queues or not all(q.single_active_consumer for q in queues):
        return False
    if partitions == 1:
        return True
    suffixes = {q.name.rsplit(".", 1)[-1] for q in queues}
    return {f"p{i}" for i in range(partitions)} <= suffixes


def test_scaling_follows_the_partition_queues(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """KEDA counts exactly the agent's own queues, and scales out only as far as the agent's real
    queue declarations keep per-symbol order (one replica while they are not partitioned)."""
    _, objects = overlay
    settings = settings_of(objects)
    partitions = settings.rabbitmq_partitions
    scaled = by_kind(objects, "ScaledObject")
    assert set(scaled) == SCALABLE
    for name, obj in scaled.items():
        spec = obj["spec"]
        kind = name.replace("-", "_")
        assert spec["scaleTargetRef"]["name"] == name
        queues = agent_queues(kind, settings)
        limit = partitions if partition_safe(queues, partitions) else 1
        assert spec["maxReplicaCount"] <= limit, f"{name}: more replicas than its queues keep in order"
        assert spec["fallback"]["replicas"] <= limit
        trigger = next(t for t in spec["triggers"] if t["type"] == "rabbitmq")
        assert trigger["metadata"]["mode"] == "QueueLength"
        pattern = re.compile(trigger["metadata"]["queueName"])
        for queue in queues:
            assert pattern.search(queue.name), f"{queue.name} is not counted"
            assert not pattern.search(dead_letter_queue(queue.name)), "dead letters are not load"
        if partitions > 1:
            assert {q.name for q in queues} >= {
                queue_name(kind, "candles" if kind == "technical_analysis" else "indicators", i)
                for i in range(partitions)
            }
        for control in (f"commands.{name}-7d9f-x2", f"assignments.{name}-7d9f-x2"):
            assert not pattern.search(queue_name(kind, control)), "per-replica control queues are not load"
        for other in ("risk", "execution"):
            assert not any(pattern.search(q.name) for q in agent_queues(other, settings)), "only its own queues"


def test_partition_rule_detects_unsafe_queues() -> None:
    plain = (QueueSpec(name="strategy.indicators", patterns=("a.#",)),)
    sac = tuple(
        QueueSpec(name=queue_name("strategy", "indicators", i), patterns=("a.#",), single_active_consumer=True)
        for i in range(4)
    )
    assert not partition_safe(plain, 4)
    assert partition_safe(sac, 4)
    assert not partition_safe(sac, 8)
    assert all(0 <= partition_of(s, 8) < 8 for s in ("BTC/USDT", "ETH/USDT"))


def test_hpa_component_is_a_working_fallback(tmp_path: Path) -> None:
    """A cluster without KEDA swaps components/keda for components/hpa; that overlay renders and validates."""
    overlay_dir = tmp_path / "overlay"
    overlay_dir.mkdir()
    # kustomize accepts (relative) directories outside the kustomization root: use the real base.
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "tradeswarm-paper",
        "resources": [os.path.relpath(K8S / "base", overlay_dir)],
        "components": [os.path.relpath(K8S / "components" / "hpa", overlay_dir)],
    }
    (overlay_dir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objects = render(overlay_dir)
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    assert set(hpas) == SCALABLE
    assert not by_kind(objects, "ScaledObject")
    settings = settings_of(objects)
    for name, hpa in hpas.items():
        kubernetes_validate.validate(hpa, kubernetes_validate.latest_version(), strict=True)
        queues = agent_queues(name.replace("-", "_"), settings)
        limit = settings.rabbitmq_partitions if partition_safe(queues, settings.rabbitmq_partitions) else 1
        assert hpa["spec"]["maxReplicas"] <= limit, f"{name}: more replicas than its queues keep in order"


def test_disruption_budgets_cover_every_agent(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    pdbs = by_kind(objects, "PodDisruptionBudget")
    deployments = by_kind(objects, "Deployment")
    for name, deployment in deployments.items():
        selector = pdbs[name]["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
        if name not in SCALABLE:
            assert deployment["spec"]["strategy"]["type"] == "Recreate", f"{name} must never run twice"


def _policies_selecting(objects: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    chosen = []
    for policy in by_kind(objects, "NetworkPolicy").values():
        wanted = policy["spec"]["podSelector"].get("matchLabels", {})
        if wanted.items() <= labels.items():
            chosen.append(policy)
    return chosen


def test_network_policies_limit_agent_egress(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    assert by_kind(objects, "NetworkPolicy")["default-deny"]["spec"]["podSelector"] == {}
    for name, deployment in by_kind(objects, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        egress_ports = set()
        internet = False
        for policy in _policies_selecting(objects, labels):
            for rule in policy["spec"].get("egress", []):
                ports = {p["port"] for p in rule.get("ports", [])}
                egress_ports |= ports
                if any("ipBlock" in peer for peer in rule.get("to", [])):
                    internet = True
                    assert ports == {443}, f"{name}: the internet only on 443"
        assert {5672, 5432, 8086, 53} <= egress_ports, name
        assert internet == (name in GATEWAYS), f"{name}: internet egress is for the gateway agents only"


def test_rabbitmq_config_copies_are_identical() -> None:
    for filename in ("rabbitmq.conf", "enabled_plugins", "entrypoint.sh", "set-passwords.sh"):
        original = (ROOT / "docker/rabbitmq" / filename).read_bytes()
        assert (K8S / "base/backends/rabbitmq" / filename).read_bytes() == original, (
            f"k8s/base/backends/rabbitmq/{filename} drifted from docker/rabbitmq/{filename}: copy it again"
        )


def test_kubectl_missing_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception, match="kubectl is not installed"):
        require_binary("kubectl")
