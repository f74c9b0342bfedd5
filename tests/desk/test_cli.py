"""``tradeswarm analyze`` and ``tradeswarm backtest --desk`` (offline, rules provider)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tradeswarm.cli import app

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "binance_BTC-USDT_1h.csv"


def test_analyze_prints_every_role_card_labelled_rules() -> None:
    result = runner.invoke(app, ["analyze", "BTC/USDT", "--at", "2025-05-05T12:00:00Z"])
    assert result.exit_code == 0, result.output
    for title in ("Technical analyst", "Sentiment / news analyst", "Tokenomics analyst", "Researcher", "Trader",
                  "Risk manager", "Desk decision"):  # fmt: skip
        assert f"{title} [rules]" in result.output
    as_json = runner.invoke(app, ["analyze", "BTC/USDT", "--at", "2025-05-05T12:00:00Z", "--json"])
    decision = json.loads(as_json.output)
    assert decision["ts"] == "2025-05-05T12:00:00Z"
    assert [r["role"] for r in decision["roles"]] == [
        "technical", "sentiment", "tokenomics", "researcher", "trader", "risk_manager"]  # fmt: skip


def test_analyze_bad_arguments_are_one_line_errors() -> None:
    for args, message in (
        (["analyze", "DOGE/USDT"], "no candle file"),
        (["analyze", "BTC/USDT", "--llm-provider", "gpt"], "choose one of rules, replay, openai"),
        (["analyze", "BTC/USDT", "--at", "2025-01-01T03:00:00Z"], "the desk needs 35"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert message in result.output
        assert "Traceback" not in result.output


def test_backtest_with_the_desk_reports_decisions_tokens_and_cost(tmp_path: Path) -> None:
    args = ["backtest", "--data", str(SAMPLE), "--start", "2025-04-25", "--desk", "--every", "6",
            "--max-decisions", "10", "--llm-provider", "rules", "--json", "--report", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["desk"]["decisions"] == 10
    assert summary["desk"]["provider"] == "rules"
    assert {"tokens_in", "tokens_out", "cost_usd", "verdicts", "intents"} <= set(summary["desk"])
    lines = (tmp_path / "desk_decisions.jsonl").read_text().splitlines()
    assert len(lines) == 10
    assert len(json.loads(lines[0])["roles"]) == 6
    bad = runner.invoke(app, [*args[:6], "--desk", "--every", "0"])
    assert bad.exit_code == 2
    assert "--every must be at least 1" in bad.output


def test_run_shows_the_desk_on_the_embedded_default(tmp_path: Path) -> None:
    args = ["run", "--speed", "0", "--no-view", "--max-candles", "400", "--desk-every", "12",
            "--report", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "AI desk [rules]:" in result.output
    assert "Trader [rules]" in result.output
    assert "Desk decision [rules]" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["desk"]["decisions"] > 0
    assert summary["desk"]["intents"] == 0  # advisory: the strategies trade
    bad = runner.invoke(app, ["run", "--desk", "loud"])
    assert bad.exit_code == 2
    assert "choose advise, trade or off" in bad.output


def test_the_live_view_panel_shows_every_role_and_the_decision() -> None:
    from rich.console import Console

    from backtesting.desk_cards import desk_panel
    from core.messages import DeskDecision

    decision = DeskDecision.model_validate_json(
        runner.invoke(app, ["analyze", "BTC/USDT", "--at", "2025-05-05T12:00:00Z", "--json"]).output
    )
    console = Console(width=120, record=True)
    console.print(desk_panel(decision, 7, advisory=True))
    text = console.export_text()
    assert "AI desk [rules] · 7 decisions · advisory" in text
    for title in ("Technical analyst", "Researcher", "Risk manager", "decision"):
        assert title in text
