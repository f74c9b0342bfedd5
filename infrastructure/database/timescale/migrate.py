"""Plain SQL migrations, applied idempotently at start and recorded in ``schema_migrations``.

``migrations/*.sql`` always run (in name order); ``migrations/timescale/*.sql`` run only when the
``timescaledb`` extension is available on the server. A file is applied once, in a transaction,
under an advisory lock so that concurrent starters do not race; a changed applied file is an error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg

from core.errors import ConfigurationError
from infrastructure.database.timescale.pool import Database

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 7_414_242_001


async def timescale_available(conn: asyncpg.Connection) -> bool:
    """Whether the server offers the timescaledb extension."""
    return bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))


async def apply_migrations(db: Database) -> list[str]:
    """Apply pending migrations; returns the names applied now."""

    async def run(conn: asyncpg.Connection) -> list[str]:
        applied: list[str] = []
        # The lock comes first: concurrent CREATE TABLE IF NOT EXISTS races in PostgreSQL's catalog
        # (duplicate key in pg_type) when several agents start together.
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, checksum text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            files = sorted(MIGRATIONS.glob("*.sql"))
            if await timescale_available(conn):
                files += sorted((MIGRATIONS / "timescale").glob("*.sql"))
            done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
            for path in files:
                name = path.relative_to(MIGRATIONS).as_posix()
                sql = path.read_text()
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if name in done:
                    if done[name] != checksum:
                        raise ConfigurationError(f"migration {name} changed after it was applied")
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        return applied

    return await db.run("migrate", run)
