"""MeteredModel: reserve -> ask -> settle -> log -> metrics, for any provider."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from core.llm import BudgetExhausted, CallOutcome, LanguageModel, LLMCallRecord, LLMError, Usage
from infrastructure.llm.budget import InMemoryTokenBudget
from infrastructure.llm.calllog import InMemoryCallLog
from infrastructure.llm.factory import build_language_model
from infrastructure.llm.metered import MeteredModel, estimate_prompt_tokens, reservation_tokens
from infrastructure.llm.prices import ModelPrice, PriceTable
from infrastructure.llm.settings import load_llm_settings
from tests.llm.helpers import GOOD_TECHNICAL, ScriptedModel, TechnicalView, make_call

PRICES = PriceTable({"scripted-1": ModelPrice(Decimal(1), Decimal(2)), "scripted": ModelPrice(Decimal(1), Decimal(2))})


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_good_answer_is_reserved_settled_logged_priced_and_counted() -> None:
    budget, log = InMemoryTokenBudget(100_000), InMemoryCallLog()
    model = MeteredModel(ScriptedModel(GOOD_TECHNICAL), budget, log, PRICES)
    assert isinstance(model, LanguageModel)
    before = sample("tradeswarm_llm_tokens_total", role="technical", model="scripted-1", direction="in")
    answer = await model.ask(make_call(), TechnicalView)
    assert answer.value.trend == "up"
    (record,) = answer.records
    assert log.records == (record,)
    assert record.outcome is CallOutcome.OK
    assert record.usage == Usage(100, 40)
    assert record.cost_usd == Decimal("0.00018")  # 100 * 1/1e6 + 40 * 2/1e6
    assert record.provider == "scripted"
    assert record.input_summary.startswith("[technical-v1] RSI 61")
    assert '"trend":"up"' in record.output_summary
    assert await budget.used_today() == 140  # the reservation was replaced by the real usage
    status = await budget.status()
    assert status.rows[0].cost_usd == record.cost_usd
    after = sample("tradeswarm_llm_tokens_total", role="technical", model="scripted-1", direction="in")
    assert after - before == 100


async def test_budget_exhausted_makes_no_call_and_is_recorded() -> None:
    inner = ScriptedModel(GOOD_TECHNICAL)
    call = make_call(max_tokens=300)
    budget, log = InMemoryTokenBudget(reservation_tokens(call) - 1), InMemoryCallLog()
    model = MeteredModel(inner, budget, log, PRICES)
    before = sample("tradeswarm_llm_failures_total", role="technical", model="scripted", outcome="budget")
    with pytest.raises(BudgetExhausted) as info:
        await model.ask(call, TechnicalView)
    assert inner.calls == []
    assert info.value.outcome is CallOutcome.BUDGET
    assert "dec-1" in info.value.reason
    (record,) = log.records
    assert record.outcome is CallOutcome.BUDGET
    assert record.usage == Usage(0, 0)
    assert info.value.records == (record,)
    assert await budget.used_today() == 0
    assert sample("tradeswarm_llm_failures_total", role="technical", model="scripted", outcome="budget") == before + 1


async def test_provider_failure_settles_what_was_spent_and_logs_every_record() -> None:
    call = make_call()
    spent = LLMCallRecord(
        ts=call.deadline,
        decision_id="dec-1",
        role="technical",
        symbol="BTC/USDT",
        provider="scripted",
        model="scripted-1",
        usage=Usage(120, 80),
        cost_usd=Decimal(0),
        latency_s=0.2,
        outcome=CallOutcome.INVALID,
        input_summary="in",
        output_summary="{bad",
        error="invalid JSON",
    )
    repair = dataclasses.replace(spent, output_summary='{"trend": "up"}', error="schema: momentum missing")
    failure = LLMError(CallOutcome.INVALID, "still invalid after the repair call", (spent, repair))
    budget, log = InMemoryTokenBudget(100_000), InMemoryCallLog()
    model = MeteredModel(ScriptedModel(failure), budget, log, PRICES)
    with pytest.raises(LLMError) as info:
        await model.ask(call, TechnicalView)
    assert info.value.outcome is CallOutcome.INVALID
    assert all(r.cost_usd == Decimal("0.00028") for r in info.value.records)
    assert [r.error for r in log.records] == ["invalid JSON", "schema: momentum missing"]
    await log.record(log.records[0])  # recording the same record again keeps it once
    assert len(log.records) == 2
    assert await budget.used_today() == 400  # both records' usage (200 each) were settled


async def test_an_unexpected_provider_exception_becomes_an_error_outcome() -> None:
    class Broken:
        provider = "broken"

        async def ask(self, call, output):
            raise RuntimeError("boom with details")

    budget, log = InMemoryTokenBudget(100_000), InMemoryCallLog()
    model = MeteredModel(Broken(), budget, log, PRICES)
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert info.value.reason == "broken provider failed: RuntimeError"
    assert [r.outcome for r in log.records] == [CallOutcome.ERROR]
    assert await budget.used_today() == 0


async def test_an_unreachable_budget_means_no_call() -> None:
    class DownBudget(InMemoryTokenBudget):
        async def reserve(self, tokens, *, role, model):
            raise OSError("connection refused")

    inner = ScriptedModel(GOOD_TECHNICAL)
    model = MeteredModel(inner, DownBudget(10), InMemoryCallLog(), PRICES)
    with pytest.raises(LLMError, match="token budget unavailable") as info:
        await model.ask(make_call(), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert inner.calls == []


def test_reservation_covers_prompt_answer_and_the_repair_call() -> None:
    call = make_call(max_tokens=300)
    prompt = estimate_prompt_tokens(call.messages)
    # 3 bytes per token is more than real tokenisers give for this text (about 4)
    assert prompt >= sum(len(m.content) for m in call.messages) // 3
    assert reservation_tokens(call) == prompt + 300
    assert reservation_tokens(call, 2) == prompt + 300 + prompt + 600 + 400


async def test_factory_wraps_the_rules_provider_with_in_memory_ledgers() -> None:
    settings = load_llm_settings(provider="rules", daily_token_budget=10_000)
    model = build_language_model(settings, rules=ScriptedModel(GOOD_TECHNICAL))
    answer = await model.ask(make_call(), TechnicalView)
    assert answer.value.momentum == "strong"
    assert model.provider == "scripted"
    assert await model.budget.used_today() == 140


async def test_a_cancelled_call_is_logged_and_keeps_its_reservation() -> None:
    import asyncio

    started = asyncio.Event()

    class Hanging:
        provider = "hanging"

        async def ask(self, call, output):
            started.set()
            await asyncio.sleep(3600)

    budget, log = InMemoryTokenBudget(100_000), InMemoryCallLog()
    model = MeteredModel(Hanging(), budget, log, PRICES)
    call = make_call()
    task = asyncio.create_task(model.ask(call, TechnicalView))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.outcome for r in log.records] == [CallOutcome.ERROR]
    assert "cancelled" in (log.records[0].error or "")
    assert await budget.used_today() == reservation_tokens(call)  # held: what it spent is unknown


async def test_a_ledger_slower_than_the_deadline_means_no_call() -> None:
    import asyncio

    class StuckBudget(InMemoryTokenBudget):
        async def reserve(self, tokens, *, role, model):
            await asyncio.sleep(3600)

    inner = ScriptedModel(GOOD_TECHNICAL)
    model = MeteredModel(inner, StuckBudget(10_000), InMemoryCallLog(), PRICES)
    with pytest.raises(LLMError, match="token budget unavailable: TimeoutError") as info:
        await model.ask(make_call(deadline_s=0.2), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert inner.calls == []
