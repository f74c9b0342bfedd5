"""docker/Dockerfile: multi-stage, slim, non-root, no build tools at run time, a /healthz HEALTHCHECK.

No Docker engine runs in CI: the Dockerfile is parsed (instructions per stage) and checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from tests.deploy._support import ROOT

DOCKERFILE = ROOT / "docker/Dockerfile"


@dataclass
class Stage:
    """One FROM ... block: its base image, name and instructions (keyword, argument)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions grouped by stage; continuation lines joined, comments dropped."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", argument.strip(), flags=re.IGNORECASE)
            assert match, line
            stages.append(Stage(base=match.group(1), name=match.group(2)))
        elif stages:
            stages[-1].instructions.append((keyword, argument.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def test_multi_stage_on_a_slim_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    for stage in stages:
        assert "slim" in stage.base, stage.base
    final = stages[-1]
    copies = final.args("COPY")
    assert any(c.startswith("--from=") for c in copies), "the runtime copies the built environment"
    assert not any(c.startswith(". ") for c in copies), "no source tree copied wholesale into the runtime"


def test_no_build_tools_in_the_runtime_stage(stages: list[Stage]) -> None:
    runtime = " ".join(stages[-1].args("RUN"))
    for tool in ("build-essential", "gcc", "make ", "apt-get install"):
        assert tool not in runtime, f"{tool!r} in the runtime stage"
    assert "build-essential" in " ".join(stages[0].args("RUN")), "compilers live in the build stage"


def test_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].args("USER")
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric uid, so Kubernetes runAsNonRoot can verify it"
    assert int(user) >= 10000, "a uid outside the range of system and host users"


def test_the_agent_is_chosen_by_the_command(stages: list[Stage]) -> None:
    entrypoint = json.loads(stages[-1].args("ENTRYPOINT")[-1])
    assert entrypoint == ["tradeswarm"]
    assert "agent" in (ROOT / "docker-compose.yml").read_text(encoding="utf-8")


def test_healthcheck_probes_healthz(stages: list[Stage]) -> None:
    checks = stages[-1].args("HEALTHCHECK")
    assert checks
    assert "/healthz" in checks[-1]
    assert "TRADESWARM_HTTP_PORT" in checks[-1]


def test_container_defaults_listen_on_all_interfaces_in_paper_mode(stages: list[Stage]) -> None:
    env = " ".join(stages[-1].args("ENV"))
    assert "TRADESWARM_HTTP_HOST=0.0.0.0" in env
    assert "TRADESWARM_MODE=paper" in env
    assert "EXCHANGE_API" not in DOCKERFILE.read_text(encoding="utf-8")


def test_copied_paths_exist(stages: list[Stage]) -> None:
    for stage in stages:
        for copy in stage.args("COPY"):
            if copy.startswith("--from="):
                continue
            sources = copy.split()[:-1]
            for source in sources:
                if source == "README.md":
                    continue  # written by the lead into the repository root
                assert (ROOT / source).exists(), source


def test_dockerignore_keeps_secrets_and_bulk_out() -> None:
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    for pattern in (".env", ".git", ".venv", "tests", "secrets"):
        assert pattern in lines, pattern
    assert "!.env.example" in lines
