"""The asyncpg pool with reconnection: operations are retried with backoff across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from infrastructure.observability import metrics

T = TypeVar("T")

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)
"""Failures that mean "the database is (briefly) unreachable": retried, never surfaced at once."""


class Database:
    """An asyncpg pool plus :meth:`run`, which retries an operation over connection failures.

    An operation passed to :meth:`run` must be idempotent (every store write here is), because a
    commit whose acknowledgement was lost is retried.
    """

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 5, retry_for_s: float = 60.0) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.retry_for_s = retry_for_s
        self._pool: asyncpg.Pool | None = None

    async def connect(self) -> None:
        """Open the pool (retrying while the server is unreachable)."""
        if self._pool is not None:
            return
        async for attempt in self._retrying("connect"):
            with attempt:
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=self.min_size, max_size=self.max_size, command_timeout=30
                )

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (after :meth:`connect`)."""
        if self._pool is None:
            raise RuntimeError("Database.connect() was not called")
        return self._pool

    def _retrying(self, operation: str) -> AsyncRetrying:
        def count(_: Any) -> None:
            metrics.DB_RETRIES.labels(operation).inc()

        return AsyncRetrying(
            retry=retry_if_exception_type(CONNECTION_ERRORS),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_delay(self.retry_for_s),
            before_sleep=count,
            reraise=True,
        )

    async def run(self, operation: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``fn`` with a pooled connection, retrying connection failures with backoff."""
        async for attempt in self._retrying(operation):
            with attempt:
                async with self.pool.acquire() as conn:
                    try:
                        return await fn(conn)
                    except CONNECTION_ERRORS:
                        conn.terminate()  # never hand a half-broken connection back to the pool
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def transaction(self, operation: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Like :meth:`run`, inside one transaction."""

        async def in_tx(conn: asyncpg.Connection) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self.run(operation, in_tx)

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
