"""The desk on the real LLM client, through real HTTP, against the fake OpenAI-compatible server:
a model answering like the rules (so decisions can trade), record then replay twice identically,
failures per role with the desk's semantics, and an exhausted budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.desk.pipeline import Desk
from agents.desk.prompts import INPUT_MARKER
from agents.desk.rules import RULES
from agents.desk.settings import DeskSettings
from agents.desk.wiring import build_desk
from backtesting.config import BacktestConfig
from backtesting.data import list_source
from backtesting.engine import BacktestEngine, BacktestResult, DeskRun
from core.desk.roles import OUTPUT_MODELS, Role
from core.settings import Settings
from infrastructure.llm.factory import build_language_model
from infrastructure.llm.settings import LLMSettings, load_llm_settings
from tests.desk.helpers import sample_rows, view_at
from tests.desk.test_backtest import KEY, candles
from tests.fakellm import FakeLLM

ROLE_OF = {model.__name__: role for role, model in OUTPUT_MODELS.items()}


def role_of(body: dict[str, Any]) -> Role:
    return ROLE_OF[body["response_format"]["json_schema"]["name"]]


def like_rules(broken: set[Role] = frozenset()) -> Callable[[dict[str, Any]], str]:  # type: ignore[assignment]
    """A model that answers what the rules would (valid JSON), or malformed JSON for ``broken`` roles."""

    def answer(body: dict[str, Any]) -> str:
        role = role_of(body)
        if role in broken:
            return '{"not": json'
        user = next(m["content"] for m in reversed(body["messages"]) if INPUT_MARKER in str(m.get("content")))
        return json.dumps(RULES[role](json.loads(user.split(INPUT_MARKER, 1)[1])))

    return answer


def settings_for(fake: FakeLLM, **extra: Any) -> LLMSettings:
    return load_llm_settings(base_url=fake.base_url, api_key=fake.api_key, **extra)


def desk_on(llm: LLMSettings, **desk: Any) -> tuple[Desk, DeskSettings]:
    settings = DeskSettings.model_validate({"every": 24, **desk})
    return build_desk(settings, Settings(), build_language_model(llm, instrument=False), llm), settings


async def backtest(llm: LLMSettings, max_decisions: int = 4) -> BacktestResult:
    desk, settings = desk_on(llm)
    run = DeskRun(desk, settings, max_decisions)
    return await BacktestEngine(BacktestConfig(), [list_source(KEY, candles(), "s")], desk=run).run()


async def test_a_model_over_http_drives_the_desk_with_tokens_and_cost(fake_llm: FakeLLM) -> None:
    fake_llm.default_answer = like_rules()
    result = await backtest(settings_for(fake_llm, provider="openai"))
    decisions = result.desk_decisions
    assert len(decisions) == 4
    assert all(d.provider == "openai" for d in decisions)
    assert all(r.status == "ok" for d in decisions for r in d.roles)
    assert {r.model for d in decisions for r in d.roles} == {"gpt-4o-mini", "gpt-4o"}
    tech = decisions[0].report(Role.TECHNICAL)
    trader = decisions[0].report(Role.TRADER)
    assert tech is not None
    assert trader is not None
    assert tech.model == "gpt-4o-mini"  # analysts on the cheap tier
    assert trader.model == "gpt-4o"  # the rest on the strong tier
    assert all(d.tokens_in > 0 and d.tokens_out > 0 and d.cost_usd > 0 for d in decisions)
    assert len(fake_llm.completions) == 6 * 4
    summary = result.summary()["desk"]
    assert summary["cost_usd"] > 0
    assert summary["tokens_in"] == sum(d.tokens_in for d in decisions)


async def test_record_then_replay_twice_gives_identical_decisions_and_trades(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.default_answer = like_rules()
    cassette = tmp_path / "desk.jsonl"
    recorded = await backtest(settings_for(fake_llm, provider="record", cassette=cassette), max_decisions=6)
    calls = len(fake_llm.completions)
    await fake_llm.close()  # replay needs no server
    replays = [await backtest(load_llm_settings(provider="replay", cassette=cassette), 6) for _ in range(2)]
    first, second = ([d.model_dump_json() for d in r.desk_decisions] for r in replays)
    assert first == second
    assert [(f.side, f.quantity, f.price) for f in replays[0].fills] == [
        (f.side, f.quantity, f.price) for f in replays[1].fills
    ]
    assert [(d.action, d.verdict, d.size_pct) for d in replays[0].desk_decisions] == [
        (d.action, d.verdict, d.size_pct) for d in recorded.desk_decisions
    ]
    assert all(d.provider == "replay" for d in replays[0].desk_decisions)
    assert len(fake_llm.completions) == calls


async def test_failures_over_http_follow_the_desk_semantics(fake_llm: FakeLLM) -> None:
    view = view_at(len(sample_rows()) - 1)
    fake_llm.default_answer = like_rules(broken={Role.TECHNICAL})
    desk, _ = desk_on(settings_for(fake_llm, provider="openai"))
    outcome = await desk.decide(view)
    assert outcome is not None
    tech = outcome.decision.report(Role.TECHNICAL)
    assert tech is not None
    assert tech.status == "unavailable"
    assert tech.tokens_in > 0  # the call and its repair were paid for
    assert outcome.decision.verdict != "NO_TRADE"

    fake_llm.default_answer = like_rules(broken={Role.RESEARCHER})
    outcome = await desk.decide(view)
    assert outcome is not None
    assert outcome.decision.verdict == "NO_TRADE"
    assert "researcher failed" in outcome.decision.reason
    assert outcome.alert is not None
    assert outcome.alert[0] == "desk_no_trade"


async def test_an_exhausted_budget_means_no_trade_and_a_budget_alert(fake_llm: FakeLLM) -> None:
    fake_llm.default_answer = like_rules()
    desk, _ = desk_on(settings_for(fake_llm, provider="openai", daily_token_budget=1500))
    outcome = await desk.decide(view_at(len(sample_rows()) - 1))
    assert outcome is not None
    d = outcome.decision
    assert d.verdict == "NO_TRADE"
    assert outcome.alert is not None
    assert outcome.alert[0] == "desk_budget_exhausted"
    skipped = [r for r in d.roles if r.reason.startswith("budget")]
    assert skipped
