"""The PostgreSQL budget and call log, and two OS processes racing on one budget."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from core.llm import CallOutcome, LLMCallRecord, TokenBudget, Usage
from infrastructure.llm.budget import _RESERVE, PostgresTokenBudget
from infrastructure.llm.calllog import PostgresCallLog
from infrastructure.llm.factory import open_postgres_ledgers
from infrastructure.llm.metered import reservation_tokens
from tests.fakellm import FakeLLM
from tests.llm.helpers import GOOD_TECHNICAL
from tests.llm.race_worker import race_call

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def test_reserve_settle_and_status(postgres_dsn: str) -> None:
    db, budget, _ = await open_postgres_ledgers(postgres_dsn, 1000, retry_for_s=10)
    try:
        assert isinstance(budget, TokenBudget)
        first = await budget.reserve(600, role="technical", model="cheap")
        assert first is not None
        assert await budget.reserve(500, role="trader", model="strong") is None
        assert await budget.reserve(1001, role="trader", model="strong") is None
        await budget.settle(first, Usage(150, 50), Decimal("0.0012"))
        await budget.settle(first, Usage(999, 999), Decimal(9))  # settling twice changes nothing
        assert await budget.used_today() == 200
        held = await budget.reserve(800, role="trader", model="strong")
        assert held is not None
        status = await budget.status()
        rows = {r.role: r for r in status.rows}
        assert (status.budget, status.used) == (1000, 1000)
        assert (rows["technical"].calls, rows["technical"].tokens, rows["technical"].cost_usd) == (
            1,
            200,
            Decimal("0.0012"),
        )
        assert (rows["trader"].open_reservations, rows["trader"].reserved_open) == (1, 800)
        with pytest.raises(KeyError):
            await budget.settle(str(uuid.uuid4()), Usage(1, 1), Decimal(0))
    finally:
        await db.close()


async def test_a_retried_reservation_takes_nothing_twice(postgres_dsn: str) -> None:
    db, budget, _ = await open_postgres_ledgers(postgres_dsn, 1000, retry_for_s=10)
    try:
        rid, day = uuid.uuid4(), datetime.now(UTC).date()
        args = (day, 1000, 300, rid, "technical", "cheap")
        first = await db.run("t", lambda c: c.fetchval(_RESERVE, *args))
        again = await db.run("t", lambda c: c.fetchval(_RESERVE, *args))
        assert first == again == rid
        assert await budget.used_today() == 300
    finally:
        await db.close()


async def test_concurrent_reservations_in_one_process_never_overspend(postgres_dsn: str) -> None:
    db, budget, _ = await open_postgres_ledgers(postgres_dsn, 10_000, retry_for_s=10)
    try:
        got = await asyncio.gather(*(budget.reserve(300, role="r", model="m") for _ in range(60)))
        assert sum(1 for g in got if g is not None) == 33
        assert await budget.used_today() == 9_900
    finally:
        await db.close()


async def test_a_new_day_starts_empty(postgres_dsn: str) -> None:
    clock = [datetime(2026, 12, 5, 23, 59, 30, tzinfo=UTC)]
    db, _, _ = await open_postgres_ledgers(postgres_dsn, 1000, retry_for_s=10)
    budget = PostgresTokenBudget(db, 1000, now=lambda: clock[0])
    try:
        late = await budget.reserve(1000, role="r", model="m")
        assert late is not None
        clock[0] += timedelta(minutes=1)
        assert await budget.used_today() == 0
        assert await budget.reserve(1000, role="r", model="m") is not None
        await budget.settle(late, Usage(10, 10), Decimal(0))  # settles on the day it was made
        assert (await budget.status(clock[0].date() - timedelta(days=1))).used == 20
        assert await budget.used_today() == 1000
    finally:
        await db.close()


async def test_call_log_round_trip_is_idempotent(postgres_dsn: str) -> None:
    db, _, log = await open_postgres_ledgers(postgres_dsn, 1000, retry_for_s=10)
    try:
        record = LLMCallRecord(
            ts=datetime(2026, 12, 5, 10, 0, tzinfo=UTC),
            decision_id="dec-9",
            role="researcher",
            symbol="ETH/USDT",
            provider="openai",
            model="gpt-4o",
            usage=Usage(812, 164),
            cost_usd=Decimal("0.00367"),
            latency_s=1.25,
            outcome=CallOutcome.REPAIRED,
            input_summary="[researcher-v1] analysts: ...",
            output_summary='{"thesis": "bullish"}',
            error=None,
        )
        await log.record(record)
        await log.record(record)
        assert await log.records(decision_id="dec-9") == [record]
        assert await log.records(decision_id="other") == []
        assert await PostgresCallLog(db).records(since=record.ts + timedelta(seconds=1)) == []
    finally:
        await db.close()


async def test_two_processes_racing_never_exceed_the_budget_and_the_ledger_matches_the_log(
    postgres_dsn: str, fake_llm: FakeLLM
) -> None:
    fake_llm.default_answer = GOOD_TECHNICAL
    db, budget_view, log = await open_postgres_ledgers(postgres_dsn, 0, retry_for_s=10)
    per_call = reservation_tokens(race_call("x"), 2)
    budget = 8 * per_call  # the first questions of both workers (4 in flight each) all fit
    calls = 40
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.llm.race_worker",
                postgres_dsn,
                fake_llm.base_url,
                fake_llm.api_key,
                str(budget),
                str(calls),
                worker,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for worker in ("w1", "w2")
        ]
        for proc in procs:  # both connected: start them together
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
            assert line.strip() == b"ready", line
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(p.communicate(), timeout=240) for p in procs]
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()[-2000:]
        results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
        answered = sum(r["answered"] for r in results)
        refused = sum(r["refused"] for r in results)
        assert answered + refused == 2 * calls
        assert all(r["answered"] > 0 for r in results), results  # both processes really competed
        assert refused > 0, results  # and the budget really ran out

        status = await budget_view.status()
        assert status.used <= budget
        assert status.used == sum(r.tokens for r in status.rows)  # every reservation settled
        assert all(r.open_reservations == 0 for r in status.rows)

        records = await log.records()
        outcomes = Counter(r.outcome for r in records)
        assert outcomes == {CallOutcome.OK: answered, CallOutcome.BUDGET: refused}
        assert len(fake_llm.completions) == answered  # a refused question made no request
        ledger_tokens = sum(r.tokens for r in status.rows)
        assert ledger_tokens == sum(r.usage.total for r in records)
        assert sum(r.calls for r in status.rows) == answered
        ledger_cost = sum((r.cost_usd for r in status.rows), Decimal(0))
        assert ledger_cost > 0
        assert ledger_cost == sum((r.cost_usd for r in records), Decimal(0))
    finally:
        await db.close()


async def test_connect_language_model_uses_the_shared_ledgers(postgres_dsn: str) -> None:
    from infrastructure.llm.factory import connect_language_model
    from infrastructure.llm.settings import load_llm_settings
    from tests.llm.helpers import ScriptedModel, TechnicalView, make_call

    settings = load_llm_settings(provider="rules", daily_token_budget=50_000)
    model, db = await connect_language_model(settings, rules=ScriptedModel(GOOD_TECHNICAL), dsn=postgres_dsn)
    assert db is not None
    try:
        await model.ask(make_call(decision_id="dec-shared"), TechnicalView)
        assert isinstance(model.budget, PostgresTokenBudget)
        assert await model.budget.used_today() == 140
        assert [r.decision_id for r in await PostgresCallLog(db).records()] == ["dec-shared"]
    finally:
        await model.close()
        await db.close()
    offline, none = await connect_language_model(settings, rules=ScriptedModel(GOOD_TECHNICAL))
    assert none is None
    assert not isinstance(offline.budget, PostgresTokenBudget)
