"""No secret value is committed in the deployment files.

Scans docker-compose.yml, docker/, k8s/, .env.example and the deployment docs for private keys,
credentials inside URLs, secret-named settings with a literal value, well-known token formats and
long random-looking strings. Documented placeholders (empty values, ``${VAR}`` interpolations,
``<placeholder>``) are allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy._support import ROOT

SCANNED_FILES = (
    "docker-compose.yml",
    ".env.example",
    ".dockerignore",
    "docs/deployment.md",
    "docs/monitoring.md",
)
SCANNED_DIRS = ("docker", "k8s")
TEXT_SUFFIXES = {".yml", ".yaml", ".json", ".conf", ".md", ".py", ".example", ""}

PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@")
SECRET_ASSIGNMENT = re.compile(
    r"(?i)^(?:-\s*)?[\"']?([\w.-]*(?:password|passwd|secret|token|api_?key|private_?key)[\w.-]*)[\"']?\s*[:=]\s*(.*)$"
)
KNOWN_TOKENS = re.compile(
    r"AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9]{20,}"
)
REFERENCE_KEYS = {"secretName"}
"""Keys whose value names a Kubernetes Secret rather than holding one."""
WELL_KNOWN_DEFAULTS = {"guest"}
"""RabbitMQ's public loopback-only default password (the documented local default of the settings)."""
INTERPOLATION = re.compile(r"\$\{[^}]*\}")
LONG_RANDOM = re.compile(r"(?<![\w/.-])[A-Za-z0-9+/_-]{32,}={0,2}(?![\w/.-])")


def scanned_paths() -> list[Path]:
    paths = [ROOT / name for name in SCANNED_FILES if (ROOT / name).exists()]
    for directory in SCANNED_DIRS:
        paths += [p for p in sorted((ROOT / directory).rglob("*")) if p.is_file() and p.suffix in TEXT_SUFFIXES]
    return paths


def is_placeholder(value: str) -> bool:
    """Empty, an interpolation, a <placeholder>, a reference to another variable, or a boolean."""
    value = value.strip().strip(",").strip()
    value = value.split(" #", 1)[0].strip().strip("\"'")
    if not value or value in {"{}", "[]", "null", "true", "false"}:
        return True
    if value.startswith(("${", "$__", "<")) or re.fullmatch(r"\$[A-Z_][A-Z0-9_]*", value):
        return True
    # the name of a variable or Secret key (e.g. `key: TRADESWARM_API_TOKEN`)
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", value))


def findings(path: Path) -> list[str]:
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        where = f"{path.relative_to(ROOT)}:{number}"
        if PRIVATE_KEY.search(line):
            problems.append(f"{where}: private key")
        for match in URL_CREDENTIALS.finditer(line):
            if not is_placeholder(match.group(1)) and match.group(1) not in WELL_KNOWN_DEFAULTS:
                problems.append(f"{where}: credentials in a URL")
        if KNOWN_TOKENS.search(line):
            problems.append(f"{where}: token of a known format")
        for match in LONG_RANDOM.finditer(line):
            word = match.group(0)
            digits, letters = sum(c.isdigit() for c in word), sum(c.isalpha() for c in word)
            if digits >= 4 and letters >= 4:
                problems.append(f"{where}: long random-looking string")
        stripped = INTERPOLATION.sub("${}", line.strip())
        if stripped.startswith(("#", "//")):
            continue
        assignment = SECRET_ASSIGNMENT.search(stripped)
        if assignment and assignment.group(1) not in REFERENCE_KEYS and not is_placeholder(assignment.group(2)):
            problems.append(f"{where}: secret-named setting with a literal value: {stripped[:80]}")
    return problems


def test_deployment_files_hold_no_secret() -> None:
    paths = scanned_paths()
    assert len(paths) > 20, "the deployment files were found"
    problems = [problem for path in paths for problem in findings(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD=hunter2hunter2",
        "      GF_SECURITY_ADMIN_PASSWORD: s3cr3t-value",
        "TRADESWARM_RABBITMQ_URL=amqp://risk:pa55word@rabbitmq:5672/paper",
        "  token: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "aws = AKIAABCDEFGHIJKLMNOP",
        "-----BEGIN RSA PRIVATE KEY-----",
    ],
)
def test_a_committed_secret_is_found(tmp_path: Path, line: str) -> None:
    leaked = ROOT / "docker" / f".leak-test-{tmp_path.name}.yml"
    try:
        leaked.write_text(f"{line}\n", encoding="utf-8")
        assert findings(leaked)
    finally:
        leaked.unlink()


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD=",
        "      GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD in .env}",
        "TRADESWARM_RABBITMQ_URL: amqp://risk:${RABBITMQ_PASSWORD_RISK:?required}@rabbitmq:5672/paper",
        "      token: ${INFLUXDB_TOKEN}",
        "  - key: TRADESWARM_API_TOKEN",
        "# amqp://risk:<password>@rabbitmq:5672/paper",
    ],
)
def test_placeholders_are_allowed(tmp_path: Path, line: str) -> None:
    leaked = ROOT / "docker" / f".placeholder-test-{tmp_path.name}.yml"
    try:
        leaked.write_text(f"{line}\n", encoding="utf-8")
        assert not findings(leaked)
    finally:
        leaked.unlink()


def test_env_example_leaves_every_secret_empty() -> None:
    secret = re.compile(r"^(\w*(?:PASSWORD|TOKEN|SECRET|API_KEY)\w*)=(.*)$")
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = secret.match(line)
        if match:
            assert match.group(2) == "", f"{match.group(1)} must be empty in .env.example"
