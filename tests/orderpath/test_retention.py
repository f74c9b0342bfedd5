"""Time-bounded retention (``retention_grace_s``): only terminal orders / intents that expired more than
the grace ago are forgotten; within the grace a redelivery is still recognised as a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from agents.compliance.gate import ComplianceGate
from agents.compliance.settings import ComplianceSettings
from agents.execution.engine import ExecutionEngine
from agents.risk.engine import RiskEngine
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.domain import DecisionVerdict, Direction, OrderStatus, OrderType, Side
from core.ids import content_id
from core.messages import Fill, OrderRequest, RiskDecision
from core.trading.fillmodel import FillModel
from core.trading.protective import ProtectiveLevels
from core.trading.retention import ExpiryQueue
from core.trading.stores import InMemoryExecutionStore
from infrastructure.venues.paper import PaperVenue, _Protection
from tests.orderpath.helpers import candles, intent, order_request

C = candles(60)
GRACE = timedelta(hours=1)
T0 = C[4].close_time


def test_expiry_queue_hands_back_keys_expired_more_than_the_grace_ago() -> None:
    q: ExpiryQueue[str] = ExpiryQueue(GRACE)
    q.add("late", T0 + timedelta(hours=5))
    q.add("early", T0)
    q.add("mid", T0 + timedelta(hours=2))
    assert q.due(T0 + GRACE) == []  # exactly one grace after expiry: still kept
    assert q.due(T0 + GRACE + timedelta(microseconds=1)) == ["early"]
    assert q.due(T0 + timedelta(hours=4)) == ["mid"]
    assert len(q) == 1


def _order(n: int, expires_at: datetime, side: Side = Side.BUY, limit: D | None = None) -> OrderRequest:
    kind = OrderType.LIMIT if limit is not None else OrderType.MARKET
    return order_request(n, side=side, expires_at=expires_at, order_type=kind, limit_price=limit)


async def test_execution_forgets_only_terminal_orders_expired_beyond_the_grace() -> None:
    clock = SimulatedClock()
    clock.advance_to(T0)
    venue = PaperVenue(clock, FillModel(), retention=GRACE)
    store = InMemoryExecutionStore()
    eng = ExecutionEngine(venue, store, clock, retention=GRACE)
    await eng.start()
    filled = _order(1, T0 + timedelta(hours=2))
    resting = _order(2, T0 + timedelta(hours=2), limit=C[4].close / 2)  # never fills: stays open
    recent = _order(3, T0 + timedelta(days=10))
    for req in (filled, resting, recent):
        await eng.handle_order(req)
    clock.advance_to(C[5].close_time)
    await eng.on_candle(C[5])
    assert store.orders[filled.client_order_id].status is OrderStatus.FILLED
    assert store.orders[resting.client_order_id].status is OrderStatus.ACCEPTED
    assert store.orders[recent.client_order_id].status is OrderStatus.FILLED
    fill_keys = [k for k, (_, f) in store.fill_log.items() if f.client_order_id == filled.client_order_id]
    assert len(fill_keys) == 1

    # expired, but within the grace: a redelivery is still a duplicate (nothing sent, nothing new)
    clock.advance_to(T0 + timedelta(hours=2, minutes=30))
    books = len(venue._orders)
    assert await eng.handle_order(filled) == []
    assert len(venue._orders) == books
    assert filled.client_order_id in store.orders

    # a new order more than the grace after the expiry prunes the terminal one only
    cash, position = eng.portfolio.cash, eng.portfolio.position("binance", "BTC/USDT")
    clock.advance_to(T0 + timedelta(hours=3, seconds=1))
    await eng.handle_order(_order(4, T0 + timedelta(days=10)))
    assert filled.client_order_id not in store.orders
    assert not any(k in store.fill_log for k in fill_keys)
    assert filled.client_order_id not in eng._per_order
    assert not eng.portfolio.has_fill(eng._fill_key(*fill_keys[0]))
    assert filled.client_order_id not in venue._orders
    for kept in (resting, recent):  # open (whatever its expiry), or terminal but not expired long enough
        assert kept.client_order_id in store.orders
        assert kept.client_order_id in venue._orders
    assert resting.client_order_id in eng.open
    assert eng.portfolio.cash == cash
    assert eng.portfolio.position("binance", "BTC/USDT") == position

    # a redelivery that late is refused as stale: it never reaches the venue
    events = await eng.handle_order(filled)
    assert store.orders[filled.client_order_id].reason == "stale_order"
    assert store.orders[filled.client_order_id].status is OrderStatus.REJECTED
    assert filled.client_order_id not in venue._orders
    assert not any(isinstance(e, Fill) for e in events)


async def test_execution_without_retention_keeps_everything() -> None:
    clock = SimulatedClock()
    clock.advance_to(T0)
    store = InMemoryExecutionStore()
    eng = ExecutionEngine(PaperVenue(clock, FillModel()), store, clock)
    await eng.start()
    first = _order(1, T0 + timedelta(hours=1))
    await eng.handle_order(first)
    clock.advance_to(C[5].close_time)
    await eng.on_candle(C[5])
    clock.advance_to(T0 + timedelta(days=30))
    await eng.handle_order(_order(2, T0 + timedelta(days=31)))
    assert first.client_order_id in store.orders
    assert len(store.fill_log) == 1


def _risk(grace: timedelta | None) -> RiskEngine:
    eng = RiskEngine(
        RiskSettings(
            stop_loss_pct=None,
            take_profit_pct=None,
            max_position_pct=D("0.1"),
            max_gross_exposure_pct=D(1),
            fixed_fraction=D("0.01"),
            reservation_ttl_s=86_400.0,
            retention_grace_s=grace.total_seconds() if grace else None,
        )
    )
    for c in C[:20]:
        eng.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
    return eng


def test_risk_forgets_decisions_of_long_expired_intents_without_a_reservation() -> None:
    eng = _risk(GRACE)
    now = C[19].close_time
    released = intent(C[19], tag="released", ttl=timedelta(minutes=30))
    reserved = intent(C[19], tag="reserved", ttl=timedelta(minutes=30))
    first = eng.decide(released, now).decision
    held = eng.decide(reserved, now).decision
    assert first.approved
    assert held.approved
    eng.on_order_status(released.intent_id, OrderStatus.FILLED)  # its order ended: no reservation left

    # within the grace the same intent gets the same (cached) answer
    assert eng.decide(released, now + timedelta(minutes=80)).decision == first
    # beyond it, a new decision prunes the long-expired one that holds nothing, not the reserved one
    later = now + timedelta(hours=2)
    eng.decide(intent(C[19], tag="new", ttl=timedelta(hours=3)), later)
    assert released.intent_id not in eng._decided
    assert reserved.intent_id in eng._decided
    # a redelivery then is stale, as any expired intent
    again = eng.decide(released, later).decision
    assert again.verdict is DecisionVerdict.REJECT
    assert again.reason == "stale_intent"


def test_risk_forgets_fill_ids_one_grace_after_the_fill() -> None:
    eng = _risk(GRACE)
    d = eng.decide(intent(C[19]), C[19].close_time).decision
    assert d.quantity is not None
    half = d.quantity / 2

    def fill(fid: str, ts: datetime) -> Fill:
        return Fill(fill_id=fid, client_order_id="c1", intent_id=d.intent_id, venue=d.venue, symbol=d.symbol,
                    side=d.side, price=C[20].open, quantity=half, fee=D(0), ts=ts)  # fmt: skip

    eng.on_fill(fill("f1", C[20].open_time))
    eng.on_fill(fill("f1", C[20].open_time))  # a duplicate within the grace counts once
    assert eng.portfolio.position(d.venue, d.symbol).quantity == half
    eng.on_fill(fill("f2", C[20].open_time + timedelta(hours=2)))
    assert not eng.portfolio.has_fill("f1")
    assert eng.portfolio.has_fill("f2")


NOW = datetime(2024, 9, 16, 12, 0, tzinfo=UTC)


def _decision(n: int, ttl: timedelta) -> RiskDecision:
    return RiskDecision(
        intent_id=content_id("retention-c", n),
        verdict=DecisionVerdict.APPROVE,
        reason="approved",
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        direction=Direction.LONG,
        quantity=D("0.01"),
        reference_price=D(60_000),
        expires_at=NOW + ttl,
    )


def test_compliance_forgets_intents_expired_beyond_the_grace_only() -> None:
    gate = ComplianceGate(ComplianceSettings(retention_grace_s=GRACE.total_seconds()))
    gate.on_price("binance", "BTC/USDT", D(60_000))
    short, long = _decision(0, timedelta(minutes=5)), _decision(1, timedelta(days=2))
    assert gate.check(short, NOW).decision.verdict is DecisionVerdict.APPROVE
    assert gate.check(long, NOW).decision.verdict is DecisionVerdict.APPROVE
    assert gate.check(short, NOW + timedelta(minutes=30)).decision.reason == "duplicate_intent"
    later = NOW + timedelta(hours=1, minutes=6)
    assert gate.check(_decision(2, timedelta(days=1)), later).decision.verdict is DecisionVerdict.APPROVE
    assert short.intent_id not in gate._seen
    assert gate.check(short, later).decision.reason == "stale_intent"  # still refused
    assert gate.check(long, later).decision.reason == "duplicate_intent"


def test_compliance_without_retention_keeps_its_window() -> None:
    gate = ComplianceGate(ComplianceSettings())
    gate.on_price("binance", "BTC/USDT", D(60_000))
    short = _decision(0, timedelta(minutes=5))
    gate.check(short, NOW)
    gate.check(_decision(2, timedelta(days=30)), NOW + timedelta(days=20))
    assert gate.check(short, NOW + timedelta(days=20)).decision.reason == "duplicate_intent"


async def test_paper_venue_keeps_the_exit_a_held_protection_would_create() -> None:
    clock = SimulatedClock()
    clock.advance_to(T0)
    venue = PaperVenue(clock, FillModel(), retention=GRACE)
    entry = _order(1, T0 + timedelta(hours=2)).model_copy(update={"stop_loss": C[4].close * 10})
    await venue.submit(entry)
    for c in (C[5], C[6]):  # the entry fills at C[5]'s open, its stop fires at C[6]'s open
        clock.advance_to(c.close_time)
        await venue.on_candle(c)
    (exit_coid,) = [coid for coid, rec in venue._orders.items() if rec.own]
    assert venue._orders[exit_coid].status is OrderStatus.FILLED
    assert venue.protections == 0
    # a second protection of the same entry (e.g. from a partial fill) would create the same exit
    venue._protections.append(
        _Protection(
            entry.client_order_id,
            str(entry.intent_id),
            "binance",
            "BTC/USDT",
            D("0.1"),
            ProtectiveLevels(long=True, stop_loss=C[4].close * 10),
            T0,
        )
    )
    clock.advance_to(C[6].close_time + timedelta(days=1) + GRACE + timedelta(seconds=1))
    await venue.submit(_order(2, clock.now() + timedelta(days=1)))
    assert entry.client_order_id not in venue._orders
    assert exit_coid in venue._orders  # kept: it makes that protection fire at most once
    venue._protections.clear()
    clock.advance_to(clock.now() + GRACE + timedelta(seconds=1))
    await venue.submit(_order(3, clock.now() + timedelta(days=1)))
    assert exit_coid not in venue._orders
