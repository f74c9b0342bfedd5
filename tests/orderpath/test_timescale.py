"""The PostgreSQL layer on the real local server: migrations, idempotent stores, the audit chain,
and a server restart during a burst of fills (on a private cluster: ``tests/private_services.py``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import asyncpg
import pytest

from core.domain import OrderStatus, OrderType, Side
from core.ids import client_order_id, content_id
from core.messages import Fill, OrderRequest
from core.trading.audit import make_record, verify_chain
from core.trading.portfolio import Portfolio
from core.trading.stores import OrderRecord
from infrastructure.database.timescale import (
    Database,
    PostgresAuditStore,
    PostgresExecutionStore,
    apply_migrations,
)
from infrastructure.database.timescale.migrate import MIGRATIONS
from tests import private_services
from tests.private_services import PrivatePostgres

pytestmark = pytest.mark.integration
T0 = datetime(2024, 9, 16, 12, tzinfo=UTC)


async def database(dsn: str) -> Database:
    db = Database(dsn, retry_for_s=90)
    await db.connect()
    await apply_migrations(db)
    return db


def request(n: int) -> OrderRequest:
    intent_id = content_id("db-test", n)
    return OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="paper",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D("0.5"),
        reference_price=D(60_000),
        expires_at=T0 + timedelta(hours=1),
    )


def fill(n: int, req: OrderRequest, qty: D = D("0.001")) -> Fill:
    return Fill(
        fill_id=f"F{n}",
        client_order_id=req.client_order_id,
        intent_id=req.intent_id,
        venue="paper",
        symbol="BTC/USDT",
        side=Side.BUY,
        price=D(60_000) + n,
        quantity=qty,
        fee=D("0.06"),
        ts=T0 + timedelta(seconds=n),
    )


PLAIN_MIGRATIONS = sorted(p.name for p in MIGRATIONS.glob("*.sql"))


async def test_migrations_are_idempotent_and_recorded(postgres_dsn):
    db = await database(postgres_dsn)
    try:
        assert await apply_migrations(db) == []
        names = await db.run("t", lambda c: c.fetch("SELECT name FROM schema_migrations"))
        # every plain migration, none of the timescale ones (no timescaledb extension here)
        assert sorted(r["name"] for r in names) == PLAIN_MIGRATIONS
        assert {
            "001_order_path.sql",
            "002_execution_control.sql",
            "004_review_queue.sql",
            "005_audit_anchor.sql",
            "006_safety.sql",
        } <= set(PLAIN_MIGRATIONS)
        tables = await db.run("t", lambda c: c.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'"))
        assert {
            "orders",
            "fills",
            "positions",
            "portfolio_snapshots",
            "signals",
            "decisions",
            "audit_log",
            "heartbeats",
            "review_queue",
        } <= {r["tablename"] for r in tables}
    finally:
        await db.close()


async def test_agents_starting_together_migrate_once_without_racing(postgres_dsn):
    """Several processes start at once on an empty database (the stack, the parity test)."""
    dbs = [Database(postgres_dsn) for _ in range(6)]
    for db in dbs:
        await db.connect()
    try:
        results = await asyncio.gather(*(apply_migrations(db) for db in dbs))
        # exactly one applied them
        assert sorted(len(r) for r in results) == [0, 0, 0, 0, 0, len(PLAIN_MIGRATIONS)]
    finally:
        for db in dbs:
            await db.close()


async def test_orders_fills_positions_round_trip_idempotently(postgres_dsn):
    db = await database(postgres_dsn)
    store = PostgresExecutionStore(db, "paper")
    try:
        req = request(1)
        rec = OrderRecord(req, OrderStatus.PENDING_NEW, T0, T0)
        assert await store.insert_order(rec) is True
        other = OrderRecord(req, OrderStatus.PENDING_NEW, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1))
        assert await store.insert_order(other) is False
        assert [o.client_order_id for o in await store.open_orders()] == [req.client_order_id]
        await store.update_order(
            rec.evolve(status=OrderStatus.FILLED, filled_quantity=D("0.5"), average_price=D(60_001))
        )
        got = await store.get_order(req.client_order_id)
        assert got is not None
        assert got.status is OrderStatus.FILLED
        assert got.request == req
        assert await store.open_orders() == []

        pf = Portfolio(D(100_000))
        f = fill(1, req)
        pos = pf.preview_fill("paper", "BTC/USDT", Side.BUY, f.quantity, f.price, f.fee)
        assert await store.record_fill(f, pos, "paper") is True
        assert await store.record_fill(f, pos, "paper") is False
        assert await store.fills("paper") == [f]
        [stored] = await store.positions("paper")
        assert stored.quantity == D("0.001")
        assert stored.average_price == f.price
        assert stored.fees == D("0.06")
    finally:
        await db.close()


async def test_audit_log_is_append_only_and_tampering_is_detected(postgres_dsn):
    db = await database(postgres_dsn)
    store = PostgresAuditStore(db)
    try:
        prev = None
        for i in range(4):
            prev = make_record(
                prev, T0 + timedelta(microseconds=123_457 * i), "fill", f"c{i}", {"price": str(D("60000.5") + i)}
            )
            await store.append(prev)
            await store.append(prev)  # a retried append is recognised, not duplicated
        rows = await store.records()
        assert len(rows) == 4
        assert verify_chain(rows) is None
        with pytest.raises(asyncpg.RaiseError):
            await db.run("t", lambda c: c.execute("UPDATE audit_log SET payload = '{}' WHERE seq = 2"))

        # an attacker with superuser rights can switch the trigger off: the chain still tells
        async def tamper(c):
            await c.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
            await c.execute("UPDATE audit_log SET payload = replace(payload, '60001.5', '1.5') WHERE seq = 2")

        await db.run("t", tamper)
        problem = verify_chain(await store.records())
        assert problem is not None
        assert problem.seq == 2
        window = await store.records(T0 + timedelta(microseconds=200_000), None)
        assert [r.seq for r in window] == [3, 4]
        before = await store.before(3)
        assert before is not None
        assert verify_chain(window, before.hash, 3) is None
    finally:
        await db.close()


@pytest.mark.slow
async def test_postgres_restart_during_a_burst_of_fills_loses_and_duplicates_nothing(
    private_postgres: PrivatePostgres,
) -> None:
    """A real server restart (``pg_ctl restart -m fast``: every connection cut) during a burst of
    fills, on a PRIVATE cluster (the shared one on 5432 is never restarted)."""
    db = await database(await private_postgres.create_database("burst"))
    store = PostgresExecutionStore(db, "paper")
    req = request(2)
    n_fills = 300
    pf = Portfolio(D(10_000_000))
    try:

        async def burst() -> None:
            for n in range(n_fills):
                f = fill(n, req)
                pos = pf.preview_fill("paper", "BTC/USDT", Side.BUY, f.quantity, f.price, f.fee)
                await store.record_fill(f, pos, "paper")
                pf.commit(f.fill_id, Side.BUY, f.quantity, f.price, f.fee, pos)
                if n % 10 == 0:
                    await store.record_fill(f, pos, "paper")  # replays are harmless
                await asyncio.sleep(0.005)

        from prometheus_client import REGISTRY

        def retries() -> float:
            return REGISTRY.get_sample_value("tradeswarm_db_retries_total", {"operation": "record_fill"}) or 0.0

        retries_before = retries()
        task = asyncio.create_task(burst())
        await asyncio.sleep(0.4)
        assert not task.done()
        await asyncio.to_thread(private_postgres.restart)
        await asyncio.wait_for(task, timeout=120)
        assert retries() > retries_before  # the restart really hit the burst
        stored = await store.fills("paper")
        assert len(stored) == n_fills
        assert len({f.fill_id for f in stored}) == n_fills
        [pos] = await store.positions("paper")
        assert pos.quantity == sum((f.quantity for f in stored), D(0)) == D("0.001") * n_fills
        assert pos.fees == D("0.06") * n_fills
    finally:
        await db.close()


def test_the_private_cluster_fails_the_test_without_the_server_binaries(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """No ``initdb``/``pg_ctl``: the restart test FAILS, it never skips (nor falls back to 5432)."""
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(private_services, "POSTGRES_LIB", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="initdb is not installed"):
        PrivatePostgres()
