"""Reports at the edges, through ``tradeswarm backtest`` as a user runs it: trades still open at the
end are listed (marked open), ``equity.csv`` is written, undefined metrics are marked undefined,
and the terminal view and the HTML report say what the limits did."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.backtesting.test_cli import BTC_1H, ETH_1H, cli


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _last_close_before(path: Path, end_ms: int) -> Decimal:
    rows = [r for r in _rows(path) if int(r["timestamp"]) < end_ms]
    return Decimal(rows[-1]["close"])


def test_open_trades_equity_csv_and_undefined_metrics(tmp_path: Path) -> None:
    # three days: sma_cross(10, 30) enters ETH on 2025-01-03 16:00 and holds it past the end
    out = tmp_path / "r"
    proc = cli("backtest", "--data", str(BTC_1H), "--data", str(ETH_1H), "--end", "2025-01-04", "--report", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    trades = _rows(out / "trades.csv")
    open_rows = [t for t in trades if t["status"] == "open"]
    assert len(open_rows) == summary["open_trades"] >= 1
    eth = next(t for t in open_rows if t["symbol"] == "ETH/USDT")
    assert eth["exit_time"] == ""
    assert eth["exit_price"] == ""
    mark = _last_close_before(ETH_1H, 1_735_948_800_000)  # 2025-01-04T00:00Z
    assert Decimal(eth["mark_price"]) == mark
    expected = (mark - Decimal(eth["entry_price"])) * Decimal(eth["quantity"]) - Decimal(eth["fees"])
    assert abs(Decimal(eth["pnl"]) - expected) < Decimal("1e-6")
    assert all(t["status"] == "closed" and t["mark_price"] == "" for t in trades if t not in open_rows)

    equity = _rows(out / "equity.csv")
    assert len(equity) == summary["samples"] == 3 * 24  # bar closes from 01:00 on day one to the end
    assert equity[0]["time"] == "2025-01-01T01:00:00Z"
    assert equity[-1]["time"] == "2025-01-04T00:00:00Z"
    assert float(equity[-1]["equity"]) == pytest.approx(summary["final_equity"], abs=1e-8)
    assert max(float(r["drawdown"]) for r in equity) == pytest.approx(summary["max_drawdown"], abs=1e-8)
    assert equity[-1]["in_market"] == "1"

    # three days cannot be annualised: CAGR and Calmar are undefined, with the reason, not a number
    assert summary["metrics"]["cagr"] is None
    assert summary["metrics"]["calmar"] is None
    assert "3.0 days" in summary["undefined_metrics"]["cagr"]
    assert summary["metrics"]["sharpe"] is not None  # 70 returns: defined
    assert "n/a (3.0 days" in proc.stdout
    html = (out / "report.html").read_text()
    assert "n/a (3.0 days" in html
    assert html.count(">open<") == len(open_rows)


def test_short_window_ratios_are_undefined_in_the_json(tmp_path: Path) -> None:
    proc = cli("backtest", "--data", str(BTC_1H), "--end", "2025-01-02", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["sharpe"] is None
    for name in ("sharpe", "sortino", "annualised_volatility", "cagr", "calmar", "win_rate", "profit_factor"):
        assert summary["metrics"][name] is None
        assert summary["undefined_metrics"][name]
    assert "at least 30" in summary["undefined_metrics"]["sharpe"]


def test_the_terminal_view_and_the_report_say_what_the_limits_did(tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = cli(
        "backtest", "--data", str(BTC_1H), "--data", str(ETH_1H), "--sizing", "fixed_fraction:0.5",
        "--set", "risk.max_drawdown_pct=0.02", "--report", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    cut = summary["adjustments"]["risk"]["max_position"]
    trips = summary["alerts"]["critical.max_drawdown"]
    assert cut > 0
    assert trips > 0
    text = " ".join(proc.stdout.split())
    assert f"risk adjusted │ max_position │ {cut}" in text
    assert f"alert │ critical.max_drawdown │ {trips}" in text
    assert "Time in each trading state" in text
    assert "reducing" in text
    assert "max_position_pct │ 0.25" in text
    html = (out / "report.html").read_text()
    assert f"<td>max_position</td><td>{cut}</td>" in html
    assert "<td>drawdown_recovery</td><td>next_day</td>" in html
