"""The ``tradeswarm backtest / optimize / run`` commands, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "tradeswarm"
BTC_1H = ROOT / "data" / "samples" / "binance_BTC-USDT_1h.csv"
ETH_1H = ROOT / "data" / "samples" / "binance_ETH-USDT_1h.csv"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")}
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=240, cwd=cwd or ROOT, env=env, check=False
    )


def test_backtest_json_is_one_object_with_the_summary(tmp_path: Path) -> None:
    proc = cli(
        "backtest",
        "--data",
        str(BTC_1H),
        "--data",
        str(ETH_1H),
        "--strategy",
        "sma_cross",
        "--param",
        "fast=10",
        "--param",
        "slow=30",
        "--sizing",
        "fixed_fraction:0.5",
        "--fee-bps",
        "5",
        "--slippage-bps",
        "2",
        "--end",
        "2025-02-01",
        "--report",
        str(tmp_path / "r"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    for key in (
        "bars",
        "trades",
        "final_equity",
        "total_return",
        "max_drawdown",
        "sharpe",
        "elapsed_s",
        "bars_per_second",
    ):
        assert key in summary
    assert summary["bars"] == 2 * 31 * 24
    assert summary["intrabar"] == "worst"  # the conservative default, shown
    assert summary["limits"]["execution"]["intrabar"] == "worst"
    assert summary["params"] == {"sma_cross": {"fast": 10, "slow": 30}}
    assert {p.name for p in (tmp_path / "r").iterdir()} == {
        "trades.csv",
        "equity.csv",
        "summary.json",
        "equity.png",
        "report.html",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.csv"], "data file not found"),
        (["--data", str(BTC_1H), "--strategy", "nope"], "unknown strategy 'nope'"),
        (["--data", str(BTC_1H), "--param", "fast=50"], "fast (50) must be below slow (30)"),
        (["--data", str(BTC_1H), "--param", "fast"], "bad --param"),
        (["--data", str(BTC_1H), "--sizing", "martingale"], "bad --sizing"),
        (["--data", str(BTC_1H), "--sizing", "fixed_fraction:2"], "must be in (0, 1]"),
        (["--data", str(BTC_1H), "--set", "risk.nope=1"], "unknown risk setting"),
        (["--data", str(BTC_1H), "--start", "yesterday"], "bad --start"),
        (["--data", "influx:binance:BTCUSDT:1h"], "bad symbol"),
        (["--data", str(BTC_1H), "--intrabar", "best"], "bad --intrabar"),
    ],
)
def test_bad_arguments_give_one_line_and_no_traceback(args: list[str], message: str) -> None:
    proc = cli("backtest", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_backtest_table_in_the_terminal() -> None:
    proc = cli("backtest", "--data", str(BTC_1H), "--end", "2025-01-20")
    assert proc.returncode == 0, proc.stderr
    for label in ("Sharpe", "Max drawdown", "Buy & hold return", "Trades", "candles/s", "Intrabar policy"):
        assert label in proc.stdout


def test_run_replays_a_small_slice_and_writes_the_session_report(tmp_path: Path) -> None:
    proc = cli("run", "--max-candles", "400", "--speed", "0", "--report", str(tmp_path / "session"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Signals (consensus)" in proc.stdout
    assert "Positions" in proc.stdout
    assert "session report:" in proc.stdout
    summary = json.loads((tmp_path / "session" / "summary.json").read_text())
    assert summary["bars"] == 400
    assert summary["series"] == ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"]
    assert (tmp_path / "session" / "report.html").is_file()


def test_optimize_grid_json_uses_two_processes() -> None:
    proc = cli(
        "optimize",
        "--data",
        str(BTC_1H),
        "--space",
        "sma_cross.fast=5,10",
        "--space",
        "sma_cross.slow=30,40",
        "--sampler",
        "grid",
        "--objective",
        "calmar",
        "--jobs",
        "2",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    study = json.loads(proc.stdout)
    points = sorted((t["params"]["sma_cross"]["fast"], t["params"]["sma_cross"]["slow"]) for t in study["trials"])
    assert points == [(5, 30), (5, 40), (10, 30), (10, 40)]
    best = study["best"][0]
    assert best["values"][0] == max(t["values"][0] for t in study["trials"])
    # the speed of the study: trials per minute over the study's wall time, per worker process too
    assert study["n_jobs"] == 2
    assert study["trials_per_minute"] == pytest.approx(4 / study["elapsed_s"] * 60, rel=1e-2)
    assert study["trials_per_minute_per_process"] == pytest.approx(study["trials_per_minute"] / 2, rel=1e-2)


def test_optimize_prints_trials_per_minute() -> None:
    proc = cli("optimize", "--data", str(BTC_1H), "--space", "sma_cross.fast=5,10", "--sampler", "grid", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if "trials/min" in x)
    assert line.startswith("2 trials in ")
    assert "per worker process (1)" in line
    assert "candles per trial" in line


def test_optimize_rejects_bad_space() -> None:
    proc = cli("optimize", "--data", str(BTC_1H), "--space", "sma_cross.fast=20:5")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "LOW must be below HIGH" in proc.stderr


def test_optimize_walk_forward_json() -> None:
    proc = cli(
        "optimize",
        "--data",
        str(BTC_1H),
        "--space",
        "sma_cross.fast=5,10",
        "--space",
        "sma_cross.slow=30,40",
        "--sampler",
        "grid",
        "--objective",
        "return",
        "--walk-forward",
        "2",
        "--in-sample-ratio",
        "2",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    folds = json.loads(proc.stdout)["walk_forward"]
    assert [f["fold"] for f in folds] == [0, 1]
    for f in folds:
        assert f["in_sample"][1] == f["out_of_sample"][0]
        assert f["params"]["sma_cross"]["fast"] in (5, 10)
        assert isinstance(f["out_of_sample_value"], float)
