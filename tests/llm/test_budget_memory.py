"""The in-memory token budget: atomic reservations, settlement, UTC days."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.llm import TokenBudget, Usage
from infrastructure.llm.budget import InMemoryTokenBudget


async def test_reserve_until_exhausted_then_settle_returns_the_surplus() -> None:
    budget = InMemoryTokenBudget(1000)
    assert isinstance(budget, TokenBudget)
    first = await budget.reserve(600, role="technical", model="m")
    assert first is not None
    assert await budget.reserve(500, role="trader", model="m") is None
    assert await budget.used_today() == 600
    await budget.settle(first, Usage(150, 50), Decimal("0.001"))
    assert await budget.used_today() == 200
    second = await budget.reserve(800, role="trader", model="m")
    assert second is not None
    assert await budget.used_today() == 1000
    await budget.settle(first, Usage(999, 999), Decimal(1))  # a second settle changes nothing
    assert await budget.used_today() == 1000


async def test_settle_unknown_reservation_is_an_error() -> None:
    with pytest.raises(KeyError):
        await InMemoryTokenBudget(10).settle("nope", Usage(1, 1), Decimal(0))


async def test_concurrent_tasks_and_threads_never_overspend() -> None:
    budget = InMemoryTokenBudget(10_000)
    results = await asyncio.gather(*(budget.reserve(300, role="r", model="m") for _ in range(50)))
    assert sum(1 for r in results if r is not None) == 33
    assert await budget.used_today() == 9_900

    threaded = InMemoryTokenBudget(10_000)
    got: list[str | None] = []

    def worker() -> None:
        for _ in range(20):
            got.append(asyncio.run(threaded.reserve(70, role="r", model="m")))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for r in got if r is not None) == 142
    assert await threaded.used_today() == 9_940


async def test_a_new_utc_day_starts_empty_and_old_reservations_settle_on_their_day() -> None:
    clock = [datetime(2026, 12, 5, 23, 59, tzinfo=UTC)]
    budget = InMemoryTokenBudget(1000, now=lambda: clock[0])
    late = await budget.reserve(900, role="researcher", model="m")
    assert late is not None
    clock[0] += timedelta(minutes=2)
    assert await budget.used_today() == 0
    fresh = await budget.reserve(1000, role="researcher", model="m")
    assert fresh is not None
    await budget.settle(late, Usage(100, 100), Decimal("0.01"))
    assert await budget.used_today() == 1000
    yesterday = await budget.status(clock[0].date() - timedelta(days=1))
    assert yesterday.used == 200
    assert yesterday.rows[0].calls == 1
    assert yesterday.cost_usd == Decimal("0.01")


async def test_status_splits_by_role_and_model() -> None:
    budget = InMemoryTokenBudget(10_000)
    a = await budget.reserve(500, role="technical", model="cheap")
    b = await budget.reserve(500, role="technical", model="cheap")
    await budget.reserve(700, role="trader", model="strong")
    assert a
    assert b
    await budget.settle(a, Usage(100, 20), Decimal("0.5"))
    await budget.settle(b, Usage(110, 30), Decimal("0.25"))
    status = await budget.status()
    rows = {(r.role, r.model): r for r in status.rows}
    tech = rows[("technical", "cheap")]
    assert (tech.calls, tech.tokens_in, tech.tokens_out, tech.cost_usd) == (2, 210, 50, Decimal("0.75"))
    trader = rows[("trader", "strong")]
    assert (trader.calls, trader.open_reservations, trader.reserved_open) == (0, 1, 700)
    assert status.used == 260 + 700
    assert status.remaining == 10_000 - 960
