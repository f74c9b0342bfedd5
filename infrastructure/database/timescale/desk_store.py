""":class:`core.desk.store.DeskStore` on PostgreSQL (``desk_decisions``, ``desk_role_outputs``; migration 009)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from core.messages.desk import DeskDecision
from infrastructure.database.timescale.pool import Database


class PostgresDeskStore:
    """Desk decisions and their role reports in PostgreSQL (one transaction per decision)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, decision: DeskDecision) -> None:
        """See the port (a decision already stored is left as it is)."""
        d = decision

        async def q(c: asyncpg.Connection) -> None:
            async with c.transaction():
                inserted = await c.fetchval(
                    "INSERT INTO desk_decisions (decision_id, ts, venue, symbol, timeframe, provider, blind, action, "
                    "size_pct, verdict, reason, intent_id, tokens_in, tokens_out, cost_usd, payload) VALUES "
                    "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16::jsonb) "
                    "ON CONFLICT (decision_id) DO NOTHING RETURNING decision_id",
                    d.decision_id, d.ts, d.venue, d.symbol, d.timeframe, d.provider, d.blind, d.action,
                    d.size_pct, d.verdict, d.reason, d.intent_id, d.tokens_in, d.tokens_out, d.cost_usd,
                    d.model_dump_json(),
                )  # fmt: skip
                if inserted is None:
                    return
                await c.executemany(
                    "INSERT INTO desk_role_outputs (decision_id, role, status, model, prompt_version, tokens_in, "
                    "tokens_out, cost_usd, reason, output) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10::jsonb)",
                    [
                        (d.decision_id, r.role.value, r.status, r.model, r.prompt_version, r.tokens_in,
                         r.tokens_out, r.cost_usd, r.reason, r.output.model_dump_json() if r.output else None)
                        for r in d.roles
                    ],
                )  # fmt: skip

        await self.db.run("desk_record", q)

    async def get(self, decision_id: UUID) -> DeskDecision | None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> str | None:
            value: str | None = await c.fetchval(
                "SELECT payload::text FROM desk_decisions WHERE decision_id = $1", decision_id
            )
            return value

        payload = await self.db.run("desk_get", q)
        return None if payload is None else DeskDecision.model_validate_json(payload)

    async def query(
        self, *, symbol: str | None = None, outcome: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[DeskDecision], int]:
        """See the port."""
        verdict = outcome.upper() if outcome else None

        async def q(c: asyncpg.Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await c.fetch(
                "SELECT payload::text AS payload FROM desk_decisions "
                "WHERE ($1::text IS NULL OR symbol = $1) AND ($2::text IS NULL OR verdict = $2) "
                "ORDER BY ts DESC, decision_id LIMIT $3 OFFSET $4",
                symbol, verdict, limit, offset,
            )  # fmt: skip
            total = await c.fetchval(
                "SELECT count(*) FROM desk_decisions "
                "WHERE ($1::text IS NULL OR symbol = $1) AND ($2::text IS NULL OR verdict = $2)",
                symbol, verdict,
            )  # fmt: skip
            return rows, int(total)

        rows, total = await self.db.run("desk_list", q)
        return [DeskDecision.model_validate_json(r["payload"]) for r in rows], total

    async def close(self) -> None:
        """Close the pool."""
        await self.db.close()


__all__ = ["PostgresDeskStore"]
