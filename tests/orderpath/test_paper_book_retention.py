"""The paper venue's saved book is bounded (``TRADESWARM_EXECUTION_PAPER_ORDER_RETENTION_DAYS``, default
7): terminal orders whose intent expired more than the window ago leave ``paper_venue_orders`` and the
venue's memory, at the execution engine's start (after it reconciled) and whenever an order is
submitted; open orders, the exit a protection still held would create and recent orders stay. On the
real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal as D

import pytest

from agents.execution.agent import paper_venue
from agents.execution.engine import ExecutionEngine
from agents.execution.settings import ExecutionSettings
from core.clock import SimulatedClock
from core.domain import OrderStatus, OrderType
from core.messages import OrderRequest
from core.trading.protective import ProtectiveLevels
from core.trading.stores import InMemoryExecutionStore, OrderRecord
from infrastructure.database.timescale import Database, apply_migrations
from infrastructure.database.timescale.paper_book import PostgresPaperBook
from infrastructure.venues.paper import PaperVenue, _Protection
from tests.orderpath.helpers import candles, order_request

pytestmark = pytest.mark.integration
C = candles(60)
T0 = C[4].close_time
WINDOW = timedelta(days=7)
SETTINGS = ExecutionSettings(store="memory")


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[Database]:
    """A migrated database of the test's own."""
    database = Database(postgres_dsn)
    await database.connect()
    await apply_migrations(database)
    yield database
    await database.close()


def venue_on(db: Database, clock: SimulatedClock) -> PaperVenue:
    """The execution agent's paper venue (default settings: 7 days of retention) on the PostgreSQL book."""
    return paper_venue(SETTINGS, clock, PostgresPaperBook(db, "paper"))


async def saved(db: Database) -> dict[str, str]:
    """The rows of ``paper_venue_orders``: status by client order id."""
    rows = await db.run("t", lambda c: c.fetch("SELECT client_order_id, status FROM paper_venue_orders"))
    return {r["client_order_id"]: r["status"] for r in rows}


def _order(n: int, expires_in: timedelta, *, limit: D | None = None, symbol: str | None = None) -> OrderRequest:
    kind = OrderType.LIMIT if limit is not None else OrderType.MARKET
    req = order_request(n, D("0.01"), expires_at=T0 + expires_in, order_type=kind, limit_price=limit)
    return req if symbol is None else req.model_copy(update={"symbol": symbol})


def test_the_default_window_is_seven_days_and_retention_grace_s_wins() -> None:
    assert SETTINGS.paper_retention() == WINDOW
    assert ExecutionSettings(retention_grace_s=60).paper_retention() == timedelta(seconds=60)
    assert ExecutionSettings(paper_order_retention_days=None).paper_retention() is None


async def test_old_terminal_orders_leave_the_book_open_armed_and_recent_ones_stay(db: Database) -> None:
    clock = SimulatedClock()
    clock.advance_to(T0)
    venue = venue_on(db, clock)
    await venue.restore()
    far = C[4].close / 2  # a limit buy that never fills
    filled = _order(1, timedelta(hours=2))
    canceled = _order(2, timedelta(hours=2), limit=far)
    expired = _order(3, timedelta(minutes=30), limit=far)  # C[6] opens after its expiry: ends expired
    open_eth = _order(4, timedelta(hours=2), limit=far, symbol="ETH/USDT")  # no ETH candle: open for ever
    recent = _order(5, timedelta(days=10))
    entry = _order(6, timedelta(hours=2)).model_copy(update={"stop_loss": C[4].close * 10})
    rejected = _order(7, timedelta(hours=2))
    await venue.halt()
    await venue.submit(rejected)  # venue_halted
    await venue.resume()
    for req in (filled, canceled, expired, open_eth, recent, entry):
        await venue.submit(req)
    await venue.cancel(canceled.client_order_id, canceled.symbol)
    for c in (C[5], C[6], C[7]):  # fills at C[5]'s open; the entry's stop fires; `expired` expires
        clock.advance_to(c.close_time)
        await venue.on_candle(c)
    (exit_coid,) = [coid for coid, rec in venue._orders.items() if rec.own]
    # a second protection of the same entry (as a partial fill makes) would create that same exit
    venue._protections.append(
        _Protection(
            entry.client_order_id,
            str(entry.intent_id),
            "binance",
            "BTC/USDT",
            D("0.01"),
            ProtectiveLevels(long=True, stop_loss=C[4].close * 10),
            T0,
        )
    )
    await venue._save()
    before = await saved(db)
    assert before[filled.client_order_id] == "filled"
    assert before[canceled.client_order_id] == "canceled"
    assert before[expired.client_order_id] == "expired"
    assert before[rejected.client_order_id] == "rejected"
    assert before[open_eth.client_order_id] == "accepted"
    assert before[recent.client_order_id] == "filled"
    assert before[exit_coid] == "filled"
    assert set(before) == set(venue._orders)

    # a week and a day later a new process starts: the whole book is restored first
    clock.advance_to(T0 + WINDOW + timedelta(days=1))
    restarted = venue_on(db, clock)
    await restarted.restore()
    assert set(restarted._orders) == set(before)
    assert await saved(db) == before  # nothing forgotten before execution reconciled
    await ExecutionEngine(restarted, InMemoryExecutionStore(), clock).start()  # reconcile, then prune
    kept = {open_eth.client_order_id, recent.client_order_id, exit_coid}
    assert set(await saved(db)) == kept
    assert set(restarted._orders) == kept  # the venue's memory is bounded the same way
    assert await restarted.lookup(filled.client_order_id, "BTC/USDT") is None

    # later, an order submitted past the recent one's window prunes it too (the exit is still armed)
    clock.advance_to(T0 + timedelta(days=10) + WINDOW + timedelta(hours=1))
    newest = _order(20, timedelta(days=30))
    await restarted.submit(newest)
    kept = {open_eth.client_order_id, exit_coid, newest.client_order_id}
    assert set(await saved(db)) == kept
    assert set(restarted._orders) == kept
    # once no protection can create it any more, the exit goes as well
    restarted._protections.clear()
    clock.advance_to(clock.now() + WINDOW + timedelta(seconds=1))
    await restarted.submit(_order(21, timedelta(days=60)))
    assert exit_coid not in await saved(db)
    assert open_eth.client_order_id in await saved(db)  # open: kept whatever its age


async def test_execution_reconciles_an_old_order_before_the_venue_forgets_it(db: Database) -> None:
    """Killed between the venue's fill and execution's storing it, then down for longer than the
    window: the restarted engine still finds the order at the venue, stores its fill, and only then
    is the order pruned."""
    clock = SimulatedClock()
    clock.advance_to(T0)
    venue = venue_on(db, clock)
    await venue.restore()
    req = _order(1, timedelta(hours=2))
    sent = await venue.submit(req)
    clock.advance_to(C[5].close_time)
    await venue.on_candle(C[5])  # filled at the venue; the process dies before execution hears of it
    store = InMemoryExecutionStore()
    await store.insert_order(OrderRecord(req, OrderStatus.SUBMITTED, T0, T0, venue_order_id=sent.venue_order_id))

    clock.advance_to(T0 + WINDOW + timedelta(days=2))
    restarted = venue_on(db, clock)
    await restarted.restore()
    engine = ExecutionEngine(restarted, store, clock)
    await engine.start()
    record = await store.get_order(req.client_order_id)
    assert record is not None
    assert record.status is OrderStatus.FILLED
    assert [f.client_order_id for f in await store.fills("paper")] == [req.client_order_id]
    assert req.client_order_id not in await saved(db)  # pruned, after it was reconciled
