"""The exact bulk steps over quiet candles equal the per-candle forms on random series (hypothesis).

* :func:`core.trading.quiet.mark_quiet`: marking a portfolio over a run of candles (several symbols,
  long, short and flat positions, Decimal prices of mixed precision) leaves the same positions and the
  same peak equity, to the Decimal's exponent, as :meth:`Portfolio.mark` on every candle;
* the paper venue's twin: no candle before :func:`paper_twin.next_wake` fills or fires anything when
  run through :meth:`PaperVenue.on_candle`, and :func:`paper_twin.skip` leaves the venue in the same
  state (protections long and short, stop-loss, take-profit, trailing stops, several symbols);
* the risk engine's twin: :func:`agents.risk.quiet.simulate` stops exactly at the first candle on
  which :meth:`RiskEngine.on_candle` raises an alert (daily loss, drawdown breaker, VaR), and
  :func:`agents.risk.quiet.apply` leaves the engine as the candles before it do.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.risk import quiet as risk_quiet
from agents.risk.engine import RiskEngine
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.columns import CandleColumn, candle_column_of
from core.domain import OrderType, Side
from core.ids import client_order_id, content_id
from core.messages import Candle, Fill, OrderRequest
from core.routing import routing_key
from core.trading.fillmodel import FillModel
from core.trading.portfolio import Portfolio
from core.trading.quiet import mark_quiet, mark_run, rows_by_key
from core.trusted import trusted_candle
from infrastructure.venues import paper_twin
from infrastructure.venues.paper import PaperVenue

T0 = datetime(2024, 3, 1, 20, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")


@st.composite
def series(draw: st.DrawFn, max_len: int = 40, step_min: int = 60, one_symbol: bool = False) -> list[Candle]:
    """Candles of one or two symbols (one or two timeframes), merged by close time."""
    n = draw(st.integers(min_value=1, max_value=max_len))
    symbols = SYMBOLS[:1] if one_symbol else draw(st.sampled_from([SYMBOLS[:1], SYMBOLS]))
    out: list[tuple[datetime, int, Candle]] = []
    for k, symbol in enumerate(symbols):
        price = Decimal(draw(st.sampled_from(["100", "100.5", "99.75", "2000.125"])))
        for i in range(n):
            move = Decimal(draw(st.integers(min_value=-400, max_value=400))) / Decimal(
                draw(st.sampled_from([100, 1000]))
            )
            close = max(price + move, Decimal("1"))
            high = max(price, close) + Decimal(draw(st.integers(0, 300))) / 100
            low = max(min(price, close) - Decimal(draw(st.integers(0, 300))) / 100, Decimal("0.5"))
            open_time = T0 + timedelta(minutes=step_min * i)
            c = trusted_candle("binance", symbol, "1h", open_time, open_time + timedelta(minutes=step_min),
                               price, high, low, close, Decimal(1), i + 1)  # fmt: skip
            out.append((c.close_time, k, c))
            price = close
    out.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in out]


def column(candles: list[Candle]) -> CandleColumn:
    return candle_column_of(candles, routing_key, source="test", clock=None)


def fill(symbol: str, side: Side, qty: str, price: str, k: int) -> Fill:
    return Fill(fill_id=f"f{k}", client_order_id=f"c{k}", venue_order_id=f"v{k}", intent_id=content_id("t", k),
                venue="binance", symbol=symbol, side=side, price=Decimal(price), quantity=Decimal(qty),
                fee=Decimal("0.1"), liquidity="taker", ts=T0)  # fmt: skip


@st.composite
def positions(draw: st.DrawFn) -> list[Fill]:
    fills = []
    for k, symbol in enumerate(SYMBOLS):
        kind = draw(st.sampled_from(["none", "flat", "long", "short"]))
        qty = draw(st.sampled_from(["0.5", "1.25", "0.00000003", "3"]))
        if kind == "long":
            fills.append(fill(symbol, Side.BUY, qty, "100.50", 2 * k))
        elif kind == "short":
            fills.append(fill(symbol, Side.SELL, qty, "100.50", 2 * k))
        elif kind == "flat":
            fills += [fill(symbol, Side.BUY, qty, "100.50", 2 * k), fill(symbol, Side.SELL, qty, "101", 2 * k + 1)]
    return fills


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candles=series(), fills=positions(), cash=st.sampled_from(["10000", "123.456789012345678901", "-5.5"]))
def test_mark_quiet_equals_marking_every_candle(candles: list[Candle], fills: list[Fill], cash: str) -> None:
    bulk, per_row = _marked_every_candle(cash, fills, candles)
    col = column(candles)
    mark_quiet(bulk, col, rows_by_key(col, range(len(col.table)), 0, col.n))
    assert repr(bulk.peak_equity) == repr(per_row.peak_equity)
    assert repr(sorted(bulk.positions.items())) == repr(sorted(per_row.positions.items()))


def _marked_every_candle(cash: str, fills: list[Fill], candles: list[Candle]) -> tuple[Portfolio, Portfolio]:
    """A portfolio with ``fills`` applied, and a copy of it marked at every candle's close."""
    start = Portfolio(Decimal(cash))
    for f in fills:
        start.apply_fill(f.fill_id, f.venue, f.symbol, f.side, f.quantity, f.price, f.fee)
    per_row = copy.deepcopy(start)
    for c in candles:
        per_row.mark(c.venue, c.symbol, c.close)
    return start, per_row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    candles=series(max_len=80),
    fills=positions(),
    cash=st.sampled_from(["10000", "123.456789012345678901", "-5.5"]),
    cut=st.integers(min_value=0, max_value=80),
)
def test_mark_run_equals_marking_every_candle(candles: list[Candle], fills: list[Fill], cash: str, cut: int) -> None:
    """:func:`mark_run` (plain Python on short runs of one series, the arrays otherwise), in two runs."""
    bulk, per_row = _marked_every_candle(cash, fills, candles)
    col = column(candles)
    cut = min(cut, col.n)
    sids = range(len(col.table))
    mark_run(bulk, col, sids, 0, cut)
    mark_run(bulk, col, sids, cut, col.n)
    assert repr(bulk.peak_equity) == repr(per_row.peak_equity)
    assert repr(sorted(bulk.positions.items())) == repr(sorted(per_row.positions.items()))


def _request(symbol: str, side: Side, k: int, levels: dict[str, Decimal | float | None]) -> OrderRequest:
    intent = content_id("venue-test", symbol, k)
    return OrderRequest(client_order_id=client_order_id(intent), intent_id=intent, venue="binance", symbol=symbol,
                        side=side, order_type=OrderType.MARKET, quantity=Decimal("0.7"),
                        reference_price=Decimal("100"), expires_at=T0 + timedelta(days=30), **levels)  # type: ignore[arg-type]  # fmt: skip


@st.composite
def venue_setup(draw: st.DrawFn, short_runs: bool = False) -> tuple[list[Candle], list[Candle], list[OrderRequest]]:
    """Candles that open positions (entries with protections), then the candles to compare on.
    ``short_runs``: one symbol, no trailing stop and levels near the price (the twin's plain-Python
    path, :data:`paper_twin.SHORT_RUN`)."""
    warm = draw(series(max_len=3, one_symbol=short_runs))
    later = draw(series(max_len=40, one_symbol=short_runs))
    shift = warm[-1].close_time - later[0].open_time + timedelta(minutes=draw(st.sampled_from([0, 60])))
    later = [c.model_copy(update={"open_time": c.open_time + shift, "close_time": c.close_time + shift}) for c in later]
    orders = []
    for k, symbol in enumerate(SYMBOLS):
        if draw(st.booleans()):
            side = draw(st.sampled_from([Side.BUY, Side.SELL]))
            sign = Decimal(1) if side is Side.BUY else Decimal(-1)
            near = [Decimal("0.5"), Decimal(1), Decimal(3)]
            stop = draw(st.sampled_from([None, *near] if short_runs else [None, Decimal(2), Decimal(5)]))
            take = draw(st.sampled_from([None, *near] if short_runs else [None, Decimal(3), Decimal(8)]))
            trail = None if short_runs else draw(st.sampled_from([None, 1.5, 4.0]))
            if stop is None and take is None and trail is None:
                stop = Decimal(4)
            levels: dict[str, Decimal | float | None] = {
                "stop_loss": Decimal(100) - sign * stop if stop is not None else None,
                "take_profit": Decimal(100) + sign * take if take is not None else None,
                "trailing_stop_pct": trail,
            }
            orders.append(_request(symbol, side, k, levels))
            if short_runs and draw(st.booleans()):  # closed again: the protections are left to drop (OCO)
                other = Side.SELL if side is Side.BUY else Side.BUY
                orders.append(_request(symbol, other, k + 10, {"stop_loss": None, "take_profit": None}))
    return warm, later, orders


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=venue_setup(), halted=st.booleans())
def test_paper_venue_twin_equals_on_candle(setup: tuple[list[Candle], list[Candle], list[OrderRequest]],
                                           halted: bool) -> None:  # fmt: skip
    _check_venue_twin(setup, halted)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=venue_setup(short_runs=True))
def test_paper_venue_twin_on_short_runs_equals_on_candle(
    setup: tuple[list[Candle], list[Candle], list[OrderRequest]],
) -> None:
    _check_venue_twin(setup, False)


def _check_venue_twin(setup: tuple[list[Candle], list[Candle], list[OrderRequest]], halted: bool) -> None:
    """The twin's wake row is the first row on which the venue fills or fires, and skipping the rows
    before it leaves the venue as handling each of them does."""
    warm, later, orders = setup

    async def scenario() -> None:
        clock = SimulatedClock(warm[0].open_time)
        venue = PaperVenue(clock, FillModel(taker_fee_bps=Decimal(10), maker_fee_bps=Decimal(10)))
        clock.advance_to(warm[0].close_time)
        for order in orders:
            await venue.submit(order)
        for c in warm[1:]:
            clock.advance_to(c.close_time)
            await venue.on_candle(c)
        if halted:
            await venue.halt()
        col = column(later)
        sids = range(len(col.table))
        wake = paper_twin.next_wake(venue, col, sids, 0, col.n)
        per_row = copy.deepcopy(venue)
        for i in range(wake):
            clock.advance_to(later[i].close_time)
            changed = await per_row.on_candle(later[i])
            assert not changed, f"row {i} filled or fired before the twin's wake row {wake}"
        paper_twin.skip(venue, col, sids, 0, wake)
        assert sorted(venue._last_close.items()) == sorted(per_row._last_close.items())
        assert [(p.parent, p.levels, p.active_from) for p in venue._protections] == [
            (p.parent, p.levels, p.active_from) for p in per_row._protections
        ]
        if wake < col.n:  # one row at a time from the wake row on: the scalar path agrees too
            for i in range(wake, col.n):
                one = paper_twin.next_wake(venue, col, sids, i, i + 1)
                if one == i:
                    break
                paper_twin.skip(venue, col, sids, i, i + 1)
                clock.advance_to(later[i].close_time)
                assert not await per_row.on_candle(later[i])
            assert sorted(venue._last_close.items()) == sorted(per_row._last_close.items())

    asyncio.run(scenario())


@st.composite
def risk_setup(draw: st.DrawFn) -> tuple[RiskSettings, list[Fill], list[Candle], list[Candle]]:
    settings_ = RiskSettings(
        daily_loss_limit_pct=draw(st.sampled_from([Decimal("0.001"), Decimal("0.02"), Decimal(1)])),
        max_drawdown_pct=draw(st.sampled_from([Decimal("0.003"), Decimal("0.05"), Decimal(1)])),
        var_window=draw(st.sampled_from([20, 25])),
        var_every=draw(st.sampled_from([1, 3, 7])),
        var_limit_pct=draw(st.sampled_from([0.0005, 0.01, 1.0])),
        initial_cash=Decimal(draw(st.sampled_from(["1000", "250.5"]))),
        drawdown_recovery=draw(st.sampled_from(["next_day", "recovered", "manual"])),
        drawdown_resume_pct=draw(st.sampled_from([Decimal("0.001"), Decimal("0.002")])),
    )
    step = draw(st.sampled_from([60, 300, 720]))  # minutes: several trading days in a run
    warm = draw(series(max_len=15, step_min=step))
    later = draw(series(max_len=40, step_min=step))
    shift = warm[-1].close_time - later[0].open_time
    later = [c.model_copy(update={"open_time": c.open_time + shift, "close_time": c.close_time + shift}) for c in later]
    return settings_, draw(positions()), warm, later


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=risk_setup())
def test_risk_simulate_stops_at_the_first_alert_and_apply_equals_on_candle(
    setup: tuple[RiskSettings, list[Fill], list[Candle], list[Candle]],
) -> None:
    _check_risk_twin(*setup)


def _closes(closes: list[str], start: datetime = T0) -> list[Candle]:
    """Hourly BTC candles with these closes (each opens at the previous close)."""
    out = []
    previous = Decimal(closes[0])
    for i, text in enumerate(closes):
        close = Decimal(text)
        open_time = start + timedelta(hours=i)
        out.append(trusted_candle("binance", "BTC/USDT", "1h", open_time, open_time + timedelta(hours=1), previous,
                                  max(previous, close), min(previous, close), close, Decimal(1), i + 1))  # fmt: skip
        previous = close
    return out


@pytest.mark.parametrize(
    ("limits", "closes"),
    [
        # 10 BTC bought at 100.50 with a 0.1 fee from 1005.1 (the peak): cash 0, equity = 10 * close
        ({"daily_loss_limit_pct": Decimal("0.1")}, ["100", "95", "90", "89"]),  # the day's floor (900) met
        ({"max_drawdown_pct": Decimal("0.2")}, ["100", "90", "80.408", "79"]),  # drawdown 0.2 exactly
        ({"max_drawdown_pct": Decimal("0.2")}, ["100", "80.409", "80.4081", "100.5", "80.409"]),  # just above
        ({}, ["100", "99", "100.51", "100.5100", "100.5100001", "100.5100001", "100.52"]),  # equal, new peaks
    ],
)
def test_risk_replay_decides_exact_ties_like_the_per_candle_path(limits: dict[str, Decimal], closes: list[str]) -> None:
    """The float path decides only far from a threshold: an equity exactly at the daily floor, at the
    breaker's drawdown or at the peak is decided in Decimal, as the per-candle path does."""
    params: dict[str, Any] = {"daily_loss_limit_pct": Decimal(1), "max_drawdown_pct": Decimal(1),
                              "initial_cash": Decimal("1005.1"), "var_every": 1000, **limits}  # fmt: skip
    settings_ = RiskSettings(**params)
    day = datetime(2024, 3, 2, tzinfo=UTC)  # the replayed candles start a new trading day
    warm = _closes(["100.01"], day - timedelta(hours=3))
    _check_risk_twin(settings_, [fill("BTC/USDT", Side.BUY, "10", "100.50", 1)], warm, _closes(closes, day))


def _check_risk_twin(settings_: RiskSettings, fills: list[Fill], warm: list[Candle], later: list[Candle]) -> None:
    """Replaying ``later`` with :func:`risk_quiet.simulate` stops exactly at each alert and
    :func:`risk_quiet.apply` leaves the engine as :meth:`RiskEngine.on_candle` on every candle does."""
    engine = RiskEngine(settings_)
    for c in warm[: len(warm) // 2]:
        engine.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
    for f in fills:
        engine.on_fill(f)
    for c in warm[len(warm) // 2 :]:
        engine.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
    col = column(later)
    sids = range(len(col.table))
    start = 0
    while start < col.n:
        run = risk_quiet.simulate(engine, col, sids, start, col.n)
        per_row = copy.deepcopy(engine)
        for i in range(start, run.end):
            c = later[i]
            assert not per_row.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close), (
                f"alert at {i}"
            )
        risk_quiet.apply(engine, run)
        assert _state(engine) == _state(per_row)
        if run.end >= col.n:
            break
        c = later[run.end]  # the wake row: an alert, handled by the engine itself
        assert engine.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
        start = run.end + 1


def _state(engine: RiskEngine) -> str:
    p = engine.portfolio
    return repr(
        (
            p.peak_equity,
            sorted(p.positions.items()),
            sorted(engine.last_price.items()),
            engine._day,
            engine._day_start_equity == engine._day_start_equity,
            engine._daily_floor,
            engine._daily_loss_hit,
            engine.state,
            engine.breaker_tripped,
            sorted((k, list(w.returns), w._last) for k, w in engine.returns.items()),
            engine._marks,
            engine.var,
            engine._var_alerted,
        )
    )
