"""The risk agent through its messages (candles, fills, intents, commands in; decisions and alerts
out): the drawdown breaker's recovery rule, Kelly sizing net of fees, volatility sizing at the
stop it places, ATR and VaR kept per (venue, symbol, timeframe)."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import talib

from agents.risk.agent import RiskAgent
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.domain import CommandKind, DecisionVerdict, Direction, Severity, Side, TradingState
from core.ids import content_id
from core.messages import Candle, Command, Envelope, Fill, RiskAlert, RiskDecision, TradeIntent
from core.routing import ALERTS, RISK_APPROVED, RISK_REJECTED
from infrastructure.messaging.memory import InMemoryBus
from tests.orderpath.helpers import candles, context, intent
from tests.orderpath.probe import Probe

C = candles(240)
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


class RiskHarness:
    """One risk agent on an in-memory bus, with a probe on its decisions and alerts."""

    def __init__(self, **settings: Any) -> None:
        self.settings = RiskSettings(**settings)
        self.clock = SimulatedClock(C[0].open_time)
        self.bus = InMemoryBus()
        self.probe = Probe()
        self.fills = 0

    async def start(self) -> RiskHarness:
        await self.bus.start()
        await self.probe.attach(self.bus, [RISK_APPROVED.all(), RISK_REJECTED.all(), ALERTS.all()])
        self.agent = RiskAgent(context(self.bus, self.clock, "risk-1"), self.settings)
        await self.agent.start()
        return self

    async def send(self, payload: Any, ts: datetime | None = None) -> None:
        if ts is not None and ts > self.clock.now():
            self.clock.advance_to(ts)
        await self.bus.publish(Envelope.wrap(payload, source="test", clock=self.clock, ts_event=ts))

    async def candle(self, c: Candle) -> list[RiskAlert]:
        before = len(self.probe.of(RiskAlert))
        await self.send(c, c.close_time)
        return self.probe.of(RiskAlert)[before:]

    async def fill(self, side: Side, quantity: D, price: D, fee: D = D(0), symbol: str = "BTC/USDT") -> None:
        self.fills += 1
        intent_id = content_id("risk-agent-test-fill", self.fills)
        fill = Fill(
            fill_id=f"f{self.fills}",
            client_order_id=f"c{self.fills}",
            intent_id=intent_id,
            venue="binance",
            symbol=symbol,
            side=side,
            price=price,
            quantity=quantity,
            fee=fee,
            ts=self.clock.now(),
        )
        await self.send(fill)

    async def decide(self, entry: TradeIntent) -> RiskDecision:
        await self.send(entry)
        return [d for d in self.probe.of(RiskDecision) if d.intent_id == entry.intent_id][-1]

    async def stop(self) -> None:
        await self.bus.close()
        await self.agent.stop()


def priced(i: int, price: D, timeframe: str = "1h") -> Candle:
    """The i-th real hourly candle moved to a flat price (a crash or a recovery on cue)."""
    return C[i].model_copy(update={"open": price, "high": price, "low": price, "close": price})


# -- item 2: the drawdown breaker's recovery rule ---------------------------------------------------


async def _tripped(h: RiskHarness) -> D:
    """Buy 90% of equity at 100, crash to 75: a 22.5% drawdown trips the 20% breaker. Returns the
    quantity held."""
    await h.candle(priced(0, D(100)))
    qty = D(90)
    await h.fill(Side.BUY, qty, D(100))
    alerts = await h.candle(priced(1, D(75)))
    trip = [a for a in alerts if a.code == "max_drawdown"]
    assert len(trip) == 1
    assert trip[0].severity is Severity.CRITICAL
    assert trip[0].trading_state is TradingState.REDUCING
    assert trip[0].value == pytest.approx(0.225)
    return qty


async def test_breaker_lifts_at_the_next_trading_day_by_default() -> None:
    h = await RiskHarness(fixed_fraction=D("0.1")).start()
    assert h.settings.drawdown_recovery == "next_day"
    qty = await _tripped(h)
    entry = await h.decide(intent(C[2], tag="same-day"))
    assert (entry.verdict, entry.reason) == (DecisionVerdict.REJECT, "reducing_only")
    exit_ = await h.decide(intent(C[2], Side.SELL, Direction.EXIT))
    assert exit_.approved
    assert exit_.quantity == qty
    await h.fill(Side.SELL, qty, D(75))
    for i in range(3, 23):  # the rest of the UTC day: still exits only
        assert not [a for a in await h.candle(priced(i, D(75))) if a.trading_state is not None]
    late = await h.decide(intent(C[22], tag="late"))
    assert late.reason == "reducing_only"
    assert C[23].close_time.date() > C[22].close_time.date()
    alerts = await h.candle(priced(23, D(75)))  # the first mark of the next UTC day
    lifted = [a for a in alerts if a.code == "drawdown_breaker_lifted"]
    assert len(lifted) == 1
    assert lifted[0].trading_state is TradingState.ACTIVE
    d = await h.decide(intent(priced(23, D(75)), tag="next-day"))
    assert d.verdict is DecisionVerdict.APPROVE
    # sized on the equity left (1,000 cash + 90 x 75), with the default cash reserve
    assert d.quantity == (D("0.1") * D(7750) / (D(75) * D("1.003"))).quantize(D("1e-8"), rounding="ROUND_DOWN")
    # the drawdown restarts from the day's equity: a further 20% fall trips it again
    await h.fill(Side.BUY, d.quantity, D(75))
    await h.stop()


async def test_breaker_lifts_when_the_drawdown_recovers() -> None:
    h = await RiskHarness(
        drawdown_recovery="recovered",
        drawdown_resume_pct=D("0.1"),
        daily_loss_limit_pct=D(1),
        fixed_fraction=D("0.05"),
        max_position_pct=D(1),
    ).start()
    await _tripped(h)
    for i, price in enumerate((D(80), D(85), D(88)), start=2):  # drawdown 18%, 13.5%, 10.8%: held
        assert not [a for a in await h.candle(priced(i, price)) if a.trading_state is not None]
        assert (await h.decide(intent(priced(i, price), tag=f"r{i}"))).reason == "reducing_only"
    alerts = await h.candle(priced(5, D(90)))  # 1,000 + 90 x 90 = 9,100: a 9% drawdown
    lifted = [a for a in alerts if a.code == "drawdown_breaker_lifted"]
    assert len(lifted) == 1
    assert lifted[0].trading_state is TradingState.ACTIVE
    assert (await h.decide(intent(priced(5, D(90)), tag="after"))).approved
    await h.stop()


async def test_manual_recovery_waits_for_resume() -> None:
    h = await RiskHarness(drawdown_recovery="manual", daily_loss_limit_pct=D(1)).start()
    qty = await _tripped(h)
    await h.fill(Side.SELL, qty, D(75))
    for i in range(2, 30):  # past midnight: still exits only
        await h.candle(priced(i, D(75)))
    assert (await h.decide(intent(priced(29, D(75)), tag="wait"))).reason == "reducing_only"
    resume = Command(command_id=content_id("resume-test"), kind=CommandKind.RESUME, target="risk")
    before = len(h.probe.of(RiskAlert))
    await h.send(resume)
    changed = [a for a in h.probe.of(RiskAlert)[before:] if a.trading_state is not None]
    assert [(a.code, a.trading_state) for a in changed] == [("trading_state", TradingState.ACTIVE)]
    assert (await h.decide(intent(priced(29, D(75)), tag="resumed"))).approved
    await h.stop()


def test_resume_level_must_be_below_the_trip_level() -> None:
    with pytest.raises(ValueError, match="drawdown_resume_pct"):
        RiskSettings(drawdown_recovery="recovered", drawdown_resume_pct=D("0.2"), max_drawdown_pct=D("0.2"))


# -- item 3: Kelly sizing on the net-of-fee edge ----------------------------------------------------


async def _kelly_after_round_trips(fee: D) -> RiskDecision:
    """Five round trips of 0.02 BTC at 50,000 (1,000 of notional): three win 0.3% (+3 gross), two
    lose 0.2% (-2 gross); ``fee`` per fill. Then an entry intent, sized by Kelly."""
    h = await RiskHarness(sizing="kelly", kelly_min_trades=5, max_position_pct=D(1)).start()
    qty, entry = D("0.02"), D(50_000)
    for exit_price in (D(50_150), D(49_900), D(50_150), D(49_900), D(50_150)):
        await h.fill(Side.BUY, qty, entry, fee)
        await h.fill(Side.SELL, qty, exit_price, fee)
    probe = intent(C[10], price=entry, tag=f"kelly-{fee}")
    decision = await h.decide(probe)
    await h.stop()
    return decision


async def test_kelly_sizes_on_the_edge_net_of_fees() -> None:
    # without fees the record is a winning edge: W = 0.6, R = 3 / 2 -> Kelly 1/3, half 1/6 of 10,005
    gross = await _kelly_after_round_trips(D(0))
    assert gross.approved
    assert gross.quantity == (D(10_005) * D("0.1666666667") / (D(50_000) * D("1.003"))).quantize(
        D("1e-8"), rounding="ROUND_DOWN"
    )
    # a fee of 1 per fill (0.1%) makes the wins +1 and the losses -4: W = 0.6, R = 0.25, no edge
    net = await _kelly_after_round_trips(D(1))
    assert (net.verdict, net.reason) == (DecisionVerdict.REJECT, "no_edge")
    assert "net of fees" in net.detail


# -- item 8: volatility sizing risks RISK_PER_TRADE at the stop it places ---------------------------


async def _volatility_decision(entry: TradeIntent, risk: D = D("0.01"), **settings: Any) -> RiskDecision:
    h = await RiskHarness(
        sizing="volatility", risk_per_trade=risk, atr_multiple=D(2), max_position_pct=D(1), **settings
    ).start()
    for c in C[:40]:
        await h.candle(c)
    decision = await h.decide(entry)
    await h.stop()
    return decision


def _loss_at_stop(d: RiskDecision) -> D:
    assert d.quantity is not None
    assert d.stop_loss is not None
    return d.quantity * abs(d.reference_price - d.stop_loss)


async def test_volatility_sizing_risks_the_fraction_at_the_strategys_stop() -> None:
    ref = C[39].close
    stop = (ref * D("0.97")).quantize(D("0.01"))  # a strategy's stop hint, far from 2 ATRs
    d = await _volatility_decision(intent(C[39], stop_loss=stop))
    assert d.verdict is DecisionVerdict.APPROVE
    assert d.stop_loss == stop
    assert abs(_loss_at_stop(d) - D(100)) <= D("1e-8") * abs(ref - stop)  # 1% of 10,000 at the stop


async def test_volatility_sizing_risks_the_fraction_at_a_percentage_stop() -> None:
    d = await _volatility_decision(intent(C[39]), use_atr_stops=False, stop_loss_pct=D("0.04"))
    assert d.verdict is DecisionVerdict.APPROVE
    assert d.stop_loss == C[39].close * D("0.96")
    assert abs(_loss_at_stop(d) - D(100)) <= D("1e-8") * C[39].close * D("0.04")


async def test_volatility_sizing_with_the_atr_stop() -> None:
    d = await _volatility_decision(intent(C[39]), risk=D("0.005"), stop_loss_pct=None)
    highs, lows, closes = (np.array([float(getattr(c, f)) for c in C[:40]]) for f in ("high", "low", "close"))
    atr = talib.ATR(highs, lows, closes, timeperiod=14)[-1]
    assert d.stop_loss is not None
    assert float(C[39].close - d.stop_loss) == pytest.approx(2 * atr, rel=1e-9)
    assert d.verdict is DecisionVerdict.APPROVE  # not cut by a cap: the whole risk is taken
    assert float(_loss_at_stop(d)) == pytest.approx(50, rel=1e-6)


# -- item 7: ATR and VaR per (venue, symbol, timeframe) ---------------------------------------------


def four_hourly(hourly: list[Candle]) -> list[Candle]:
    """4h candles aggregated from aligned hourly ones."""
    out = []
    for k in range(len(hourly) // 4):
        part = hourly[4 * k : 4 * k + 4]
        out.append(
            Candle(
                venue=part[0].venue,
                symbol=part[0].symbol,
                timeframe="4h",
                open_time=part[0].open_time,
                close_time=part[-1].close_time,
                open=part[0].open,
                high=max(c.high for c in part),
                low=min(c.low for c in part),
                close=part[-1].close,
                volume=sum((c.volume for c in part), D(0)),
                sequence=k,
            )
        )
    return out


def _talib_atr(series: list[Candle]) -> float:
    high, low, close = (np.array([float(getattr(c, f)) for c in series]) for f in ("high", "low", "close"))
    return float(talib.ATR(high, low, close, timeperiod=14)[-1])


async def test_atr_is_kept_per_timeframe() -> None:
    hourly = list(C[:200])
    assert hourly[0].open_time.hour % 4 == 0
    four = four_hourly(hourly)
    h = await RiskHarness(sizing="volatility", stop_loss_pct=None, max_position_pct=D(1)).start()
    k = 0
    for c in hourly:  # both series interleaved in close-time order, as the feed delivers them
        await h.candle(c)
        if k < len(four) and four[k].close_time == c.close_time:
            await h.candle(four[k])
            k += 1
    on_4h = await h.decide(intent(four[-1], tag="4h"))
    on_1h = await h.decide(intent(hourly[-1], tag="1h"))
    await h.stop()
    assert on_4h.stop_loss is not None
    assert on_1h.stop_loss is not None
    assert float(four[-1].close - on_4h.stop_loss) == pytest.approx(2 * _talib_atr(four), rel=1e-9)
    assert float(hourly[-1].close - on_1h.stop_loss) == pytest.approx(2 * _talib_atr(hourly), rel=1e-9)


def _sample_candles(symbol: str, n: int) -> list[Candle]:
    path = SAMPLES / f"binance_{symbol.replace('/', '-')}_1h.csv"
    out = []
    with path.open() as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i >= n:
                break
            t = datetime.fromtimestamp(int(row["timestamp"]) / 1000, tz=UTC)
            out.append(
                Candle(
                    venue="binance", symbol=symbol, timeframe="1h", open_time=t, close_time=t + timedelta(hours=1),
                    open=D(row["open"]), high=D(row["high"]), low=D(row["low"]), close=D(row["close"]),
                    volume=D(row["volume"]), sequence=i,
                )
            )  # fmt: skip
    return out


async def test_var_is_the_historical_var_of_the_positions_own_series() -> None:
    """All the equity in BTC while ETH candles arrive too: the 99% VaR is BTC's, on BTC's returns
    (an equity window marked by every candle would mix in the ETH marks' zero returns)."""
    n = 400
    btc, eth = _sample_candles("BTC/USDT", n), _sample_candles("ETH/USDT", n)
    h = RiskHarness(var_window=n, var_every=2 * n, var_limit_pct=1e-6, max_drawdown_pct=D(1), daily_loss_limit_pct=D(1))
    h.clock = SimulatedClock(btc[0].open_time)
    await h.start()
    qty = D(10_000) / btc[0].open
    await h.fill(Side.BUY, qty, btc[0].open)
    alerts: list[RiskAlert] = []
    for b, e in zip(btc, eth, strict=True):
        alerts += await h.candle(b)
        alerts += await h.candle(e)
    await h.stop()
    var = [a for a in alerts if a.code == "var_limit"]
    assert len(var) == 1, "one computation after 2n marks"
    closes = np.array([float(c.close) for c in btc])
    returns = closes[1:] / closes[:-1] - 1
    equity = float(h.agent.engine.portfolio.equity)
    weight = float(qty * btc[-1].close) / equity
    scenarios = np.sort(weight * returns)
    expected = -scenarios[: math.ceil(len(scenarios) * 0.01)][-1]
    assert var[0].value == pytest.approx(expected, rel=1e-9)
    assert "1h horizon" in var[0].message
    # the window a per-mark equity series would have held (every ETH mark a zero return) differs
    mixed = np.sort(np.concatenate([weight * returns[-(n // 2) :], np.zeros(n // 2)]))
    assert -mixed[: math.ceil(n * 0.01)][-1] != pytest.approx(expected, rel=1e-6)
