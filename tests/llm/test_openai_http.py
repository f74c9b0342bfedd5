"""The real OpenAI client through real HTTP against the fake server: every failure semantic."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from core.llm import CallOutcome, LLMError, Usage
from infrastructure.llm.budget import InMemoryTokenBudget
from infrastructure.llm.calllog import InMemoryCallLog
from infrastructure.llm.factory import build_language_model
from infrastructure.llm.openai_model import OpenAIModel
from infrastructure.llm.settings import LLMSettings, load_llm_settings
from tests.fakellm import (
    FakeLLM,
    answer,
    malformed,
    rate_limited,
    schema_violation,
    server_error,
    slow,
    truncated,
)
from tests.llm.helpers import GOOD_TECHNICAL, TechnicalView, TradeProposal, make_call


class Sleeps:
    """Records the backoff waits the client asks for (and does not really wait)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def settings_for(fake: FakeLLM, **overrides: object) -> LLMSettings:
    values: dict[str, object] = {
        "provider": "openai",
        "base_url": fake.base_url,
        "api_key": fake.api_key,
        "cheap_model": "fake-mini",
        "strong_model": "fake-large",
        "timeout_s": 5.0,
        "max_attempts": 4,
    }
    values.update(overrides)
    return load_llm_settings(**values)


def client(fake: FakeLLM, sleeps: Sleeps | None = None, **overrides: object) -> OpenAIModel:
    return OpenAIModel(settings_for(fake, **overrides), sleep=sleeps or Sleeps())


async def test_a_valid_answer_routes_by_tier_with_the_schema_and_real_usage(fake_llm: FakeLLM) -> None:
    model = client(fake_llm)
    fake_llm.enqueue(answer(GOOD_TECHNICAL))
    got = await model.ask(make_call("technical", max_tokens=321), TechnicalView)
    assert got.value == TechnicalView.model_validate(GOOD_TECHNICAL)
    assert got.model == "fake-mini"
    (body,) = fake_llm.completions
    assert body["model"] == "fake-mini"
    assert body["max_tokens"] == 321
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == TechnicalView.model_json_schema()
    assert fake_llm.requests[0]["headers"]["Authorization"] == f"Bearer {fake_llm.api_key}"
    (record,) = got.records
    assert record.outcome is CallOutcome.OK
    assert record.usage == got.usage
    assert got.usage.tokens_in > 20
    assert got.usage.tokens_out == -(-len(json.dumps(GOOD_TECHNICAL)) // 4)

    trader = await model.ask(make_call("trader"), TradeProposal)  # default answer: built from the schema
    assert trader.model == "fake-large"
    assert fake_llm.completions[1]["model"] == "fake-large"
    await model.close()


@pytest.mark.parametrize("bad", [malformed(), schema_violation()], ids=["malformed", "schema"])
async def test_one_repair_call_shows_the_model_its_error(fake_llm: FakeLLM, bad) -> None:
    model = client(fake_llm)
    fake_llm.enqueue(bad, answer(GOOD_TECHNICAL))
    got = await model.ask(make_call(), TechnicalView)
    assert got.value.trend == "up"
    assert [r.outcome for r in got.records] == [CallOutcome.INVALID, CallOutcome.REPAIRED]
    assert got.usage == Usage(sum(r.usage.tokens_in for r in got.records), sum(r.usage.tokens_out for r in got.records))
    first, repair = fake_llm.completions
    assert repair["messages"][: len(first["messages"])] == first["messages"]
    assert repair["messages"][-2] == {"role": "assistant", "content": bad.content}
    assert "not valid" in repair["messages"][-1]["content"]
    problem = "Invalid JSON" if bad.content.startswith('{"trend": "up"') else "trend"
    assert problem in repair["messages"][-1]["content"]
    await model.close()


async def test_still_invalid_after_the_repair_call_fails_the_role(fake_llm: FakeLLM) -> None:
    model = client(fake_llm)
    fake_llm.enqueue(schema_violation(), malformed(), answer(GOOD_TECHNICAL))
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(decision_id="dec-77"), TechnicalView)
    assert info.value.outcome is CallOutcome.INVALID
    assert "dec-77" in info.value.reason
    assert "repair" in info.value.reason
    assert len(fake_llm.completions) == 2  # exactly one repair call
    assert [r.outcome for r in info.value.records] == [CallOutcome.INVALID, CallOutcome.INVALID]
    assert all(r.usage.total > 0 for r in info.value.records)
    await model.close()


async def test_429_honours_retry_after(fake_llm: FakeLLM) -> None:
    sleeps = Sleeps()
    model = client(fake_llm, sleeps)
    fake_llm.enqueue(rate_limited(2), answer(GOOD_TECHNICAL))
    got = await model.ask(make_call(), TechnicalView)
    assert got.value.trend == "up"
    assert sleeps.waits == [2.0]
    assert len(fake_llm.completions) == 2
    await model.close()


async def test_429_asking_past_the_deadline_fails_at_once(fake_llm: FakeLLM) -> None:
    sleeps = Sleeps()
    model = client(fake_llm, sleeps)
    fake_llm.enqueue(rate_limited(60))
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(deadline_s=5), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert "429" in info.value.reason
    assert "deadline" in info.value.reason
    assert sleeps.waits == []
    assert len(fake_llm.completions) == 1
    (record,) = info.value.records
    assert record.outcome is CallOutcome.ERROR
    await model.close()


async def test_5xx_is_retried_with_backoff_then_gives_up(fake_llm: FakeLLM) -> None:
    sleeps = Sleeps()
    model = client(fake_llm, sleeps)
    fake_llm.enqueue(server_error(500), server_error(503), answer(GOOD_TECHNICAL))
    got = await model.ask(make_call(), TechnicalView)
    assert got.value.trend == "up"
    assert len(sleeps.waits) == 2
    assert all(w > 0 for w in sleeps.waits)

    fake_llm.enqueue(*(server_error(502) for _ in range(10)))
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert "502" in info.value.reason
    assert "after 4 attempts" in info.value.reason
    assert len(fake_llm.completions) == 3 + 4
    await model.close()


async def test_a_slow_answer_times_out_and_is_retried(fake_llm: FakeLLM) -> None:
    model = client(fake_llm, timeout_s=0.3)
    fake_llm.enqueue(slow(2.0), answer(GOOD_TECHNICAL))
    got = await model.ask(make_call(), TechnicalView)
    assert got.value.trend == "up"
    assert len(fake_llm.completions) == 2

    fake_llm.enqueue(*(slow(2.0) for _ in range(4)))
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert "timed out" in info.value.reason
    await model.close()


async def test_a_slow_answer_is_cut_at_the_deadline(fake_llm: FakeLLM) -> None:
    model = client(fake_llm, timeout_s=30)
    fake_llm.enqueue(slow(3.0), slow(3.0))
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(deadline_s=0.5), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert "timed out" in info.value.reason
    assert len(fake_llm.completions) == 1
    await model.close()


async def test_a_passed_deadline_makes_no_request(fake_llm: FakeLLM) -> None:
    model = client(fake_llm)
    with pytest.raises(LLMError, match="deadline"):
        await model.ask(make_call(deadline_s=-1), TechnicalView)
    assert fake_llm.completions == []
    await model.close()


async def test_a_provider_without_json_schema_gets_json_object(fake_llm: FakeLLM) -> None:
    fake_llm.supports_json_schema = False
    fake_llm.default_answer = GOOD_TECHNICAL
    model = client(fake_llm)
    got = await model.ask(make_call(), TechnicalView)
    assert got.value.trend == "up"
    refused, accepted = fake_llm.completions
    assert refused["response_format"]["type"] == "json_schema"
    assert accepted["response_format"] == {"type": "json_object"}
    assert "JSON schema" in accepted["messages"][0]["content"]
    await model.ask(make_call(), TechnicalView)  # remembered: no second refusal
    assert fake_llm.completions[2]["response_format"] == {"type": "json_object"}
    await model.close()


async def test_the_api_key_is_never_shown(fake_llm: FakeLLM) -> None:
    secret = "sk-live-THIS-IS-SECRET-4242"
    settings = settings_for(fake_llm, api_key=secret)  # the fake expects another key: 401 echoing ours
    log = InMemoryCallLog()
    model = build_language_model(settings, budget=InMemoryTokenBudget(100_000), log=log)
    with capture_logs() as events, pytest.raises(LLMError) as info:
        await model.ask(make_call(), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert "401" in info.value.reason
    assert len(fake_llm.completions) == 1  # a 4xx is not retried
    shown = [str(info.value), repr(info.value), info.value.reason, repr(settings), repr(events), repr(log.records)]
    assert fake_llm.requests[0]["headers"]["Authorization"] == f"Bearer {secret}"  # it was really sent
    for text in shown:
        assert secret not in text
        assert "THIS-IS-SECRET" not in text


async def test_metered_openai_settles_the_real_usage(fake_llm: FakeLLM) -> None:
    budget, log = InMemoryTokenBudget(100_000), InMemoryCallLog()
    model = build_language_model(settings_for(fake_llm), budget=budget, log=log)
    fake_llm.enqueue(malformed(), answer(GOOD_TECHNICAL))
    got = await model.ask(make_call(), TechnicalView)
    assert await budget.used_today() == got.usage.total
    assert [r.outcome for r in log.records] == [CallOutcome.INVALID, CallOutcome.REPAIRED]
    assert sum(r.usage.total for r in log.records) == got.usage.total
    assert all(r.cost_usd == Decimal(0) for r in log.records)  # fake models are not in the price table
    priced = build_language_model(settings_for(fake_llm, prices="fake-mini=1/2"), budget=budget, log=log)
    again = await priced.ask(make_call(), TechnicalView)
    assert again.records[0].cost_usd == Decimal(again.usage.tokens_in * 1 + again.usage.tokens_out * 2) / 10**6


def test_the_package_imports_and_builds_without_network_or_key() -> None:
    settings = load_llm_settings(provider="openai", api_key="k", base_url="http://127.0.0.1:9/v1")
    OpenAIModel(settings)  # no request is made until a question is asked


async def test_the_role_setting_caps_the_answer(fake_llm: FakeLLM) -> None:
    model = client(fake_llm, max_tokens="technical=150")
    await model.ask(make_call("technical", max_tokens=300), TechnicalView)
    await model.ask(make_call("trader", max_tokens=300), TradeProposal)
    assert [b["max_tokens"] for b in fake_llm.completions] == [150, 300]
    await model.close()


async def test_a_truncated_answer_asks_for_a_briefer_one(fake_llm: FakeLLM) -> None:
    model = client(fake_llm)
    fake_llm.enqueue(truncated(), answer(GOOD_TECHNICAL))
    got = await model.ask(make_call(), TechnicalView)
    assert [r.outcome for r in got.records] == [CallOutcome.INVALID, CallOutcome.REPAIRED]
    assert "cut off at the token limit" in fake_llm.completions[1]["messages"][-1]["content"]
    await model.close()


async def test_the_key_from_a_secret_file_authenticates(fake_llm: FakeLLM, tmp_path) -> None:
    key_file = tmp_path / "llm_api_key"
    key_file.write_text(fake_llm.api_key + "\n")
    settings = load_llm_settings(
        provider="openai", base_url=fake_llm.base_url, api_key_file=key_file, cheap_model="fake-mini"
    )
    model = build_language_model(settings)
    got = await model.ask(make_call(), TechnicalView)
    assert got.records[0].outcome is CallOutcome.OK
    await model.close()


async def test_retry_after_as_an_http_date(fake_llm: FakeLLM) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    sleeps = Sleeps()
    model = client(fake_llm, sleeps)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    fake_llm.enqueue(rate_limited(when), answer(GOOD_TECHNICAL))
    got = await model.ask(make_call(), TechnicalView)
    assert got.value.trend == "up"
    (wait,) = sleeps.waits
    assert 0 < wait <= 3
    await model.close()


async def test_an_unreachable_server_is_retried_then_an_error(unused_tcp_port: int) -> None:
    sleeps = Sleeps()
    settings = load_llm_settings(
        provider="openai", base_url=f"http://127.0.0.1:{unused_tcp_port}/v1", api_key="k", max_attempts=3
    )
    model = OpenAIModel(settings, sleep=sleeps)
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(), TechnicalView)
    assert info.value.outcome is CallOutcome.ERROR
    assert "could not connect after 3 attempts" in info.value.reason
    assert len(sleeps.waits) == 2
    await model.close()


async def test_the_fake_default_answer_can_depend_on_the_request(fake_llm: FakeLLM) -> None:
    fake_llm.default_answer = lambda body: {
        **GOOD_TECHNICAL,
        "trend": "down" if "falling" in body["messages"][-1]["content"] else "up",
    }
    model = client(fake_llm)
    down = await model.ask(make_call(content="prices falling"), TechnicalView)
    up = await model.ask(make_call(content="prices rising"), TechnicalView)
    assert (down.value.trend, up.value.trend) == ("down", "up")
    await model.close()
