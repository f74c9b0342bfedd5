"""The paper venue's book in PostgreSQL (tables ``paper_venue_state`` and ``paper_venue_orders``).

See :mod:`infrastructure.venues.paper_book`. A save is one transaction: the orders the venue forgot
(retention) are deleted, the changed ones upserted, then the venue's state row, so a restarted venue
never sees a fill without the sequence number that produced its id, and the table stays as bounded as
the venue's memory (deletes go by primary key: no index needed). Venue order ids are unique per venue
(a unique index), so a venue that handed out an id twice fails loudly instead of mixing two orders'
fills.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import asdict
from typing import Any

import asyncpg
import orjson

from infrastructure.database.timescale.pool import Database
from infrastructure.venues.paper_book import OrderRows, PaperState


class PostgresPaperBook:
    """:class:`~infrastructure.venues.paper_book.PaperBook` of the paper venue named ``venue``."""

    def __init__(self, db: Database, venue: str) -> None:
        self.db = db
        self.venue = venue

    async def load(self) -> tuple[PaperState, list[dict[str, Any]]] | None:
        """The saved state and orders (in creation order), or None for a venue never saved."""

        async def q(c: asyncpg.Connection) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
            state = await c.fetchrow("SELECT * FROM paper_venue_state WHERE venue = $1", self.venue)
            rows = await c.fetch("SELECT body FROM paper_venue_orders WHERE venue = $1 ORDER BY row_id", self.venue)
            return state, list(rows)

        state, rows = await self.db.run("paper_book_load", q)
        if state is None:
            return None
        loaded = PaperState(
            id_prefix=state["id_prefix"],
            seq=int(state["seq"]),
            halted=bool(state["halted"]),
            net=orjson.loads(state["net"]),
            last_close=orjson.loads(state["last_close"]),
            protections=orjson.loads(state["protections"]),
            cash=state["cash"],
        )
        return loaded, [orjson.loads(r["body"]) for r in rows]

    async def save(
        self,
        state: PaperState,
        changed: OrderRows,
        everything: Callable[[], OrderRows],
        removed: Set[str] = frozenset(),
    ) -> None:
        """Delete the removed orders, upsert the changed ones and the state, in one transaction."""
        raw = asdict(state)
        orders = [
            (self.venue, coid, body["venue_order_id"], body["status"], orjson.dumps(body).decode())
            for coid, body in changed.items()
        ]

        gone = sorted(removed)

        async def q(c: asyncpg.Connection) -> None:
            if gone:
                await c.execute(
                    "DELETE FROM paper_venue_orders WHERE venue = $1 AND client_order_id = ANY($2::text[])",
                    self.venue,
                    gone,
                )
            if orders:
                await c.executemany(
                    "INSERT INTO paper_venue_orders (venue, client_order_id, venue_order_id, status, body) "
                    "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (venue, client_order_id) DO UPDATE SET "
                    "venue_order_id = EXCLUDED.venue_order_id, status = EXCLUDED.status, body = EXCLUDED.body, "
                    "updated_at = now()",
                    orders,
                )
            await c.execute(
                "INSERT INTO paper_venue_state (venue, id_prefix, seq, halted, net, last_close, protections, cash) "
                "VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8) ON CONFLICT (venue) DO UPDATE SET "
                "id_prefix = EXCLUDED.id_prefix, seq = EXCLUDED.seq, halted = EXCLUDED.halted, net = EXCLUDED.net, "
                "last_close = EXCLUDED.last_close, protections = EXCLUDED.protections, cash = EXCLUDED.cash, "
                "updated_at = now()",
                self.venue,
                raw["id_prefix"],
                raw["seq"],
                raw["halted"],
                orjson.dumps(raw["net"]).decode(),
                orjson.dumps(raw["last_close"]).decode(),
                orjson.dumps(raw["protections"]).decode(),
                raw["cash"],
            )

        await self.db.transaction("paper_book_save", q)
