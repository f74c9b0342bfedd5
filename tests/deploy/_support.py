"""Helpers of the deployment tests: the repository root and the external binaries they need.

The binaries (promtool, prometheus, kubectl) are installed in CI (`.ci/run`); a missing binary
FAILS the test with a clear message instead of skipping it, so CI never goes green untested.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""

AGENT_NAMES = (
    "data_collection",
    "technical_analysis",
    "strategy",
    "risk",
    "compliance",
    "execution",
    "orchestrator",
    "desk",
)
"""Every agent kind; the compose services and k8s workloads use the same names with '-'."""

INSTALL_HINT = {
    "promtool": "apt-get install prometheus (Debian package; .ci/run installs it)",
    "prometheus": "apt-get install prometheus (Debian package; .ci/run installs it)",
    "kubectl": "install kubectl (https://kubernetes.io/docs/tasks/tools/; .ci/run installs it)",
}


def service_name(agent: str) -> str:
    """The compose service / Kubernetes name of an agent kind (``data_collection`` -> ``data-collection``)."""
    return agent.replace("_", "-")


def require_binary(name: str) -> str:
    """The path of ``name``; fails the test (never skips) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed but this test needs it: {INSTALL_HINT.get(name, name)}")
    return path


def run(args: Sequence[str], *, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command and fail the test with its output when it exits non-zero."""
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def load_yaml(path: Path) -> object:
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))
