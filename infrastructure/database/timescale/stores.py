"""PostgreSQL adapters of the order-path stores (:mod:`core.trading.stores`).

Every write is idempotent (``ON CONFLICT``) and goes through :meth:`Database.run`, so it survives
a database restart: the operation is retried until the server is back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from core.domain import OrderStatus, Side
from core.messages.orders import Fill, OrderRequest, PortfolioSnapshot
from core.trading.audit import AuditCheckpoint, AuditRecord
from core.trading.portfolio import Position
from core.trading.stores import OrderRecord, TradingControl
from infrastructure.database.timescale.pool import Database

_OPEN = tuple(s.value for s in OrderStatus if s.is_open)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _order(row: asyncpg.Record) -> OrderRecord:
    return OrderRecord(
        request=OrderRequest.model_validate_json(row["request"]),
        status=OrderStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        filled_quantity=row["filled_quantity"],
        average_price=row["average_price"],
        venue_order_id=row["venue_order_id"],
        reason=row["reason"],
    )


def _fill(r: asyncpg.Record) -> Fill:
    return Fill(
        fill_id=r["fill_id"],
        client_order_id=r["client_order_id"],
        venue_order_id=r["venue_order_id"],
        intent_id=r["intent_id"],
        venue=r["venue"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        price=r["price"],
        quantity=r["quantity"],
        fee=r["fee"],
        fee_currency=r["fee_currency"],
        liquidity=r["liquidity"],
        ts=r["ts"],
    )


class PostgresExecutionStore:
    """:class:`core.trading.stores.ExecutionStore` on PostgreSQL/TimescaleDB."""

    def __init__(self, db: Database, account: str = "paper") -> None:
        self.db = db
        self.account = account

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> asyncpg.Record | None:
            return await c.fetchrow("SELECT * FROM orders WHERE client_order_id = $1", client_order_id)

        row = await self.db.run("get_order", q)
        return _order(row) if row is not None else None

    async def insert_order(self, record: OrderRecord) -> bool:
        """See the port (``ON CONFLICT DO NOTHING``)."""
        r = record.request

        async def q(c: asyncpg.Connection) -> str:
            return str(
                await c.execute(
                    "INSERT INTO orders (client_order_id, intent_id, account, "
                    "venue, symbol, side, order_type, quantity, "
                    "limit_price, status, filled_quantity, average_price, venue_order_id, "
                    "reason, request, created_at, updated_at) "
                    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15::jsonb,$16,$17) "
                    "ON CONFLICT (client_order_id) DO NOTHING",
                    r.client_order_id,
                    r.intent_id,
                    self.account,
                    r.venue,
                    r.symbol,
                    r.side.value,
                    r.order_type.value,
                    r.quantity,
                    r.limit_price,
                    record.status.value,
                    record.filled_quantity,
                    record.average_price,
                    record.venue_order_id,
                    record.reason,
                    r.model_dump_json(),
                    record.created_at,
                    record.updated_at,
                )
            )

        status = await self.db.run("insert_order", q)
        if status.endswith(" 1"):
            return True
        # A retried insert whose first attempt committed also lands here: same row = ours.
        existing = await self.get_order(r.client_order_id)
        return existing is not None and existing.created_at == record.created_at and existing.request == r

    async def update_order(self, record: OrderRecord) -> None:
        """See the port (absolute values)."""

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "UPDATE orders SET status=$2, filled_quantity=$3, average_price=$4, venue_order_id=$5, reason=$6, "
                "updated_at=$7 WHERE client_order_id=$1",
                record.client_order_id,
                record.status.value,
                record.filled_quantity,
                record.average_price,
                record.venue_order_id,
                record.reason,
                record.updated_at,
            )

        await self.db.run("update_order", q)

    async def open_orders(self) -> Sequence[OrderRecord]:
        """See the port."""

        async def q(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(
                await c.fetch(
                    "SELECT * FROM orders WHERE account = $1 AND status = ANY($2::text[]) ORDER BY created_at",
                    self.account,
                    list(_OPEN),
                )
            )

        return [_order(r) for r in await self.db.run("open_orders", q)]

    async def record_fill(self, fill: Fill, position: Position, account: str) -> bool:
        """See the port: fill (``ON CONFLICT DO NOTHING``) and position upsert in one transaction; a
        fill already stored leaves the position as it is (positions are the sum of the stored fills)."""

        async def q(c: asyncpg.Connection) -> bool:
            status = await c.execute(
                "INSERT INTO fills (venue, fill_id, ts, account, client_order_id, "
                "venue_order_id, intent_id, symbol, side, "
                "price, quantity, fee, fee_currency, liquidity) VALUES "
                "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) "
                "ON CONFLICT DO NOTHING",
                fill.venue,
                fill.fill_id,
                fill.ts,
                account,
                fill.client_order_id,
                fill.venue_order_id,
                fill.intent_id,
                fill.symbol,
                fill.side.value,
                fill.price,
                fill.quantity,
                fill.fee,
                fill.fee_currency,
                fill.liquidity,
            )
            if not str(status).endswith(" 1"):
                return False
            await c.execute(
                "INSERT INTO positions (account, venue, symbol, quantity, average_price, "
                "realized_pnl, fees, mark_price, updated_at) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,now()) ON CONFLICT (account, venue, symbol) DO UPDATE SET "
                "quantity=EXCLUDED.quantity, average_price=EXCLUDED.average_price, realized_pnl=EXCLUDED.realized_pnl, "
                "fees=EXCLUDED.fees, mark_price=EXCLUDED.mark_price, updated_at=now()",
                account,
                position.venue,
                position.symbol,
                position.quantity,
                position.average_price,
                position.realized_pnl,
                position.fees,
                position.mark_price,
            )
            return True

        return await self.db.transaction("record_fill", q)

    async def fills(self, account: str) -> Sequence[Fill]:
        """See the port."""

        async def q(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(await c.fetch("SELECT * FROM fills WHERE account = $1 ORDER BY ts, fill_id", account))

        return [_fill(r) for r in await self.db.run("fills", q)]

    async def unpublished_fills(self, account: str) -> Sequence[Fill]:
        """See :class:`core.trading.stores.FillOutbox`."""

        async def q(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(
                await c.fetch("SELECT * FROM fills WHERE account = $1 AND NOT published ORDER BY ts, fill_id", account)
            )

        return [_fill(r) for r in await self.db.run("unpublished_fills", q)]

    async def mark_published(self, account: str, fills: Sequence[Fill]) -> None:
        """See :class:`core.trading.stores.FillOutbox`."""
        keys = [(f.venue, f.client_order_id, f.fill_id, f.ts) for f in fills]

        async def q(c: asyncpg.Connection) -> None:
            await c.executemany(
                "UPDATE fills SET published = true WHERE venue = $1 AND client_order_id = $2 AND fill_id = $3 "
                "AND ts = $4 AND NOT published",
                keys,
            )

        await self.db.run("mark_published", q)

    async def positions(self, account: str) -> Sequence[Position]:
        """See the port."""

        async def q(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(await c.fetch("SELECT * FROM positions WHERE account = $1 ORDER BY venue, symbol", account))

        return [
            Position(
                venue=r["venue"],
                symbol=r["symbol"],
                quantity=r["quantity"],
                average_price=r["average_price"],
                realized_pnl=r["realized_pnl"],
                fees=r["fees"],
                mark_price=r["mark_price"],
            )
            for r in await self.db.run("positions", q)
        ]

    async def save_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        """See the port."""
        s = snapshot

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "INSERT INTO portfolio_snapshots (account, ts, cash, "
                "equity, peak_equity, gross_exposure, net_exposure, "
                "realized_pnl, unrealized_pnl, fees, drawdown, open_positions, trading_state, positions) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14::jsonb) ON CONFLICT (account, ts) DO NOTHING",
                s.account,
                s.ts,
                s.cash,
                s.equity,
                s.peak_equity,
                s.gross_exposure,
                s.net_exposure,
                s.realized_pnl,
                s.unrealized_pnl,
                s.fees,
                s.drawdown,
                s.open_positions,
                s.trading_state.value,
                _json([p.model_dump(mode="json") for p in s.positions]),
            )

        await self.db.run("save_snapshot", q)

    async def load_control(self, account: str) -> TradingControl | None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> asyncpg.Record | None:
            return await c.fetchrow("SELECT * FROM execution_control WHERE account = $1", account)

        row = await self.db.run("load_control", q)
        if row is None:
            return None
        return TradingControl(row["account"], row["halted"], row["changed_at"], row["command_id"], row["reason"])

    async def save_control(self, control: TradingControl) -> None:
        """See the port (upsert of absolute values)."""

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "INSERT INTO execution_control (account, halted, command_id, reason, changed_at, updated_at) "
                "VALUES ($1,$2,$3,$4,$5,now()) ON CONFLICT (account) DO UPDATE SET halted=EXCLUDED.halted, "
                "command_id=EXCLUDED.command_id, reason=EXCLUDED.reason, changed_at=EXCLUDED.changed_at, "
                "updated_at=now()",
                control.account,
                control.halted,
                control.command_id,
                control.reason,
                control.changed_at,
            )

        await self.db.run("save_control", q)


def _audit(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(row["seq"], row["ts"], row["kind"], row["ref"], row["payload"], row["prev_hash"], row["hash"])


class PostgresAuditStore:
    """:class:`core.trading.stores.AuditStore` on PostgreSQL (append-only table, trigger-guarded)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def last(self) -> AuditRecord | None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> asyncpg.Record | None:
            return await c.fetchrow("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")

        row = await self.db.run("audit_last", q)
        return _audit(row) if row is not None else None

    async def append(self, record: AuditRecord) -> None:
        """See the port. A retry of a committed append is recognised by its hash."""

        async def q(c: asyncpg.Connection) -> str:
            return str(
                await c.execute(
                    "INSERT INTO audit_log (seq, ts, kind, ref, payload, "
                    "prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7) "
                    "ON CONFLICT DO NOTHING",
                    record.seq,
                    record.ts,
                    record.kind,
                    record.ref,
                    record.payload,
                    record.prev_hash,
                    record.hash,
                )
            )

        status = await self.db.run("audit_append", q)
        if status.endswith(" 1"):
            return

        async def same(c: asyncpg.Connection) -> Any:
            return await c.fetchval("SELECT hash FROM audit_log WHERE seq = $1", record.seq)

        if await self.db.run("audit_check", same) != record.hash:
            raise RuntimeError(f"audit sequence {record.seq} is taken by another record: a second writer?")

    async def records(self, start: datetime | None = None, end: datetime | None = None) -> Sequence[AuditRecord]:
        """See the port."""

        async def q(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(
                await c.fetch(
                    "SELECT * FROM audit_log WHERE ($1::timestamptz IS NULL "
                    "OR ts >= $1) AND ($2::timestamptz IS NULL OR ts < $2) "
                    "ORDER BY seq",
                    start,
                    end,
                )
            )

        return [_audit(r) for r in await self.db.run("audit_records", q)]

    async def before(self, seq: int) -> AuditRecord | None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> asyncpg.Record | None:
            return await c.fetchrow("SELECT * FROM audit_log WHERE seq = $1", seq - 1)

        row = await self.db.run("audit_before", q)
        return _audit(row) if row is not None else None

    async def append_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "INSERT INTO audit_checkpoints (ts, seq, head_hash, kind, mac) VALUES ($1,$2,$3,$4,$5) "
                "ON CONFLICT DO NOTHING",
                checkpoint.ts,
                checkpoint.seq,
                checkpoint.head_hash,
                checkpoint.kind,
                checkpoint.mac,
            )

        await self.db.run("audit_checkpoint", q)

    async def checkpoints(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> Sequence[AuditCheckpoint]:
        """See the port."""

        async def q(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(
                await c.fetch(
                    "SELECT * FROM audit_checkpoints WHERE ($1::timestamptz IS NULL OR ts >= $1) "
                    "AND ($2::timestamptz IS NULL OR ts < $2) ORDER BY ts, seq",
                    start,
                    end,
                )
            )

        return [
            AuditCheckpoint(r["ts"], r["seq"], r["head_hash"], r["kind"], r["mac"])
            for r in await self.db.run("audit_checkpoints", q)
        ]


class PostgresDecisionStore:
    """:class:`core.trading.stores.DecisionStore` on PostgreSQL (signals and decisions tables)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_signal(self, intent_id: UUID, ts: datetime, payload: dict[str, object]) -> None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "INSERT INTO signals (intent_id, ts, venue, symbol, payload) "
                "VALUES ($1,$2,$3,$4,$5::jsonb) ON CONFLICT DO NOTHING",
                intent_id,
                ts,
                str(payload.get("venue", "")),
                str(payload.get("symbol", "")),
                _json(payload),
            )

        await self.db.run("record_signal", q)

    async def record_decision(
        self, intent_id: UUID, stage: str, ts: datetime, verdict: str, reason: str, payload: dict[str, object]
    ) -> None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "INSERT INTO decisions (intent_id, stage, ts, verdict, "
                "reason, payload) VALUES ($1,$2,$3,$4,$5,$6::jsonb) "
                "ON CONFLICT DO NOTHING",
                intent_id,
                stage,
                ts,
                verdict,
                reason,
                _json(payload),
            )

        await self.db.run("record_decision", q)

    async def approvals_since(self, start: datetime) -> Sequence[tuple[UUID, str, Decimal, datetime]]:
        """See the port."""

        async def q(c: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(
                await c.fetch(
                    "SELECT c.intent_id, c.payload->>'symbol' AS symbol, c.ts, "
                    "(c.payload->>'quantity')::numeric * (r.payload->>'reference_price')::numeric AS notional "
                    "FROM decisions c JOIN decisions r ON r.intent_id = c.intent_id AND r.stage = 'risk' "
                    "WHERE c.stage = 'compliance' AND c.verdict = 'approve' AND c.ts >= $1 ORDER BY c.ts",
                    start,
                )
            )

        return [(r["intent_id"], r["symbol"], r["notional"], r["ts"]) for r in await self.db.run("approvals", q)]


async def record_heartbeat(
    db: Database, agent_id: str, agent_kind: str, ts: datetime, payload: dict[str, object]
) -> None:
    """Store one heartbeat (idempotent)."""

    async def q(c: asyncpg.Connection) -> None:
        await c.execute(
            "INSERT INTO heartbeats (agent_id, ts, agent_kind, payload) VALUES ($1,$2,$3,$4::jsonb) "
            "ON CONFLICT DO NOTHING",
            agent_id,
            ts,
            agent_kind,
            _json(payload),
        )

    await db.run("record_heartbeat", q)


def decimal_or_none(value: Any) -> Decimal | None:
    """``Decimal(value)`` or ``None``."""
    return None if value is None else Decimal(str(value))
