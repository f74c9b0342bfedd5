"""The review queue on PostgreSQL (:class:`core.trading.reviews.ReviewStore`; table ``review_queue``,
migration ``004_review_queue.sql``). Every call goes through :meth:`Database.run` (retried while the
server is unreachable); adding is idempotent and deciding is one conditional ``UPDATE``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from core.messages.reviews import ReviewRequest
from core.trading.reviews import Review, ReviewClosed, ReviewNotFound, ReviewState
from infrastructure.database.timescale.pool import Database

_DECIDED = {ReviewState.APPROVED.value: ReviewState.APPROVED, ReviewState.REJECTED.value: ReviewState.REJECTED}

_STATE_FILTERS = {
    ReviewState.PENDING: "state = 'pending' AND expires_at > $1",
    ReviewState.EXPIRED: "state = 'pending' AND expires_at <= $1",
    ReviewState.APPROVED: "state = 'approved' AND $1::timestamptz IS NOT NULL",
    ReviewState.REJECTED: "state = 'rejected' AND $1::timestamptz IS NOT NULL",
}
"""SQL conditions per reported state (constants of this module, never user input)."""


def _review(row: asyncpg.Record) -> Review:
    return Review(
        request=ReviewRequest.model_validate_json(row["request"]),
        received_at=row["received_at"],
        decided=_DECIDED.get(row["state"]),
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
        note=row["note"],
    )


class PostgresReviewStore:
    """:class:`core.trading.reviews.ReviewStore` on PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, request: ReviewRequest, received_at: datetime) -> bool:
        """See the port."""

        async def q(c: asyncpg.Connection) -> str:
            status = await c.execute(
                "INSERT INTO review_queue (review_id, venue, symbol, timeframe, side, direction, requested_at,"
                " expires_at, received_at, request) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10::jsonb)"
                " ON CONFLICT (review_id) DO NOTHING",
                request.review_id, request.venue, request.symbol, request.timeframe, request.side.value,
                request.direction.value, request.requested_at, request.expires_at, received_at,
                request.model_dump_json(),
            )  # fmt: skip
            return str(status)

        return (await self.db.run("review_add", q)).endswith(" 1")

    async def get(self, review_id: UUID) -> Review | None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> asyncpg.Record | None:
            return await c.fetchrow("SELECT * FROM review_queue WHERE review_id = $1", review_id)

        row = await self.db.run("review_get", q)
        return _review(row) if row is not None else None

    async def list(self, state: ReviewState | None, now: datetime, limit: int, offset: int) -> tuple[list[Review], int]:
        """See the port."""
        where = _STATE_FILTERS[state] if state is not None else "$1::timestamptz IS NOT NULL"
        rows_sql = (
            f"SELECT * FROM review_queue WHERE {where} ORDER BY requested_at DESC, review_id DESC"  # noqa: S608
            " LIMIT $2 OFFSET $3"
        )
        count_sql = f"SELECT count(*) FROM review_queue WHERE {where}"  # noqa: S608

        async def q(c: asyncpg.Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await c.fetch(rows_sql, now, limit, offset)
            return list(rows), int(await c.fetchval(count_sql, now))

        rows, total = await self.db.run("review_list", q)
        return [_review(r) for r in rows], total

    async def decide(self, review_id: UUID, verdict: ReviewState, reviewer: str, note: str, now: datetime) -> Review:
        """See the port."""
        if verdict not in (ReviewState.APPROVED, ReviewState.REJECTED):
            raise ValueError("a person approves or rejects")

        async def q(c: asyncpg.Connection) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
            row = await c.fetchrow(
                "UPDATE review_queue SET state = $2, decided_at = $3, decided_by = $4, note = $5"
                " WHERE review_id = $1 AND state = 'pending' AND expires_at > $3 RETURNING *",
                review_id, verdict.value, now, reviewer, note,
            )  # fmt: skip
            if row is not None:
                return row, None
            return None, await c.fetchrow("SELECT * FROM review_queue WHERE review_id = $1", review_id)

        decided, existing = await self.db.run("review_decide", q)
        if decided is not None:
            return _review(decided)
        if existing is None:
            raise ReviewNotFound(str(review_id))
        review = _review(existing)
        raise ReviewClosed(review, review.state(now))

    async def reopen(self, review_id: UUID, verdict: ReviewState) -> None:
        """See the port."""

        async def q(c: asyncpg.Connection) -> None:
            await c.execute(
                "UPDATE review_queue SET state = 'pending', decided_at = NULL, decided_by = NULL, note = ''"
                " WHERE review_id = $1 AND state = $2",
                review_id, verdict.value,
            )  # fmt: skip

        await self.db.run("review_reopen", q)
