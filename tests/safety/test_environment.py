"""Each agent process gets only the environment it needs (issue #19); the real processes of a stack are
checked in tests/safety/test_crash_e2e.py (``/proc/<pid>/environ``)."""

from __future__ import annotations

from agents.base.registry import AGENT_NAMES
from tradeswarm.stack import AGENT_SECRETS, agent_environment

OPERATOR = {
    "PATH": "/usr/bin",
    "HOME": "/home/op",
    "LC_ALL": "C.UTF-8",
    "AWS_SECRET_ACCESS_KEY": "cloud-secret",
    "GITHUB_TOKEN": "gh-secret",
    "TRADESWARM_API_TOKEN": "api-secret",
    "TRADESWARM_EXCHANGE_API_KEY": "key",
    "TRADESWARM_EXCHANGE_API_SECRET": "secret",
    "TRADESWARM_POSTGRES_DSN": "postgresql://u:pw@db/ts",
    "TRADESWARM_INFLUX_TOKEN": "influx-secret",
    "TRADESWARM_SOMETHING_NEW_TOKEN": "unknown-secret",
    "TRADESWARM_RISK_WEBHOOK_TOKEN": "risk-only",
    "TRADESWARM_SYMBOLS": "BTC/USDT",
    "TRADESWARM_EXECUTION_ALLOW_UNVERIFIED_KEY_PERMISSIONS": "false",
}


def test_only_the_orchestrator_gets_the_api_token_and_only_execution_the_exchange_keys() -> None:
    envs = {name: agent_environment(name, OPERATOR, {"TRADESWARM_AGENT_ID": f"{name}-1"}) for name in AGENT_NAMES}
    assert [n for n, e in envs.items() if "TRADESWARM_API_TOKEN" in e] == ["orchestrator"]
    assert [n for n, e in envs.items() if "TRADESWARM_EXCHANGE_API_KEY" in e] == ["execution"]
    assert [n for n, e in envs.items() if "TRADESWARM_EXCHANGE_API_SECRET" in e] == ["execution"]
    assert sorted(n for n, e in envs.items() if "TRADESWARM_POSTGRES_DSN" in e) == sorted(
        AGENT_SECRETS["TRADESWARM_POSTGRES_DSN"]
    )
    for name, env in envs.items():
        assert "AWS_SECRET_ACCESS_KEY" not in env  # nothing of the operator's other tools
        assert "GITHUB_TOKEN" not in env
        assert "TRADESWARM_SOMETHING_NEW_TOKEN" not in env  # an undeclared secret reaches nobody
        assert ("TRADESWARM_RISK_WEBHOOK_TOKEN" in env) == (name == "risk")  # an agent's own prefix
        assert env["TRADESWARM_SYMBOLS"] == "BTC/USDT"  # plain settings reach every agent
        assert env["PATH"] == "/usr/bin"
        assert env["LC_ALL"] == "C.UTF-8"
        assert env["TRADESWARM_AGENT_ID"] == f"{name}-1"
    assert "TRADESWARM_EXECUTION_ALLOW_UNVERIFIED_KEY_PERMISSIONS" in envs["execution"]  # a flag, not a secret
