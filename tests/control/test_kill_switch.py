"""HALT at the venue and across restarts.

* The paper venue's resident protective exits (stop-loss / take-profit) do not fire while halted and
  are re-armed by RESUME; the live venue cancels every open order of the traded symbols, protective
  ones it did not place through us included, and does not report the halt done while one is left.
* The kill switch is stored by execution (real PostgreSQL here): an execution agent built again on
  the same database refuses an approved order until RESUME, without being told again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal as D

import pytest

from agents.execution.agent import ExecutionAgent
from agents.execution.engine import ExecutionEngine
from agents.execution.settings import ExecutionSettings
from core.clock import SimulatedClock
from core.domain import CommandKind, OrderStatus, OrderType, Side
from core.errors import TemporaryError
from core.gateway import VenueOrder as GatewayOrder
from core.ids import client_order_id, content_id
from core.messages import Command, CommandAck, Envelope, Fill, OrderRequest, OrderUpdate
from core.routing import COMMAND_ACKS, ORDER_UPDATES
from core.trading.fillmodel import FillModel
from core.trading.stores import InMemoryExecutionStore
from core.trading.venue import VenueOrder
from infrastructure.database.timescale import Database, PostgresExecutionStore, apply_migrations
from infrastructure.messaging.memory import InMemoryBus
from infrastructure.venues.live import LiveVenue
from infrastructure.venues.paper import PaperVenue
from tests.factories import eventually
from tests.orderpath.helpers import candles, context
from tests.orderpath.probe import Probe

C = candles(200)


def order(n: int, *, symbol: str = "BTC/USDT", qty: D = D("0.1"), **kw: object) -> OrderRequest:
    """A market buy approved at the close of candle 4."""
    intent_id = content_id("kill-switch-test", n)
    return OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol=symbol,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=qty,
        reference_price=C[4].close,
        expires_at=C[4].close_time + timedelta(days=3650),
        **kw,  # type: ignore[arg-type]
    )


def fills(events: Sequence[object]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


# --------------------------------------------------------------------------- paper venue


async def test_halt_suspends_paper_protective_exits_and_resume_rearms_them() -> None:
    clock = SimulatedClock(C[4].close_time)
    # next_bar: the stop is armed after the entry candle (which touches it), so the halt comes first
    venue = PaperVenue(clock, FillModel(taker_fee_bps=D(0)), intrabar="next_bar")
    engine = ExecutionEngine(venue, InMemoryExecutionStore(), clock, initial_cash=D(100_000))
    await engine.start()
    stop = C[4].close * D("0.999")  # real candles cross it within a few hours
    entry = order(1, stop_loss=stop, take_profit=C[4].close * D(2))
    await engine.handle_order(entry)
    clock.advance_to(C[5].close_time)
    assert len(fills(await engine.on_candle(C[5]))) == 1  # the entry: the venue now holds a stop-loss
    held = engine.portfolio.position("binance", "BTC/USDT").quantity
    assert held == D("0.1")
    assert venue.protections == 1

    await engine.halt(uuid.uuid4(), "drill")
    crossed = []
    for c in C[6:60]:  # the stop is crossed while halted: nothing may trade
        clock.advance_to(c.close_time)
        assert fills(await engine.on_candle(c)) == []
        if c.low <= stop:
            crossed.append(c)
    assert crossed, "the test needs a candle that crosses the stop while halted"
    assert engine.portfolio.position("binance", "BTC/USDT").quantity == held
    assert venue.protections == 1  # suspended, not dropped
    refused = await venue.submit(order(2))  # the venue itself refuses new orders while halted
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason == "venue_halted"

    await engine.resume(uuid.uuid4(), "drill over")
    nxt = C[60]
    clock.advance_to(nxt.close_time)
    exit_fills = fills(await engine.on_candle(nxt))  # re-armed: the crossed stop fires on the next candle
    assert len(exit_fills) == 1
    assert exit_fills[0].side is Side.SELL
    assert exit_fills[0].ts == nxt.open_time
    assert exit_fills[0].price == min(nxt.open, stop)
    assert engine.portfolio.position("binance", "BTC/USDT").quantity == 0


async def test_halt_cancels_open_paper_orders_and_survives_a_journal_restart(tmp_path) -> None:
    clock = SimulatedClock(C[4].close_time)
    journal = tmp_path / "paper.json"
    venue = PaperVenue(clock, FillModel(), journal_path=journal, intrabar="next_bar")
    engine = ExecutionEngine(venue, InMemoryExecutionStore(), clock, initial_cash=D(100_000))
    await engine.start()
    await engine.handle_order(order(1, stop_loss=C[4].close * D("0.999")))
    clock.advance_to(C[5].close_time)
    await engine.on_candle(C[5])
    await engine.handle_order(order(3))  # an open order at the venue
    events = await engine.halt(uuid.uuid4(), "drill")
    assert [e.status for e in events if isinstance(e, OrderUpdate)] == [OrderStatus.CANCELED]
    assert not engine.open
    reopened = PaperVenue(clock, FillModel(), journal_path=journal)  # the venue's process restarted
    assert reopened.halted
    assert reopened.protections == 1
    for c in C[6:60]:
        clock.advance_to(c.close_time)
        assert list(await reopened.on_candle(c)) == []


# --------------------------------------------------------------------------- live venue


class Exchange:
    """A gateway with resting orders: ours, and a protective stop someone placed at the exchange."""

    venue = "binance"

    def __init__(self, *, stuck: str | None = None) -> None:
        self.orders: dict[str, GatewayOrder] = {}
        self.stuck = stuck
        self.cancelled: list[str] = []

    def rest(self, coid: str, symbol: str, order_type: OrderType = OrderType.LIMIT) -> None:
        self.orders[coid] = GatewayOrder(
            venue="binance", symbol=symbol, order_id=f"X{len(self.orders) + 1}", client_order_id=coid,
            side=Side.SELL, order_type=order_type, status=OrderStatus.ACCEPTED, amount=D("0.1"), filled=D(0),
        )  # fmt: skip

    async def fetch_open_orders(self, symbol: str | None = None) -> list[GatewayOrder]:
        return [o for o in self.orders.values() if o.status.is_open and symbol in (None, o.symbol)]

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> GatewayOrder | None:
        return self.orders.get(client_order_id)

    async def cancel_order_by_client_id(self, symbol: str, client_order_id: str) -> GatewayOrder:
        o = self.orders[client_order_id]
        if client_order_id != self.stuck:
            self.cancelled.append(client_order_id)
            self.orders[client_order_id] = GatewayOrder(
                venue=o.venue, symbol=o.symbol, order_id=o.order_id, client_order_id=client_order_id,
                side=o.side, order_type=o.order_type, status=OrderStatus.CANCELED, amount=o.amount, filled=o.filled,
            )  # fmt: skip
        return self.orders[client_order_id]

    async def close(self) -> None:
        return None


async def test_live_halt_cancels_every_open_order_of_the_traded_symbols() -> None:
    exchange = Exchange()
    exchange.rest("protective-stop-1", "BTC/USDT", OrderType.STOP_MARKET)
    exchange.rest("resting-limit-2", "BTC/USDT")
    exchange.rest("other-desk-3", "DOGE/USDT")  # not a symbol we trade: left alone
    venue = LiveVenue(exchange, symbols=["BTC/USDT", "ETH/USDT"])  # type: ignore[arg-type]
    engine = ExecutionEngine(venue, InMemoryExecutionStore(), SimulatedClock(C[4].close_time))
    await engine.start()
    await engine.halt(uuid.uuid4(), "drill")
    assert sorted(exchange.cancelled) == ["protective-stop-1", "resting-limit-2"]
    assert await exchange.fetch_open_orders("BTC/USDT") == []
    assert exchange.orders["other-desk-3"].status is OrderStatus.ACCEPTED
    assert await venue.resume() == ()


async def test_live_halt_is_not_done_while_an_order_is_left_open() -> None:
    exchange = Exchange(stuck="protective-stop-1")
    exchange.rest("protective-stop-1", "BTC/USDT", OrderType.STOP_MARKET)
    venue = LiveVenue(exchange, symbols=["BTC/USDT"])  # type: ignore[arg-type]
    engine = ExecutionEngine(venue, InMemoryExecutionStore(), SimulatedClock(C[4].close_time))
    await engine.start()
    with pytest.raises(TemporaryError, match="protective-stop-1"):
        await engine.halt(uuid.uuid4(), "drill")  # the command is retried, never acknowledged


# --------------------------------------------------------------------------- restart (PostgreSQL)


@pytest.fixture
async def database(postgres_dsn: str) -> str:
    db = Database(postgres_dsn)
    await db.connect()
    await apply_migrations(db)
    await db.close()
    return postgres_dsn


class CountingPaperVenue(PaperVenue):
    """A paper venue that counts the orders it was sent."""

    submitted: list[str]

    async def submit(self, order: OrderRequest) -> VenueOrder:
        self.submitted.append(order.client_order_id)
        return await super().submit(order)


async def _execution(dsn: str, clock: SimulatedClock) -> tuple[ExecutionAgent, CountingPaperVenue, Probe, InMemoryBus]:
    """A started execution agent on PostgreSQL with its own (fresh) in-memory bus: a new process."""
    bus = InMemoryBus()
    await bus.start()
    probe = await Probe().attach(bus, [ORDER_UPDATES.all(), COMMAND_ACKS.all()])
    db = Database(dsn)
    await db.connect()
    venue = CountingPaperVenue(clock)
    venue.submitted = []
    settings = ExecutionSettings(store="postgres", snapshot_interval_s=3600)
    agent = ExecutionAgent(context(bus, clock, "execution-1"), venue, PostgresExecutionStore(db, "paper"), settings)
    agent.resources.append(db)
    await agent.start()
    return agent, venue, probe, bus


async def _send(bus: InMemoryBus, clock: SimulatedClock, payload: object, source: str) -> None:
    await bus.publish(Envelope.wrap(payload, source=source, clock=clock))  # type: ignore[arg-type]


def _status(probe: Probe, coid: str) -> list[OrderStatus]:
    return [u.status for u in probe.of(OrderUpdate) if u.client_order_id == coid]


async def test_a_restarted_execution_agent_stays_halted_until_resume(database: str) -> None:
    clock = SimulatedClock(C[4].close_time)
    first, _, probe, bus = await _execution(database, clock)
    assert not first.halted
    halt = Command(command_id=uuid.uuid4(), kind=CommandKind.HALT, target="all", reason="drill")
    await _send(bus, clock, halt, "orchestrator-1")
    await eventually(lambda: any(a.command_id == halt.command_id for a in probe.of(CommandAck)))
    assert first.engine.halted
    await bus.close()
    await first.stop()

    # a new process on the same database: halted before it consumes anything, without a new HALT
    second, venue, probe, bus = await _execution(database, clock)
    try:
        assert (second.halted, second.engine.halted) == (True, True)
        control = second.engine.control
        assert control is not None
        assert control.command_id == halt.command_id
        assert control.reason == "drill"
        refused = order(10)
        await _send(bus, clock, refused, "compliance-1")
        await eventually(lambda: OrderStatus.REJECTED in _status(probe, refused.client_order_id))
        rejected = next(u for u in probe.of(OrderUpdate) if u.status is OrderStatus.REJECTED)
        assert rejected.reason == "kill_switch"
        assert venue.submitted == []

        resume = Command(command_id=uuid.uuid4(), kind=CommandKind.RESUME, target="all")
        await _send(bus, clock, resume, "orchestrator-1")
        await eventually(lambda: any(a.command_id == resume.command_id for a in probe.of(CommandAck)))
        assert not second.halted
        accepted = order(11)
        await _send(bus, clock, accepted, "compliance-1")
        await eventually(lambda: OrderStatus.ACCEPTED in _status(probe, accepted.client_order_id))
        assert venue.submitted == [accepted.client_order_id]
    finally:
        await bus.close()
        await second.stop()

    # and a third start after RESUME trades at once
    third, venue, probe, bus = await _execution(database, clock)
    try:
        assert not third.halted
        control = third.engine.control
        assert control is not None
        assert not control.halted
        assert control.command_id == resume.command_id
    finally:
        await bus.close()
        await third.stop()
