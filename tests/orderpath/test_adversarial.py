"""Hypothesis: adversarial intent streams never push the order path past a limit.

Risk, compliance and execution (paper venue) are composed directly (no bus) over real candles;
streams mix huge sizes, floods within one candle, absurd (but valid) prices, stale TTLs, both sides
and exits, and a kill switch thrown at a random step.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.compliance.gate import ComplianceGate
from agents.compliance.settings import ComplianceSettings
from agents.execution.engine import ExecutionEngine
from agents.risk.engine import RiskEngine
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.domain import Direction, Side
from core.messages import Fill, OrderUpdate
from core.trading.fillmodel import FillModel
from core.trading.stores import InMemoryExecutionStore
from infrastructure.venues.paper import PaperVenue
from tests.orderpath.helpers import candles, intent

C = candles(120)
MAX_POS = D("0.3")
MAX_GROSS = D("0.5")
COLLAR = D("0.02")
RATE = 3
RATE_WINDOW = 7200.0  # two candles
STATS = {"orders": 0}

step = st.tuples(
    st.integers(min_value=0, max_value=6),  # intents in this candle (floods)
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.BUY, Side.SELL]),
            st.sampled_from([None, Direction.EXIT]),
            st.sampled_from([D(1), D("1.001"), D("0.5"), D(3), D("1000"), D("0.00001")]),  # price multiplier
            st.sampled_from([timedelta(minutes=30), timedelta(seconds=1), timedelta(0)]),  # 0 -> already stale
        ),
        min_size=6,
        max_size=6,
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(step, min_size=5, max_size=30),
    fraction=st.sampled_from([D("0.1"), D("0.5"), D(1)]),
    halt_at=st.one_of(st.none(), st.integers(min_value=0, max_value=29)),
)
async def test_no_limit_is_ever_exceeded(steps, fraction, halt_at):
    clock = SimulatedClock(C[0].open_time)
    risk = RiskEngine(
        RiskSettings(
            fixed_fraction=fraction,
            max_position_pct=MAX_POS,
            max_gross_exposure_pct=MAX_GROSS,
            daily_loss_limit_pct=D("0.03"),
            max_open_positions=2,
            take_profit_pct=None,
        )
    )
    gate = ComplianceGate(
        ComplianceSettings(
            price_collar_pct=COLLAR,
            max_orders_per_window=RATE,
            rate_window_s=RATE_WINDOW,
            max_order_quantity=D(10),
            max_order_notional=D(1_000_000),
        )
    )
    venue = PaperVenue(clock, FillModel(taker_fee_bps=D(10), slippage_bps=D(2)))
    execution = ExecutionEngine(venue, InMemoryExecutionStore(), clock, initial_cash=D(10_000))
    await execution.start()
    order_times = []
    halted = False
    n = 0
    for i, (count, specs) in enumerate(steps):
        c = C[i]
        clock.advance_to(c.close_time)
        for event in await execution.on_candle(c):
            if isinstance(event, Fill):
                risk.on_fill(event)
            elif isinstance(event, OrderUpdate):
                risk.on_order_status(event.intent_id, event.status)
        risk.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
        gate.on_price(c.venue, c.symbol, c.close)
        if halt_at == i:
            gate.halt("test")
            halted = True
        for side, direction, mult, ttl in specs[:count]:
            n += 1
            price = (c.close * mult).quantize(D("0.01")) or D("0.01")
            try:
                it = intent(c, side, direction, price=price, ttl=ttl or timedelta(seconds=1), tag=str(n))
            except ValueError:
                continue
            now = c.close_time + (timedelta(seconds=2) if ttl in (timedelta(0), timedelta(seconds=1)) else timedelta(0))
            equity = risk.portfolio.equity
            decision = risk.decide(it, now).decision
            if now >= it.expires_at:
                assert not decision.approved
                assert decision.reason == "stale_intent"
            if decision.approved and decision.reason != "exit":
                assert equity > risk.daily_loss_floor  # no new entry once the daily loss limit is hit
                pos = risk.portfolio.position(c.venue, c.symbol).quantity
                reserved = sum((r.signed for r in risk.reservations.values()), D(0))
                assert abs(pos + reserved) * it.reference_price <= MAX_POS * equity * D("1.000001")
                increasing = sum(
                    (r.remaining * r.price for r in risk.reservations.values() if r.side is Side.BUY), D(0)
                )
                marked = risk.portfolio.gross_exposure
                assert marked + increasing <= MAX_GROSS * equity * D("1.000001")
            result = gate.check(decision, now)
            if result.decision.verdict.value != "approve":
                risk.on_compliance_reject(it.intent_id)
                continue
            assert not halted, "an order passed the kill switch"
            order = result.order
            assert order is not None
            assert abs(order.reference_price - c.close) / c.close <= COLLAR
            order_times.append(now)
            STATS["orders"] += 1
            recent = [t for t in order_times if (now - t).total_seconds() < RATE_WINDOW]
            assert len(recent) <= RATE
            for event in await execution.handle_order(order):
                if isinstance(event, OrderUpdate):
                    risk.on_order_status(event.intent_id, event.status)
        # the spot account never goes short and never spends cash it does not have
        assert execution.portfolio.position(c.venue, c.symbol).quantity >= 0
        assert execution.portfolio.cash >= -D("0.01") * execution.portfolio.equity


def test_the_streams_do_reach_the_venue():
    """Guard against a vacuous property: the adversarial run above placed orders."""
    assert STATS["orders"] > 0
