"""Execution crash safety in process, on real PostgreSQL (issue #19; the multi-process proof with
kill -9 is tests/safety/test_crash_e2e.py):

* the paper venue's book lives in PostgreSQL: a venue restarted on it finds every order by client
  order id, with its fills, and never hands out a venue order id or fill id twice (three restarts);
* a fresh book gets a fresh id prefix, so even a lost book cannot make ids repeat;
* the fill outbox: a fill stored but not published is published by the next engine before anything
  else; a fill stored twice never moves the position twice;
* an order the venue does not know raises a critical alert and ends ``canceled`` at its expiry or
  at a HALT, never open for ever; orders for symbols the stack does not trade are rejected.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal as D

import orjson
import pytest

from agents.execution.agent import _persistent_paper_venue
from agents.execution.engine import UNKNOWN_AT_VENUE, ExecutionEngine
from agents.execution.settings import ExecutionSettings
from core.clock import SimulatedClock
from core.domain import OrderStatus, Severity, Side
from core.messages import Fill, OrderUpdate, PositionUpdate, RiskAlert
from core.trading.fillmodel import FillModel
from core.trading.portfolio import Position
from core.trading.stores import InMemoryExecutionStore
from infrastructure.database.timescale import Database, PostgresExecutionStore, apply_migrations
from infrastructure.database.timescale.paper_book import PostgresPaperBook
from infrastructure.venues.paper import PaperVenue
from tests.orderpath.helpers import candles
from tests.orderpath.helpers import order_request as order

pytestmark = [pytest.mark.integration]
C = candles(80)
MODEL = FillModel(taker_fee_bps=D(10), participation=D("0.0002"))  # partial fills over several candles


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[Database]:
    database = Database(postgres_dsn)
    await database.connect()
    await apply_migrations(database)
    yield database
    await database.close()


async def _venue(db: Database, clock: SimulatedClock, prefix: str = "Pfirst-") -> PaperVenue:
    # next_bar: a protective exit is armed after its entry candle, so a test can let execution handle
    # the entry candle and the venue alone the candle that fires the stop
    venue = PaperVenue(clock, MODEL, book=PostgresPaperBook(db, "paper"), id_prefix=prefix, intrabar="next_bar")
    await venue.restore()
    return venue


async def test_the_paper_venue_survives_three_restarts_with_unique_ids(db: Database) -> None:
    clock = SimulatedClock(C[4].close_time)
    venue = await _venue(db, clock)
    ids: list[str] = []
    fill_ids: list[str] = []
    candle_index = 5
    for restart in range(4):  # the first life and three restarts
        if restart:
            venue = await _venue(db, clock, f"Pnew{restart}-")  # what a restarted execution process gets
            assert venue.id_prefix == "Pfirst-"  # the book's prefix and sequence go on
        for n in range(2):  # valid for six hours from now (a stale intent never fills)
            request = order(restart * 10 + n, qty=D("0.5"), expires_at=clock.now() + timedelta(hours=6))
            accepted = await venue.submit(request)
            ids.append(accepted.venue_order_id or "")
        for _ in range(3):
            clock.advance_to(C[candle_index].close_time)
            for changed in await venue.on_candle(C[candle_index]):
                fill_ids += [f.fill_id for f in changed.fills]
            candle_index += 1
    assert len(ids) == len(set(ids)) == 8
    stored = await db.run(
        "t", lambda c: c.fetch("SELECT client_order_id, venue_order_id, body FROM paper_venue_orders")
    )
    every_fill = [f["fill_id"] for r in stored for f in orjson.loads(r["body"])["fills"]]
    assert len(every_fill) == len(set(every_fill)) > 8  # partial fills: several per order, none repeated
    assert set(fill_ids) <= set(every_fill)
    # the restarted venue answers lookups by client order id with every fill
    restarted = await _venue(db, clock)
    first = await restarted.lookup(order(0).client_order_id, "BTC/USDT")
    assert first is not None
    assert first.venue_order_id == ids[0]
    assert first.filled_quantity == sum((f.quantity for f in first.fills), D(0)) > 0


async def test_a_venue_with_a_lost_book_still_never_repeats_an_id() -> None:
    clock = SimulatedClock(C[4].close_time)
    settings = ExecutionSettings(store="memory", paper_state="memory")
    first = await _persistent_paper_venue(settings, clock, None)
    second = await _persistent_paper_venue(settings, clock, None)  # a restart with nothing kept
    a = await first.submit(order(1))
    b = await second.submit(order(2))
    assert a.venue_order_id != b.venue_order_id
    assert (a.venue_order_id or "").startswith("P")
    # backtests keep the deterministic ids
    assert (await PaperVenue(clock).submit(order(3))).venue_order_id == "P1"


async def test_a_fill_stored_but_not_published_is_published_by_the_next_engine(db: Database) -> None:
    clock = SimulatedClock(C[4].close_time)
    store = PostgresExecutionStore(db, "paper")
    venue = await _venue(db, clock)
    engine = ExecutionEngine(venue, store, clock)
    await engine.start()
    await engine.handle_order(order(1, qty=D("0.01")))
    clock.advance_to(C[5].close_time)
    events = await engine.on_candle(C[5])
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 1
    # the process dies before the bus confirmed the fill: it was never marked published
    restarted = ExecutionEngine(await _venue(db, clock), store, clock)
    replay = await restarted.start()
    assert [e.fill_id for e in replay if isinstance(e, Fill)] == [fills[0].fill_id]
    assert [e.quantity for e in replay if isinstance(e, PositionUpdate)] == [D("0.01")]
    await restarted.published([e for e in replay if isinstance(e, Fill)])
    again = ExecutionEngine(await _venue(db, clock), store, clock)
    assert [e for e in await again.start() if isinstance(e, Fill)] == []  # published once, not again


async def test_a_fill_stored_twice_moves_the_position_once(db: Database) -> None:
    store = PostgresExecutionStore(db, "paper")
    fill = Fill(
        fill_id="X-1", client_order_id="c-1", intent_id=uuid.UUID(int=1), venue="binance",
        symbol="BTC/USDT", side=Side.BUY, price=D(60_000), quantity=D("0.1"), ts=C[5].open_time,
    )  # fmt: skip
    first = Position("binance", "BTC/USDT", D("0.1"), D(60_000), D(0), D(0))
    doubled = Position("binance", "BTC/USDT", D("0.2"), D(60_000), D(0), D(0))
    assert await store.record_fill(fill, first, "paper")
    assert not await store.record_fill(fill, doubled, "paper")
    (position,) = await store.positions("paper")
    assert position.quantity == D("0.1")
    memory = InMemoryExecutionStore()
    assert await memory.record_fill(fill, first, "paper")
    assert not await memory.record_fill(fill, doubled, "paper")
    assert [p.quantity for p in await memory.positions("paper")] == [D("0.1")]


async def test_an_order_unknown_at_the_venue_is_alerted_and_ends_at_its_expiry() -> None:
    clock = SimulatedClock(C[4].close_time)
    store = InMemoryExecutionStore()
    engine = ExecutionEngine(PaperVenue(clock, MODEL), store, clock)
    await engine.start()
    await engine.handle_order(order(1, qty=D("5"), expires_at=C[8].close_time))  # accepted, working
    # the venue forgot it (a paper venue without a book, restarted)
    restarted = ExecutionEngine(PaperVenue(clock, MODEL), store, clock)
    events = await restarted.start()
    alerts = [e for e in events if isinstance(e, RiskAlert)]
    assert [(a.severity, a.code) for a in alerts] == [(Severity.CRITICAL, UNKNOWN_AT_VENUE)]
    assert order(1).client_order_id in restarted.open  # not guessed terminal at start
    clock.advance_to(C[9].close_time)
    events = await restarted.on_candle(C[9])
    updates = [e for e in events if isinstance(e, OrderUpdate)]
    assert [(u.status, u.reason) for u in updates] == [(OrderStatus.CANCELED, UNKNOWN_AT_VENUE)]
    assert any(isinstance(e, RiskAlert) and e.code == UNKNOWN_AT_VENUE for e in events)
    assert restarted.open == {}
    stored = await store.get_order(order(1).client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.CANCELED


async def test_a_halt_ends_an_order_the_venue_does_not_know() -> None:
    clock = SimulatedClock(C[4].close_time)
    store = InMemoryExecutionStore()
    engine = ExecutionEngine(PaperVenue(clock, MODEL), store, clock)
    await engine.start()
    await engine.handle_order(order(1, qty=D("5")))
    restarted = ExecutionEngine(PaperVenue(clock, MODEL), store, clock)
    await restarted.start()
    events = await restarted.halt(reason="drill")
    assert [(u.status, u.reason) for u in events if isinstance(u, OrderUpdate)] == [
        (OrderStatus.CANCELED, UNKNOWN_AT_VENUE)
    ]
    assert restarted.open == {}


async def test_orders_for_untraded_symbols_are_rejected() -> None:
    clock = SimulatedClock(C[4].close_time)
    venue = PaperVenue(clock, MODEL)
    engine = ExecutionEngine(venue, InMemoryExecutionStore(), clock, traded=("binance", frozenset({"BTC/USDT"})))
    await engine.start()
    for request in (
        order(1).model_copy(update={"symbol": "ETH/USDT"}),
        order(2).model_copy(update={"venue": "kraken"}),
    ):
        events = await engine.handle_order(request)
        assert [(u.status, u.reason) for u in events if isinstance(u, OrderUpdate)][-1] == (
            OrderStatus.REJECTED,
            "symbol_not_traded",
        )
        assert await venue.lookup(request.client_order_id, request.symbol) is None  # never sent
    events = await engine.handle_order(order(3))
    assert [u.status for u in events if isinstance(u, OrderUpdate)][-1] is OrderStatus.ACCEPTED


async def test_execution_refuses_a_resume_the_swarm_did_not_intend() -> None:
    """A RESUME while the orchestrator's saved intent is HALTED (sent to execution alone, or replayed)
    is refused: the kill switch and the suspended protective exits stay; a swarm RESUME goes through."""
    import uuid as _uuid

    from agents.base import CommandFailed
    from agents.execution.agent import ExecutionAgent
    from core.domain import CommandKind
    from core.messages import Command, Envelope
    from infrastructure.messaging.memory import InMemoryBus
    from tests.orderpath.helpers import context

    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(C[4].close_time)
    settings = ExecutionSettings(store="memory", paper_state="memory")
    agent = ExecutionAgent(
        context(bus, clock, "execution-1"), PaperVenue(clock, MODEL), InMemoryExecutionStore(), settings
    )
    intent = {"mode": "halted"}

    async def intended() -> str | None:
        return intent["mode"]

    agent.intended_mode = intended
    await agent.on_start()
    halt = Command(command_id=_uuid.uuid4(), kind=CommandKind.HALT)
    await agent.on_command(halt, Envelope.wrap(halt, source="orchestrator-1", clock=clock))
    assert agent.halted
    resume = Command(command_id=_uuid.uuid4(), kind=CommandKind.RESUME, target="execution")
    with pytest.raises(CommandFailed, match="intended trading state is halted"):
        await agent.on_command(resume, Envelope.wrap(resume, source="orchestrator-1", clock=clock))
    assert agent.halted
    assert agent.engine.venue.halted  # type: ignore[attr-defined]
    intent["mode"] = "active"  # the orchestrator saved the swarm's RESUME before publishing it
    await agent.on_command(resume, Envelope.wrap(resume, source="orchestrator-1", clock=clock))
    assert not getattr(agent, "halted")  # noqa: B009 - read through getattr: mypy narrowed it above
    await bus.close()


async def test_the_same_fill_id_at_two_orders_is_two_fills(db: Database) -> None:
    """Venues number trades and orders per symbol (Binance): a fill id can repeat across orders. Both
    fills are stored, counted and published; the position is their sum."""
    clock = SimulatedClock(C[4].close_time)

    class PerSymbolIds(PaperVenue):
        def _next_id(self) -> str:
            return "X1"  # what two symbols' order books may both answer

    engine = ExecutionEngine(PerSymbolIds(clock, FillModel()), PostgresExecutionStore(db, "paper"), clock)
    await engine.start()
    await engine.handle_order(order(1, qty=D("0.01")))
    await engine.handle_order(order(2, qty=D("0.02")))
    clock.advance_to(C[5].close_time)
    events = await engine.on_candle(C[5])
    fills = [e for e in events if isinstance(e, Fill)]
    assert [(f.fill_id, f.quantity) for f in fills] == [("X1-1", D("0.01")), ("X1-1", D("0.02"))]
    rows = await db.run("t", lambda c: c.fetch("SELECT client_order_id, quantity FROM fills ORDER BY quantity"))
    assert [r["quantity"] for r in rows] == [D("0.01"), D("0.02")]
    (position,) = await PostgresExecutionStore(db, "paper").positions("paper")
    assert position.quantity == D("0.03") == engine.portfolio.position("binance", "BTC/USDT").quantity


async def test_a_protective_exit_the_venue_fired_before_a_crash_is_recorded_at_start(db: Database) -> None:
    """The venue fires a stop-loss and saves it; execution dies before storing it. The next process
    finds the exit among the venue's own orders and records it with its fill: the position is flat."""
    clock = SimulatedClock(C[4].close_time)
    store = PostgresExecutionStore(db, "paper")
    venue = await _venue(db, clock)
    engine = ExecutionEngine(venue, store, clock)
    await engine.start()
    entry = order(7, qty=D("0.01"), stop_loss=C[4].close * D("0.999"))
    await engine.handle_order(entry)
    fired = None
    for c in C[5:60]:
        clock.advance_to(c.close_time)
        if engine.portfolio.position(entry.venue, entry.symbol).quantity == 0:
            events = await engine.on_candle(c)  # the entry is still working
            await engine.published([e for e in events if isinstance(e, Fill)])  # the bus confirmed them
            continue
        changed = await venue.on_candle(c)  # the venue alone: execution is dead before it stores this
        fired = next((vo for vo in changed if vo.request is not None), None)
        if fired is not None:
            break
    assert fired is not None, "the stop was never touched on this slice"
    assert await store.get_order(fired.client_order_id) is None

    restarted = ExecutionEngine(await _venue(db, clock), store, clock)
    events = await restarted.start()
    recorded = await store.get_order(fired.client_order_id)
    assert recorded is not None
    assert recorded.status is OrderStatus.FILLED
    assert [f.client_order_id for f in events if isinstance(f, Fill)] == [fired.client_order_id]
    assert restarted.portfolio.position(entry.venue, entry.symbol).quantity == 0
    (position,) = await store.positions("paper")
    assert position.quantity == 0
    await restarted.published([e for e in events if isinstance(e, Fill)])
    again = ExecutionEngine(await _venue(db, clock), store, clock)
    assert [e for e in await again.start() if isinstance(e, Fill)] == []  # recorded once
