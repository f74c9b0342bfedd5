"""The risk engine: sizing methods, limits, trading states, staleness, reservations."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import numpy as np
import pytest
import talib

from agents.risk.engine import RiskEngine
from agents.risk.settings import RiskSettings
from agents.risk.sizing import AtrTracker, half_kelly_fraction
from core.domain import DecisionVerdict, Direction, OrderStatus, Side, TradingState
from core.messages import Fill
from tests.orderpath.helpers import candles, intent

C = candles(200)


def settings(**kw) -> RiskSettings:
    base: dict[str, object] = {
        "stop_loss_pct": None,
        "take_profit_pct": None,
        "max_position_pct": D(1),
        "max_gross_exposure_pct": D(1),
    }
    base.update(kw)
    return RiskSettings(**base)  # type: ignore[arg-type]


def engine_at(n: int = 20, **kw) -> RiskEngine:
    eng = RiskEngine(settings(**kw))
    for c in C[:n]:
        eng.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
    return eng


def fill_for(decision, price: D, fee: D = D(0), fid: str = "f1") -> Fill:
    return Fill(
        fill_id=fid,
        client_order_id="c1",
        intent_id=decision.intent_id,
        venue=decision.venue,
        symbol=decision.symbol,
        side=decision.side,
        price=price,
        quantity=decision.quantity,
        fee=fee,
        ts=C[20].open_time,
    )


def test_fixed_fraction_100_percent_uses_all_equity_less_the_default_reserve():
    eng = engine_at(fixed_fraction=D(1))
    i = intent(C[19])
    d = eng.decide(i, C[19].close_time).decision
    assert d.verdict is DecisionVerdict.APPROVE
    # the default reserve (30 bps) keeps cash for the fee, slippage and the move to the fill
    expected = D(10_000) / (C[19].close * D("1.003"))
    assert d.quantity == expected.quantize(D("0.00000001"), rounding="ROUND_DOWN")
    bare = engine_at(fixed_fraction=D(1), fee_reserve_bps=D(0)).decide(i, C[19].close_time).decision
    assert bare.quantity == (D(10_000) / C[19].close).quantize(D("0.00000001"), rounding="ROUND_DOWN")


def test_fee_reserve_keeps_cash_for_the_fee():
    eng = engine_at(fixed_fraction=D(1), fee_reserve_bps=D(10))
    d = eng.decide(intent(C[19]), C[19].close_time).decision
    assert d.quantity is not None
    assert d.quantity * C[19].close * (1 + D(10) / D(10_000)) <= D(10_000)


def test_volatility_sizing_matches_talib_atr_and_sets_the_stop():
    eng = engine_at(40, sizing="volatility", risk_per_trade=D("0.005"), atr_multiple=D(2), atr_period=14)
    highs = np.array([float(c.high) for c in C[:40]])
    lows = np.array([float(c.low) for c in C[:40]])
    closes = np.array([float(c.close) for c in C[:40]])
    expected_atr = talib.ATR(highs, lows, closes, timeperiod=14)[-1]
    atr = eng.atr[("binance", "BTC/USDT", "1h")].value
    assert atr is not None
    assert float(atr) == pytest.approx(expected_atr, rel=1e-9)
    d = eng.decide(intent(C[39]), C[39].close_time).decision
    assert d.quantity is not None
    assert float(d.quantity) == pytest.approx(10_000 * 0.005 / (2 * expected_atr), rel=1e-6)
    assert d.stop_loss is not None
    assert float(d.stop_loss) == pytest.approx(float(C[39].close) - 2 * expected_atr, rel=1e-9)


def test_volatility_sizing_fails_closed_before_warm_up():
    eng = engine_at(5, sizing="volatility")
    d = eng.decide(intent(C[4]), C[4].close_time).decision
    assert d.verdict is DecisionVerdict.REJECT
    assert d.reason == "no_volatility"


def test_half_kelly_is_capped_and_needs_an_edge():
    assert half_kelly_fraction(0.6, 2.0, D(1)) == D("0.2")  # kelly = 0.6 - 0.4/2 = 0.4
    assert half_kelly_fraction(0.6, 2.0, D("0.1")) == D("0.1")
    assert half_kelly_fraction(0.3, 1.0, D(1)) == 0
    eng = engine_at(kelly_win_rate=0.3, kelly_payoff=1.0, sizing="kelly")
    assert eng.decide(intent(C[19]), C[19].close_time).decision.reason == "no_edge"


def test_stale_intent_rejected():
    eng = engine_at()
    i = intent(C[19], ttl=timedelta(minutes=5))
    d = eng.decide(i, C[19].close_time + timedelta(minutes=5)).decision
    assert d.verdict is DecisionVerdict.REJECT
    assert d.reason == "stale_intent"


def test_max_position_caps_and_reservations_accumulate():
    eng = engine_at(fixed_fraction=D("0.2"), max_position_pct=D("0.3"))
    first = eng.decide(intent(C[19], tag="a"), C[19].close_time).decision
    assert first.verdict is DecisionVerdict.APPROVE
    second = eng.decide(intent(C[19], tag="b"), C[19].close_time).decision
    assert second.verdict is DecisionVerdict.ADJUST
    assert second.reason == "max_position"
    assert first.quantity is not None
    assert second.quantity is not None
    assert (first.quantity + second.quantity) * C[19].close <= D("0.3") * D(10_000) + D("0.0001")
    third = eng.decide(intent(C[19], tag="c"), C[19].close_time).decision
    assert third.verdict is DecisionVerdict.REJECT
    assert third.reason == "max_position"
    # an order that ends unfilled frees its room
    eng.on_order_status(first.intent_id, OrderStatus.CANCELED)
    fourth = eng.decide(intent(C[19], tag="d"), C[19].close_time).decision
    assert fourth.approved


def test_same_intent_gets_the_same_decision():
    eng = engine_at()
    i = intent(C[19])
    a = eng.decide(i, C[19].close_time).decision
    b = eng.decide(i, C[19].close_time).decision
    assert a == b
    assert len(eng.reservations) == 1


def test_max_open_positions():
    eng = engine_at(max_open_positions=1, fixed_fraction=D("0.1"))
    assert eng.decide(intent(C[19]), C[19].close_time).decision.approved
    other = intent(
        C[19].model_copy(
            update={"symbol": "ETH/USDT", "close": D(2500), "open": D(2500), "high": D(2600), "low": D(2400)}
        )
    )
    d = eng.decide(other, C[19].close_time).decision
    assert d.reason == "max_open_positions"


def test_exit_sells_what_is_held_and_short_without_position_is_refused():
    eng = engine_at(fixed_fraction=D("0.5"))
    entry = eng.decide(intent(C[19]), C[19].close_time).decision
    eng.on_fill(fill_for(entry, C[20].open))
    ex = eng.decide(intent(C[20], Side.SELL, Direction.EXIT), C[20].close_time).decision
    assert ex.approved
    assert ex.side is Side.SELL
    assert ex.quantity == entry.quantity
    assert ex.reason == "exit"
    eng2 = engine_at()
    assert eng2.decide(intent(C[19], Side.SELL), C[19].close_time).decision.reason == "short_not_allowed"


def test_daily_loss_limit_blocks_entries_but_not_exits():
    eng = engine_at(fixed_fraction=D(1), daily_loss_limit_pct=D("0.02"), max_drawdown_pct=D("0.5"))
    entry = eng.decide(intent(C[19]), C[19].close_time).decision
    eng.on_fill(fill_for(entry, C[19].close))
    crash = C[20].model_copy(
        update={"low": C[19].close * D("0.9"), "close": C[19].close * D("0.95"), "open": C[19].close}
    )
    alerts = eng.on_candle(
        crash.venue, crash.symbol, "1h", C[19].close_time + timedelta(minutes=30), crash.high, crash.low, crash.close
    )
    assert any(a.code == "daily_loss_limit" for a in alerts)
    assert eng.decide(intent(C[20], tag="x"), C[20].close_time).decision.reason == "daily_loss_limit"
    assert eng.decide(intent(C[20], Side.SELL, Direction.EXIT), C[20].close_time).decision.approved


def test_drawdown_breaker_goes_reducing_and_resume_resets():
    eng = engine_at(fixed_fraction=D(1), max_drawdown_pct=D("0.1"), daily_loss_limit_pct=D(1))
    entry = eng.decide(intent(C[19]), C[19].close_time).decision
    eng.on_fill(fill_for(entry, C[19].close))
    alerts = eng.on_candle(
        "binance", "BTC/USDT", "1h", C[20].close_time, C[19].close, C[19].close * D("0.8"), C[19].close * D("0.85")
    )
    assert eng.state is TradingState.REDUCING
    assert any(a.code == "max_drawdown" for a in alerts)
    assert eng.decide(intent(C[20], tag="y"), C[20].close_time).decision.reason == "reducing_only"
    eng.set_state(TradingState.HALTED)
    assert eng.decide(intent(C[20], Side.SELL, Direction.EXIT), C[20].close_time).decision.reason == "trading_halted"
    eng.set_state(TradingState.ACTIVE)
    assert eng.portfolio.drawdown == 0


def test_protective_levels_attached_to_entries():
    eng = engine_at(stop_loss_pct=D("0.02"), take_profit_pct=D("0.04"), trailing_stop_pct=1.5)
    d = eng.decide(intent(C[19]), C[19].close_time).decision
    assert d.stop_loss == C[19].close * D("0.98")
    assert d.take_profit == C[19].close * D("1.04")
    assert d.trailing_stop_pct == 1.5


def test_var_alerts_on_volatile_equity():
    eng = engine_at(
        0,
        fixed_fraction=D(1),
        var_every=20,
        var_limit_pct=0.001,
        var_window=50,
        max_drawdown_pct=D(1),
        daily_loss_limit_pct=D(1),
    )
    for c in C[:5]:
        eng.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
    entry = eng.decide(intent(C[4]), C[4].close_time).decision
    eng.on_fill(fill_for(entry, C[5].open))
    alerts = []
    for c in C[5:100]:
        alerts += eng.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
    assert eng.var is not None
    assert eng.var.var99 >= eng.var.var95 > 0
    assert eng.var.cvar99 >= eng.var.var99
    assert any(a.code == "var_limit" for a in alerts)


def test_atr_tracker_seed():
    t = AtrTracker(2)
    assert t.update(D(10), D(8), D(9)) is None
    assert t.update(D(11), D(9), D(10)) is None
    assert t.update(D(12), D(9), D(11)) == D("2.5")


@pytest.mark.parametrize(
    ("close", "fires"),
    [(D("79"), True), (D("80"), True), (D("80.0000001"), False), (D("80.001"), False), (D("99"), False)],
)
def test_drawdown_breaker_fires_exactly_at_its_level(close: D, fires: bool):
    # 80 is a drawdown of exactly 20%; 80.0000001 sits within the engine's 1e-9 shortcut margin
    eng = RiskEngine(settings(initial_cash=D(100), max_drawdown_pct=D("0.2"), daily_loss_limit_pct=D(1)))
    eng.portfolio.apply_fill("f1", "binance", "BTC/USDT", Side.BUY, D(1), D(100), D(0))
    eng.on_candle("binance", "BTC/USDT", "1h", C[0].close_time, D(100), D(100), D(100))
    alerts = eng.on_candle("binance", "BTC/USDT", "1h", C[1].close_time, close, close, close)
    assert (eng.state is TradingState.REDUCING) is fires
    assert any(a.code == "max_drawdown" for a in alerts) is fires
