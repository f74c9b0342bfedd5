"""Portfolio accounting, the fill model and protective levels: exact Decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.domain import OrderType, Side
from core.trading.fillmodel import Bar, FillModel, half_spread_bps
from core.trading.portfolio import Portfolio, Position
from core.trading.protective import ProtectiveLevels


def test_round_trip_with_fees_is_exact():
    p = Portfolio(D(10_000))
    p.apply_fill("f1", "paper", "BTC/USDT", Side.BUY, D("0.1"), D(60_000), D("6"))
    assert p.cash == D(10_000) - D(6_000) - D(6)
    p.mark("paper", "BTC/USDT", D(61_000))
    assert p.equity == D(10_000) - D(6) + D(100)
    p.apply_fill("f2", "paper", "BTC/USDT", Side.SELL, D("0.1"), D(61_000), D("6.1"))
    pos = p.position("paper", "BTC/USDT")
    assert pos.quantity == 0
    assert pos.realized_pnl == D(100)
    assert pos.fees == D("12.1")
    assert p.cash == D(10_000) + D(100) - D("12.1")
    assert p.equity == p.cash


def test_fill_applied_once():
    p = Portfolio(D(1000))
    assert p.apply_fill("f1", "v", "ETH/USDT", Side.BUY, D(1), D(100), D(0)) is not None
    assert p.apply_fill("f1", "v", "ETH/USDT", Side.BUY, D(1), D(100), D(0)) is None
    assert p.position("v", "ETH/USDT").quantity == 1


def test_average_entry_partial_close_and_flip():
    pos = Position("v", "S/U")
    pos = pos.with_fill(Side.BUY, D(1), D(100), D(0)).with_fill(Side.BUY, D(1), D(110), D(0))
    assert pos.average_price == D(105)
    pos = pos.with_fill(Side.SELL, D("0.5"), D(120), D(0))
    assert pos.average_price == D(105)
    assert pos.realized_pnl == D("7.5")
    pos = pos.with_fill(Side.SELL, D(3), D(100), D(0))  # closes 1.5, opens a 1.5 short at 100
    assert pos.quantity == D("-1.5")
    assert pos.average_price == D(100)
    assert pos.realized_pnl == D("7.5") + D("-7.5")
    assert pos.with_mark(D(90)).unrealized_pnl == D(15)


def test_drawdown_and_snapshot():
    p = Portfolio(D(1000))
    p.apply_fill("a", "v", "S/U", Side.BUY, D(10), D(100), D(0))
    p.mark("v", "S/U", D(80))
    assert p.drawdown == pytest.approx(0.2)
    snap = p.snapshot(__import__("datetime").datetime(2024, 1, 1, tzinfo=__import__("datetime").UTC))
    assert snap.equity == D(800)
    assert snap.open_positions == 1
    assert snap.gross_exposure == D(800)


BAR = Bar(open=D(100), high=D(110), low=D(95), close=D(105), volume=D(50))


def test_market_fill_at_open_with_fixed_and_spread_slippage_and_fee():
    model = FillModel(maker_fee_bps=D(2), taker_fee_bps=D(10), slippage_bps=D(5), spread_bps=D(4))
    q = model.quote(Side.BUY, OrderType.MARKET, D(2), BAR)
    assert q is not None
    assert q.price == D(100) * (1 + D(7) / D(10_000))  # 5 bps fixed + 2 bps half-spread
    assert q.fee == q.price * D(2) * D(10) / D(10_000)
    s = model.quote(Side.SELL, OrderType.MARKET, D(2), BAR, half_spread_bps=D(1))
    assert s is not None
    assert s.price == D(100) * (1 - D(6) / D(10_000))


def test_participation_cap_gives_partial_fill():
    model = FillModel(participation=D("0.1"))
    q = model.quote(Side.BUY, OrderType.MARKET, D(20), BAR)
    assert q is not None
    assert q.quantity == D(5)


def test_limit_orders_maker_and_taker():
    model = FillModel(maker_fee_bps=D(1), taker_fee_bps=D(10))
    maker = model.quote(Side.BUY, OrderType.LIMIT, D(1), BAR, limit_price=D(96))
    assert maker is not None
    assert maker.price == D(96)
    assert maker.liquidity == "maker"
    assert maker.fee == D(96) / D(10_000)
    taker = model.quote(Side.BUY, OrderType.LIMIT, D(1), BAR, limit_price=D(101))
    assert taker is not None
    assert taker.price == D(100)
    assert taker.liquidity == "taker"
    assert model.quote(Side.BUY, OrderType.LIMIT, D(1), BAR, limit_price=D(90)) is None
    sell = model.quote(Side.SELL, OrderType.LIMIT, D(1), BAR, limit_price=D(108))
    assert sell is not None
    assert sell.price == D(108)


def test_half_spread():
    assert half_spread_bps(D(99), D(101)) == D(100)


def test_protective_levels():
    long = ProtectiveLevels(long=True, stop_loss=D(96), take_profit=D(108))
    trig = long.check(BAR)
    assert trig is not None
    assert trig.reason == "stop_loss"
    assert trig.price == D(96)
    gap = ProtectiveLevels(long=True, stop_loss=D(101)).check(BAR)
    assert gap is not None
    assert gap.price == D(100)
    tp = ProtectiveLevels(long=True, take_profit=D(108)).check(BAR)
    assert tp is not None
    assert tp.reason == "take_profit"
    assert tp.price == D(108)
    short = ProtectiveLevels(long=False, stop_loss=D(112), take_profit=D(96))
    t2 = short.check(BAR)
    assert t2 is not None
    assert t2.reason == "take_profit"
    assert t2.price == D(96)


def test_trailing_stop_follows_previous_highs_only():
    lv = ProtectiveLevels(long=True, trailing_pct=D(10), best_price=D(100))
    assert lv.check(Bar(D(100), D(120), D(95), D(118), D(1))) is None  # stop 90 not hit; high moves after
    lv = lv.after(Bar(D(100), D(120), D(95), D(118), D(1)))
    assert lv.trailing_stop == D(108)
    trig = lv.check(Bar(D(115), D(116), D(107), D(110), D(1)))
    assert trig is not None
    assert trig.reason == "trailing_stop"
    assert trig.price == D(108)
