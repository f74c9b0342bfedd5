"""The engine drives the real agents: determinism, no lookahead, several series, costs, reports."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from backtesting.config import BacktestConfig, agent_settings, reference_config
from backtesting.data import file_source, list_source
from backtesting.engine import BacktestEngine
from backtesting.report import TRADE_COLUMNS, write_report
from core.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
BTC_1H = ROOT / "data" / "samples" / "binance_BTC-USDT_1h.csv"
ETH_1H = ROOT / "data" / "samples" / "binance_ETH-USDT_1h.csv"
BTC_4H = Path(__file__).parent / "data" / "binance_BTC-USDT_4h.csv"
END = datetime(2025, 2, 15, tzinfo=UTC)


async def run(config: BacktestConfig, *paths: Path, end: datetime | None = END):
    return await BacktestEngine(config, [file_source(p, end=end) for p in paths]).run()


async def test_two_runs_give_byte_identical_trades_csv(tmp_path: Path) -> None:
    config = BacktestConfig()  # the agents' default paper settings: stops, limits, 10% sizing
    a = await run(config, BTC_1H, ETH_1H)
    b = await run(config, BTC_1H, ETH_1H)
    write_report(a, tmp_path / "a")
    write_report(b, tmp_path / "b")
    first = (tmp_path / "a" / "trades.csv").read_bytes()
    assert first == (tmp_path / "b" / "trades.csv").read_bytes()
    assert first.count(b"\n") > 10
    assert first.splitlines()[0].decode() == ",".join(TRADE_COLUMNS)
    assert a.equity == b.equity
    assert a.metrics == b.metrics


async def test_no_lookahead_fills_at_next_open_and_future_data_changes_nothing() -> None:
    full = await run(reference_config(), BTC_1H, end=None)
    orders = {o.client_order_id: o for o in full.orders}
    candles = {c.open_time: c for c in file_source(BTC_1H).candles()}
    assert len(full.fills) > 20
    for f in full.fills:
        decided = datetime.fromisoformat(orders[f.client_order_id].ts_event)
        assert f.ts == decided  # the candle that opens when the deciding candle closes
        assert f.price == candles[f.ts].open
    # cutting the data after T leaves every order decided before T unchanged
    cut = datetime(2025, 3, 1, tzinfo=UTC)
    truncated = await run(reference_config(), BTC_1H, end=cut)
    before = [(o.client_order_id, o.side, o.quantity) for o in full.orders if datetime.fromisoformat(o.ts_event) < cut]
    assert [(o.client_order_id, o.side, o.quantity) for o in truncated.orders] == before


async def test_several_symbols_and_timeframes_in_one_run() -> None:
    config = BacktestConfig(params={"sma_cross": {"fast": 5, "slow": 20}}, no_limits=True, fraction=Decimal("0.3"))
    result = await run(config, BTC_1H, ETH_1H, BTC_4H)
    assert result.candles == 45 * 24 * 2 + 45 * 6
    assert {f.symbol for f in result.fills} == {"BTC/USDT", "ETH/USDT"}
    assert result.dead_letters == 0
    assert len(result.times_ms) == 45 * 24  # one sample per distinct close time
    assert list(result.times_ms) == sorted(result.times_ms)


async def test_fees_and_slippage_come_from_the_paper_venue_model() -> None:
    base = await run(reference_config(fee_bps=0), BTC_1H)
    costly = await run(reference_config(fee_bps=25).model_copy(update={"slippage_bps": Decimal(10)}), BTC_1H)
    candles = {c.open_time: c for c in file_source(BTC_1H, end=END).candles()}
    assert [f.ts for f in base.fills] == [f.ts for f in costly.fills]
    for f in costly.fills:
        open_ = candles[f.ts].open
        expected = open_ * (1 + Decimal(10) / 10_000) if f.side.value == "buy" else open_ * (1 - Decimal(10) / 10_000)
        assert f.price == expected
        assert f.fee == f.price * f.quantity * Decimal(25) / 10_000
    assert all(f.fee == 0 for f in base.fills)
    assert costly.final_equity < base.final_equity
    assert math.isclose(float(costly.fees), float(sum(f.fee for f in costly.fills)))


async def test_reports_are_complete_and_self_contained(tmp_path: Path) -> None:
    result = await run(BacktestConfig(), BTC_1H, ETH_1H)
    files = write_report(result, tmp_path / "rep")
    html = files.html.read_text()
    assert 'id="report-data"' in html  # the interactive charts' data, with lightweight-charts inlined
    assert "TradingView Lightweight Charts" in html
    assert 'src="' not in html  # nothing to fetch: one file
    assert "Sharpe" in html
    assert "Buy &amp; hold return" in html
    assert "<th>entry_price</th>" in html
    assert files.equity_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    summary = json.loads(files.summary_json.read_text())
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
    assert summary["trades"] == len(result.trips)
    rows = files.trades_csv.read_text().splitlines()
    assert len(rows) == len(result.trips) + 1


def test_settings_keep_agent_defaults_unless_configured() -> None:
    s = agent_settings(BacktestConfig(), "binance", ["BTC/USDT"], timeframes=["1h"])
    assert s.risk.fixed_fraction == Decimal("0.1")
    assert s.risk.max_position_pct == Decimal("0.25")
    assert s.compliance.allowed_symbols == ["BTC/USDT"]
    assert "binance" in s.compliance.allowed_venues
    assert s.strategy.intent_ttl_s == 7200.0
    ref = agent_settings(reference_config(), "binance", ["BTC/USDT"], timeframes=["1h"])
    assert ref.risk.fixed_fraction == 1
    assert ref.risk.stop_loss_pct is None
    assert ref.risk.max_position_pct == 1
    assert ref.ta.indicators == ("sma",)
    assert ref.ta.sma_periods == (10, 30)
    with pytest.raises(ConfigurationError, match="unknown risk setting"):
        agent_settings(BacktestConfig(risk={"nope": 1}), "binance", ["BTC/USDT"])
    with pytest.raises(ConfigurationError, match="risk.max_position_pct"):
        agent_settings(BacktestConfig(risk={"max_position_pct": 7}), "binance", ["BTC/USDT"])


@pytest.mark.integration
async def test_history_from_the_influxdb_tick_store(influx_store) -> None:
    from core.gateway import CandleKey

    candles = list(file_source(BTC_1H, end=END).candles())
    await influx_store.write_candles(candles)
    key = CandleKey("binance", "BTC/USDT", "1h")
    stored = await influx_store.query_candles(key, datetime(2025, 1, 1, tzinfo=UTC), END)
    assert len(stored) == len(candles)
    from_store = await BacktestEngine(reference_config(), [list_source(key, stored, f"influx-{uuid.uuid4()}")]).run()
    from_file = await run(reference_config(), BTC_1H)
    assert [(f.ts, f.price, f.quantity) for f in from_store.fills] == [
        (f.ts, f.price, f.quantity) for f in from_file.fills
    ]
    assert from_store.final_equity == from_file.final_equity
    assert timedelta(0) < stored[1].open_time - stored[0].open_time


@pytest.mark.parametrize(
    ("sizing", "risk"),
    [("volatility", {"risk_per_trade": Decimal("0.02")}), ("kelly", {"kelly_cap": Decimal("0.5")})],
)
async def test_volatility_and_kelly_sizing_run_through_risk(sizing: str, risk: dict[str, Decimal]) -> None:
    config = BacktestConfig(sizing=sizing, risk=risk, params={"sma_cross": {"fast": 5, "slow": 20}})  # type: ignore[arg-type]
    result = await run(config, BTC_1H)
    assert result.orders
    assert result.dead_letters == 0
    fixed = await run(BacktestConfig(params={"sma_cross": {"fast": 5, "slow": 20}}), BTC_1H)
    assert [o.quantity for o in result.orders] != [o.quantity for o in fixed.orders]
