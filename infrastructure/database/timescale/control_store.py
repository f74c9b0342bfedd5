"""PostgreSQL stores of the control plane: the orchestrator's intended trading state
(``trading_intent``) and risk's intent ledger (``risk_intents``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from infrastructure.database.timescale.pool import Database

SWARM_SCOPE = "swarm"


class PostgresIntentStore:
    """The orchestrator's intended trading state: one row per scope (``swarm``), as plain values
    (``agents.orchestrator.wiring`` adapts it to the orchestrator's ``IntentStore`` port)."""

    def __init__(self, db: Database, scope: str = SWARM_SCOPE) -> None:
        self.db = db
        self.scope = scope

    async def load(self) -> dict[str, Any] | None:
        """``{mode, changed_at, command_id, reason, issued_by}`` as saved, or None."""

        async def q(c: asyncpg.Connection) -> asyncpg.Record | None:
            return await c.fetchrow(
                "SELECT mode, changed_at, command_id, reason, issued_by FROM trading_intent WHERE scope = $1",
                self.scope,
            )

        row = await self.db.run("load_trading_intent", q)
        return None if row is None else dict(row)

    async def save(self, mode: str, changed_at: datetime, command_id: UUID | None, reason: str, issued_by: str) -> None:
        """Upsert the intent."""

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "INSERT INTO trading_intent (scope, mode, command_id, reason, issued_by, changed_at) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope) DO UPDATE SET mode = EXCLUDED.mode, "
                "command_id = EXCLUDED.command_id, reason = EXCLUDED.reason, issued_by = EXCLUDED.issued_by, "
                "changed_at = EXCLUDED.changed_at",
                self.scope,
                mode,
                command_id,
                reason[:500],
                issued_by[:64],
                changed_at,
            )

        await self.db.run("save_trading_intent", q)


class PostgresRiskLedger:
    """Risk's first decision per intent id (``risk_intents``): see ``agents.risk.ledger``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, intent_id: UUID) -> tuple[UUID, dict[str, Any]] | None:
        """``(message id of the intent, decision as JSON)`` of an intent already decided, or None."""

        async def q(c: asyncpg.Connection) -> asyncpg.Record | None:
            return await c.fetchrow("SELECT message_id, decision FROM risk_intents WHERE intent_id = $1", intent_id)

        row = await self.db.run("risk_ledger_get", q)
        return None if row is None else (row["message_id"], orjson.loads(row["decision"]))

    async def add(self, intent_id: UUID, message_id: UUID, decision: dict[str, Any], decided_at: datetime) -> bool:
        """Record the first decision of ``intent_id``; False when one was recorded already."""

        async def q(c: asyncpg.Connection) -> str:
            return str(
                await c.execute(
                    "INSERT INTO risk_intents (intent_id, message_id, decision, decided_at) "
                    "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (intent_id) DO NOTHING",
                    intent_id,
                    message_id,
                    orjson.dumps(decision).decode(),
                    decided_at,
                )
            )

        return (await self.db.run("risk_ledger_add", q)).endswith(" 1")
