"""``tradeswarm llm usage``: today's tokens and cost by role and model, from PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from core.llm import BudgetExhausted
from infrastructure.llm.factory import build_language_model, open_postgres_ledgers
from infrastructure.llm.settings import load_llm_settings
from tests.llm.helpers import GOOD_TECHNICAL, ScriptedModel, TechnicalView, TradeProposal, make_call
from tradeswarm import cli_llm
from tradeswarm.cli import app

runner = CliRunner()


async def spend(dsn: str) -> None:
    """Two technical answers, one trader answer, one refusal for budget."""
    db, budget, log = await open_postgres_ledgers(dsn, 5_000, retry_for_s=10)
    settings = load_llm_settings(provider="rules", prices="scripted-1=1000/2000")
    trade = {"action": "HOLD", "size_pct": 0, "reasoning": ["flat"]}
    model = build_language_model(
        settings, rules=ScriptedModel(GOOD_TECHNICAL, GOOD_TECHNICAL, trade), budget=budget, log=log, instrument=False
    )
    try:
        await model.ask(make_call("technical"), TechnicalView)
        await model.ask(make_call("technical", decision_id="dec-2"), TechnicalView)
        await model.ask(make_call("trader"), TradeProposal)
        with pytest.raises(BudgetExhausted):
            await model.ask(make_call("trader", max_tokens=5_000), TradeProposal)
    finally:
        await db.close()


@pytest.mark.integration
def test_usage_by_role_and_model(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAILY_TOKEN_BUDGET", "5000")
    asyncio.run(spend(postgres_dsn))
    result = runner.invoke(app, ["llm", "usage", "--dsn", postgres_dsn, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["budget"] == 5000
    assert report["used"] == 3 * 140
    assert report["remaining"] == 5000 - 420
    rows = {(r["role"], r["model"]): r for r in report["rows"]}
    tech = rows[("technical", "scripted")]
    assert (tech["calls"], tech["tokens_in"], tech["tokens_out"]) == (2, 200, 80)
    assert tech["cost_usd"] == "0.3600000000"  # 2 x (100 x 1000 + 40 x 2000) / 1e6
    trader = rows[("trader", "scripted")]
    assert (trader["calls"], trader["failed"]) == (1, 1)

    monkeypatch.setattr(cli_llm, "console", Console(width=160))
    table = runner.invoke(app, ["llm", "usage", "--dsn", postgres_dsn])
    assert table.exit_code == 0, table.output
    assert "420 of 5,000 tokens" in table.output
    assert "technical" in table.output
    assert "trader" in table.output
    assert "0.3600" in table.output


@pytest.mark.integration
def test_a_database_without_desk_shows_no_usage(postgres_dsn: str) -> None:
    result = runner.invoke(app, ["llm", "usage", "--dsn", postgres_dsn])
    assert result.exit_code == 0, result.output
    assert "no LLM usage recorded" in result.output


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    result = runner.invoke(app, ["llm", "usage", "--dsn", "postgresql://desk:hunter2pw@127.0.0.1:1/tradeswarm"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "not reachable at 127.0.0.1:1/tradeswarm" in lines[0]
    assert "hunter2pw" not in result.output
    assert "Traceback" not in result.output


def test_a_bad_date_is_one_line() -> None:
    result = runner.invoke(app, ["llm", "usage", "--date", "yesterday", "--dsn", "postgresql://127.0.0.1:1/x"])
    assert result.exit_code == 2
    assert "is not a date" in result.output
