"""Read-only queries of the order path's PostgreSQL tables, for the API.

The tables are owned and migrated by the order path (``infrastructure/database/timescale``); this
module only reads them. Lists are newest first and paginated with ``limit``/``offset``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import orjson

from infrastructure.api.schemas import (
    DecisionView,
    EquityPoint,
    OrderView,
    Page,
    PortfolioView,
    PositionView,
    SignalView,
    TradeView,
)
from infrastructure.database.timescale.pool import Database

T = TypeVar("T")

_ORDER_COLUMNS = (
    "client_order_id, intent_id, account, venue, symbol, side, order_type, quantity, limit_price, status, "
    "filled_quantity, average_price, venue_order_id, reason, created_at, updated_at"
)
_TRADE_COLUMNS = (
    "fill_id, ts, account, venue, symbol, side, price, quantity, fee, fee_currency, liquidity, client_order_id, "
    "venue_order_id, intent_id"
)
_PORTFOLIO_COLUMNS = (
    "account, ts, cash, equity, peak_equity, gross_exposure, net_exposure, realized_pnl, unrealized_pnl, fees, "
    "drawdown, open_positions, trading_state"
)


def _json(value: object) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        loaded = orjson.loads(value)
        return loaded if isinstance(loaded, dict) else {"value": loaded}
    return dict(value) if isinstance(value, dict) else {}


def _where(filters: Sequence[tuple[str, object | None]]) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    for column, value in filters:
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


_ALL_DECISIONS = (
    "(SELECT intent_id, stage, ts, verdict, reason, payload FROM decisions UNION ALL "
    "SELECT decision_id, 'desk', ts, verdict, reason, payload FROM desk_decisions) AS all_decisions"
)
"""Risk and compliance decisions and the AI desk's (migration 009), as one relation."""


class PostgresReadModel:
    """:class:`~infrastructure.api.ports.TradingReadModel` over the order path's tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _page(
        self,
        table: str,
        columns: str,
        order_by: str,
        filters: Sequence[tuple[str, object | None]],
        limit: int,
        offset: int,
        convert: Callable[[asyncpg.Record], T],
    ) -> Page[T]:
        where, args = _where(filters)
        n = len(args)
        # Table, column and filter names are constants of this module, never user input.
        rows_sql = f"SELECT {columns} FROM {table}{where} ORDER BY {order_by} LIMIT ${n + 1} OFFSET ${n + 2}"  # noqa: S608
        count_sql = f"SELECT count(*) FROM {table}{where}"  # noqa: S608

        async def run(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await conn.fetch(rows_sql, *args, limit, offset)
            total = await conn.fetchval(count_sql, *args)
            return list(rows), int(total)

        rows, total = await self._db.run(f"api.{table}", run)
        return Page[T](items=[convert(r) for r in rows], total=total, limit=limit, offset=offset)

    async def portfolio(self, account: str | None) -> PortfolioView | None:
        """The latest snapshot of ``account`` (or the most recent one of any account)."""
        where, args = _where([("account", account)])
        sql = f"SELECT {_PORTFOLIO_COLUMNS} FROM portfolio_snapshots{where} ORDER BY ts DESC LIMIT 1"  # noqa: S608
        row = await self._db.run("api.portfolio", lambda conn: conn.fetchrow(sql, *args))
        return PortfolioView(**dict(row)) if row is not None else None

    async def equity_curve(self, account: str | None, limit: int) -> list[EquityPoint]:
        """The equity of the latest ``limit`` snapshots (of ``account``, or of every account), oldest first."""
        where, args = _where([("account", account)])
        sql = f"SELECT ts, equity FROM portfolio_snapshots{where} ORDER BY ts DESC LIMIT ${len(args) + 1}"  # noqa: S608
        rows = await self._db.run("api.equity", lambda conn: conn.fetch(sql, *args, limit))
        return [EquityPoint(ts=r["ts"], equity=r["equity"]) for r in reversed(rows)]

    async def positions(self, account: str | None, include_flat: bool) -> list[PositionView]:
        """Positions ordered by account, venue, symbol."""
        where, args = _where([("account", account)])
        if not include_flat:
            where += (" AND " if where else " WHERE ") + "quantity <> 0"
        sql = (
            "SELECT account, venue, symbol, quantity, average_price, realized_pnl, fees, mark_price, updated_at "  # noqa: S608
            f"FROM positions{where} ORDER BY account, venue, symbol"
        )
        rows = await self._db.run("api.positions", lambda conn: conn.fetch(sql, *args))
        return [PositionView(**dict(r)) for r in rows]

    async def orders(self, *, status: str | None, symbol: str | None, limit: int, offset: int) -> Page[OrderView]:
        """Orders, newest first."""
        return await self._page(
            "orders",
            _ORDER_COLUMNS,
            "created_at DESC, client_order_id",
            [("status", status), ("symbol", symbol)],
            limit,
            offset,
            lambda r: OrderView(**dict(r)),
        )

    async def trades(self, *, symbol: str | None, limit: int, offset: int) -> Page[TradeView]:
        """Fills, newest first."""
        return await self._page(
            "fills",
            _TRADE_COLUMNS,
            "ts DESC, fill_id",
            [("symbol", symbol)],
            limit,
            offset,
            lambda r: TradeView(**dict(r)),
        )

    async def signals(self, *, symbol: str | None, limit: int, offset: int) -> Page[SignalView]:
        """Trade intents, newest first."""
        return await self._page(
            "signals",
            "intent_id, ts, venue, symbol, payload",
            "ts DESC, intent_id",
            [("symbol", symbol)],
            limit,
            offset,
            lambda r: SignalView(
                intent_id=r["intent_id"], ts=r["ts"], venue=r["venue"], symbol=r["symbol"], payload=_json(r["payload"])
            ),
        )

    async def decisions(self, *, stage: str | None, limit: int, offset: int) -> Page[DecisionView]:
        """Risk, compliance and AI desk decisions with their rationale, newest first (a desk decision's
        ``intent_id`` is its decision id; its payload holds the intent id it made, if any)."""
        return await self._page(
            _ALL_DECISIONS,
            "intent_id, stage, ts, verdict, reason, payload",
            "ts DESC, intent_id, stage",
            [("stage", stage)],
            limit,
            offset,
            lambda r: DecisionView(
                intent_id=r["intent_id"],
                stage=r["stage"],
                ts=r["ts"],
                verdict=r["verdict"],
                rationale=r["reason"],
                payload=_json(r["payload"]),
            ),
        )
