"""Desk backtests on the offline rules provider: the order path, determinism, look-ahead, REJECT."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from agents.desk.rules import RulesModel
from agents.desk.settings import DeskSettings
from agents.desk.wiring import build_desk
from backtesting.config import BacktestConfig
from backtesting.data import csv_candles, list_source
from backtesting.engine import BacktestEngine, BacktestResult, DeskRun
from core.gateway import CandleKey
from core.messages import Candle
from core.settings import Settings
from infrastructure.feeds.desk_files import DEFAULT_DESK_DATA, DeskDataFiles

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "binance_BTC-USDT_1h.csv"
KEY = CandleKey("binance", "BTC/USDT", "1h")
START = datetime(2025, 4, 20, tzinfo=UTC)
CUT = datetime(2025, 5, 4, 12, tzinfo=UTC)
FILES = DeskDataFiles()


def candles(start: datetime = START) -> list[Candle]:
    return list(csv_candles(SAMPLE, KEY, start=start))


async def run(rows: list[Candle], *, data: DeskDataFiles | None = None, **desk: object) -> BacktestResult:
    settings = DeskSettings.model_validate({"every": 4, **desk})
    files = data or DeskDataFiles()
    pipeline = build_desk(settings, Settings(), RulesModel())
    pipeline.inputs = files.load()
    engine = BacktestEngine(BacktestConfig(), [list_source(KEY, rows, "sample")], desk=DeskRun(pipeline, settings))
    return await engine.run()


async def test_a_rules_desk_backtest_trades_through_the_order_path_offline() -> None:
    result = await run(candles())
    summary = result.summary()
    desk = summary["desk"]
    assert desk["provider"] == "rules"
    assert desk["decisions"] == len(result.desk_decisions) > 50
    assert desk["intents"] >= 2
    assert summary["dead_letters"] == 0
    buys = [d for d in result.desk_decisions if d.action == "BUY" and d.intent_id is not None]
    assert buys
    assert result.fills, "an approved desk BUY became a fill through risk, compliance and execution"
    first = result.fills[0]
    assert first.side.value == "buy"
    # the fill is sized by the desk's allocation (the risk agent's limits still cap it)
    equity = float(BacktestConfig().initial_cash)
    assert abs(float(first.quantity * first.price) / equity * 100 - buys[0].size_pct) < 0.5
    assert all(len(d.roles) == 6 for d in result.desk_decisions)


async def test_the_same_desk_backtest_twice_is_identical() -> None:
    a, b = await run(candles()), await run(candles())
    assert [d.model_dump_json() for d in a.desk_decisions] == [d.model_dump_json() for d in b.desk_decisions]
    assert [(f.side, f.quantity, f.price) for f in a.fills] == [(f.side, f.quantity, f.price) for f in b.fills]


def _future_inputs(tmp: Path) -> DeskDataFiles:
    """The shipped inputs with everything after CUT changed: new euphoric headlines, extreme greed."""
    news_in = DEFAULT_DESK_DATA / FILES.news
    fg_in = DEFAULT_DESK_DATA / FILES.sentiment
    with news_in.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["first_seen_utc"] <= CUT.isoformat().replace("+00:00", "Z")]
    for h in range(1, 40):
        at = (CUT + timedelta(hours=h)).isoformat().replace("+00:00", "Z")
        rows.append({"published_utc": at, "first_seen_utc": at, "source": "probe",
                     "headline": "Bitcoin surges to record high as inflows soar and rally gains"})  # fmt: skip
    with (tmp / FILES.news).open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["published_utc", "first_seen_utc", "source", "headline"])
        w.writeheader()
        w.writerows(rows)
    with fg_in.open(newline="") as f:
        fg = list(csv.DictReader(f))
    for r in fg:
        if r["date"] > CUT.date().isoformat():
            r["value"], r["classification"] = "99", "Extreme Greed"
    with (tmp / FILES.sentiment).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["date", "value", "classification"])
        w.writeheader()
        w.writerows(fg)
    (tmp / FILES.tokenomics).write_text((DEFAULT_DESK_DATA / FILES.tokenomics).read_text())
    return DeskDataFiles(root=tmp)


async def test_look_ahead_probe_changing_everything_after_t_changes_no_decision_up_to_t(tmp_path: Path) -> None:
    base = candles()
    changed = [
        c if c.close_time <= CUT else c.model_copy(update={
            "open": c.open * Decimal("1.3"), "high": c.high * Decimal("1.3"),
            "low": c.low * Decimal("1.3"), "close": c.close * Decimal("1.3")})
        for c in base
    ]  # fmt: skip
    a = await run(base)
    b = await run(changed, data=_future_inputs(tmp_path))
    upto_a = [d.model_dump_json() for d in a.desk_decisions if d.ts <= CUT]
    upto_b = [d.model_dump_json() for d in b.desk_decisions if d.ts <= CUT]
    assert upto_a
    assert upto_a == upto_b
    after_a = [d.model_dump_json() for d in a.desk_decisions if d.ts > CUT]
    after_b = [d.model_dump_json() for d in b.desk_decisions if d.ts > CUT]
    assert after_a != after_b, "the probe changed the future: decisions after t must see it"


async def test_a_reject_places_nothing() -> None:
    result = await run(candles(), max_volatility_pct=0.0001)
    decisions = result.desk_decisions
    assert any(d.action == "BUY" and d.verdict == "REJECT" for d in decisions)
    assert all(d.intent_id is None for d in decisions if d.verdict == "REJECT")
    assert not result.fills
    assert result.summary()["desk"]["intents"] == 0


async def test_max_decisions_caps_the_run_and_blind_mode_is_recorded() -> None:
    engine_rows = candles()
    settings = DeskSettings(every=4, blind=True)
    pipeline = build_desk(settings, Settings(), RulesModel())
    run_ = DeskRun(pipeline, settings, max_decisions=3)
    result = await BacktestEngine(BacktestConfig(), [list_source(KEY, engine_rows, "s")], desk=run_).run()
    assert len(result.desk_decisions) == 3
    assert all(d.blind for d in result.desk_decisions)
    assert replace(run_, max_decisions=None).max_decisions is None
