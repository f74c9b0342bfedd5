"""Wake conditions change nothing: the same backtests all-awake (every candle built, every delivery
made) and with the agents' wake conditions (:mod:`core.wake`) give the same decisions, orders, fills,
trades, equity curve and agent state, bit for bit.

Scenarios: several strategies fused by the consensus, long and short, protective stops, take-profits
and trailing stops (fixed and ATR levels), gaps in the data, several symbols and timeframes, limit
orders, volatility and Kelly sizing, and limits tight enough that the daily-loss, drawdown and VaR
alerts fire.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from backtesting.config import BacktestConfig, reference_config
from backtesting.data import SeriesSource, file_source, list_source
from backtesting.synthetic import gbm_source
from core.gateway import CandleKey
from infrastructure.messaging.memory import InMemoryBus
from tests.kernel.helpers import assert_same, run

ROOT = Path(__file__).resolve().parents[2]
BTC_1H = ROOT / "data" / "samples" / "binance_BTC-USDT_1h.csv"
ETH_1H = ROOT / "data" / "samples" / "binance_ETH-USDT_1h.csv"
BTC_4H = ROOT / "tests" / "backtesting" / "data" / "binance_BTC-USDT_4h.csv"


def files(*paths: Path) -> list[SeriesSource]:
    return [file_source(p) for p in paths]


def with_gaps(path: Path, holes: list[tuple[int, int]]) -> SeriesSource:
    """The file's candles with the index ranges ``holes`` cut out (gaps the feed does not fill)."""
    source = file_source(path)
    candles = list(source.candles())
    kept = [c for i, c in enumerate(candles) if not any(a <= i < b for a, b in holes)]
    key = source.key
    return list_source(
        CandleKey(venue=key.venue, symbol=key.symbol, timeframe=key.timeframe), kept, f"{path.name} with gaps"
    )


def test_reference_sma_cross_on_gbm() -> None:
    awake, woken = assert_same(reference_config(fee_bps=10), [gbm_source(6000, seed=11)])
    assert len(awake.result.fills) > 100
    assert woken.delivered < awake.delivered / 3  # most deliveries were not needed


def test_agent_defaults_with_stops_limits_on_two_symbols() -> None:
    awake, _ = assert_same(BacktestConfig(), files(BTC_1H, ETH_1H))
    assert len(awake.result.fills) > 20


def test_several_symbols_and_timeframes() -> None:
    config = BacktestConfig(params={"sma_cross": {"fast": 5, "slow": 20}}, no_limits=True, fraction=Decimal("0.3"))
    awake, _ = assert_same(config, files(BTC_1H, ETH_1H, BTC_4H))
    assert {f.symbol for f in awake.result.fills} == {"BTC/USDT", "ETH/USDT"}


def test_long_and_short_with_atr_stops_and_take_profits() -> None:
    config = BacktestConfig(
        strategies=("sma_cross",),
        params={"sma_cross": {"fast": 5, "slow": 20, "allow_short": True}},
        risk={"allow_short": True, "stop_loss_pct": None, "take_profit_pct": None},
        strategy={"stop_atr_multiple": 1.0, "take_profit_atr_multiple": 1.5},
        fraction=Decimal("0.5"),
    )
    awake, _ = assert_same(config, files(BTC_1H, ETH_1H))
    sides = {(f.symbol, f.side.value) for f in awake.result.fills}
    assert ("BTC/USDT", "sell") in sides
    assert ("BTC/USDT", "buy") in sides
    assert {t.side for t in awake.result.trips} == {"long", "short"}
    assert any("stop_loss" in r[2] for r in awake.records)
    assert any("take_profit" in r[2] for r in awake.records)


def test_fixed_stops_take_profits_and_trailing_stops() -> None:
    config = BacktestConfig(
        params={"sma_cross": {"fast": 5, "slow": 20, "allow_short": True}},
        risk={
            "allow_short": True,
            "stop_loss_pct": Decimal("0.01"),
            "take_profit_pct": Decimal("0.02"),
            "trailing_stop_pct": 0.8,
        },
        fraction=Decimal("0.5"),
    )
    awake, _ = assert_same(config, files(BTC_1H, ETH_1H))
    assert any("trailing_stop" in r[2] for r in awake.records)


def test_consensus_of_several_strategies_long_and_short() -> None:
    config = BacktestConfig(
        strategies=("rsi_reversion", "bollinger_reversion", "macd_momentum", "regime_filter"),
        params={
            "rsi_reversion": {"allow_short": True},
            "bollinger_reversion": {"allow_short": True},
            "macd_momentum": {"allow_short": True},
            "regime_filter": {"allow_short": True},
        },
        risk={"allow_short": True},
        strategy={"threshold": 60.0, "variance_limit": 400.0},
    )
    awake, _ = assert_same(config, files(BTC_1H, ETH_1H))
    assert len(awake.result.fills) > 10


def test_breakout_and_ema_cross() -> None:
    config = BacktestConfig(
        strategies=("bollinger_breakout", "ema_cross"),
        params={"bollinger_breakout": {"allow_short": True}, "ema_cross": {"allow_short": True}},
        risk={"allow_short": True},
        strategy={"threshold": 70.0},
    )
    assert_same(config, files(BTC_1H))


def test_gaps_in_the_data() -> None:
    gappy = [with_gaps(BTC_1H, [(100, 130), (700, 701), (1500, 1600)]), with_gaps(ETH_1H, [(50, 51), (900, 1000)])]
    config = BacktestConfig(params={"sma_cross": {"fast": 5, "slow": 20}}, fraction=Decimal("0.4"))
    awake, _ = assert_same(config, gappy)
    assert awake.result.candles == 6000 - 30 - 1 - 100 - 1 - 100


def test_limit_orders_stay_open_across_candles() -> None:
    config = BacktestConfig(params={"sma_cross": {"fast": 5, "slow": 20}}, compliance={"order_type": "limit"})
    awake, _ = assert_same(config, files(BTC_1H))
    assert any('"order_type":"limit"' in r[2] for r in awake.records if r[0] == "order_request")


@pytest.mark.parametrize("sizing", ["volatility", "kelly"])
def test_other_sizings(sizing: str) -> None:
    config = BacktestConfig(params={"sma_cross": {"fast": 5, "slow": 20}}, sizing=sizing)  # type: ignore[arg-type]
    assert_same(config, files(BTC_1H))


def test_alerts_daily_loss_drawdown_and_var_fire_identically() -> None:
    config = BacktestConfig(
        params={"sma_cross": {"fast": 3, "slow": 8}},
        fraction=Decimal(1),
        risk={
            "max_position_pct": Decimal(1),
            "daily_loss_limit_pct": Decimal("0.01"),
            "max_drawdown_pct": Decimal("0.05"),
            "var_limit_pct": 0.004,
            "var_every": 7,
            "var_window": 40,
            "stop_loss_pct": None,
            "take_profit_pct": None,
        },
    )
    awake, _ = assert_same(config, files(BTC_1H, ETH_1H))
    alerts = [r for r in awake.records if r[0] == "risk_alert"]
    codes = {code for code in ("daily_loss_limit", "max_drawdown", "var_limit") if any(code in r[2] for r in alerts)}
    assert codes == {"daily_loss_limit", "max_drawdown", "var_limit"}


def test_gbm_with_stops_at_the_bench_configuration() -> None:
    config = reference_config(fee_bps=10).model_copy(
        update={"risk": {"stop_loss_pct": Decimal("0.002"), "take_profit_pct": Decimal("0.004")}}
    )
    awake, _ = assert_same(config, [gbm_source(5000, seed=3)])
    assert any("stop_loss" in r[2] or "take_profit" in r[2] for r in awake.records)


def test_rows_decided_ahead_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumers quiet on the wake row (execution's answer beyond it, risk asked about it with the run)
    apply it with the quiet run before it instead of being asked again about that row alone: the same
    run as all-awake and as without it."""
    config = reference_config(fee_bps=10).model_copy(
        update={"risk": {"stop_loss_pct": Decimal("0.002"), "take_profit_pct": Decimal("0.004")}}
    )
    sources = [gbm_source(4000, seed=5)]
    awake, woken = assert_same(config, sources)
    assert woken.ahead > 50  # the shortcut fired
    monkeypatch.setattr(InMemoryBus, "AHEAD", False)
    plain = run(config, sources, wake=True)
    assert plain.ahead == 0
    assert plain.records == woken.records == awake.records
    assert plain.state == woken.state
    assert plain.equity_hash() == woken.equity_hash()
    # every row reaches every consumer once, delivered or skipped; which one may differ: without the
    # shortcut, risk (which takes wake rows) gets the wake row delivered instead of applying it
    assert plain.delivered + plain.skipped == woken.delivered + woken.skipped
    assert plain.delivered >= woken.delivered
