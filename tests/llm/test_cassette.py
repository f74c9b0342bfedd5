"""Record against the fake server, then replay with no server: identical answers, clear misses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigurationError
from core.llm import CallOutcome, LLMError
from infrastructure.llm.budget import InMemoryTokenBudget
from infrastructure.llm.calllog import InMemoryCallLog
from infrastructure.llm.cassette import ReplayModel, cassette_key
from infrastructure.llm.factory import build_language_model
from infrastructure.llm.settings import load_llm_settings
from tests.fakellm import FakeLLM, answer, malformed, schema_violation
from tests.llm.helpers import GOOD_TECHNICAL, TechnicalView, TradeProposal, make_call

QUESTIONS = [
    ("d1", "technical", "RSI 72, MACD falling"),
    ("d1", "trader", "thesis bullish 0.7, flat position"),
    ("d2", "technical", "RSI 30, MACD rising"),
    ("d3", "technical", "RSI 50 twice"),
    ("d4", "technical", "RSI 50 twice"),
]


async def ask_all(model) -> list[Any]:
    """Every question's answer (value, usage, outcomes) or failure (outcome, reason)."""
    out: list[Any] = []
    for decision, role, text in QUESTIONS:
        output = TradeProposal if role == "trader" else TechnicalView
        try:
            got = await model.ask(make_call(role, decision_id=decision, content=text), output)
            out.append((got.value, got.usage, got.model, [r.outcome for r in got.records]))
        except LLMError as exc:
            out.append((exc.outcome, exc.reason, [r.outcome for r in exc.records]))
    return out


async def test_record_then_replay_offline_gives_identical_answers(fake_llm: FakeLLM, tmp_path: Path) -> None:
    cassette = tmp_path / "desk.jsonl"
    common = {"base_url": fake_llm.base_url, "api_key": fake_llm.api_key, "cassette": cassette}
    fake_llm.enqueue(
        answer({**GOOD_TECHNICAL, "trend": "down"}),  # d1 technical
        malformed(),
        answer({"action": "BUY", "size_pct": 5, "reasoning": ["thesis"]}),  # d1 trader: repaired
        schema_violation(),
        schema_violation(),  # d2 technical: invalid after the repair
        answer(GOOD_TECHNICAL),  # d3: the same question as d4 ...
        answer({**GOOD_TECHNICAL, "momentum": "weak"}),  # ... answered differently the second time
    )
    recorder = build_language_model(load_llm_settings(provider="record", **common))
    recorded = await ask_all(recorder)
    requests = len(fake_llm.completions)
    assert requests == 7
    assert recorded[2][0] is CallOutcome.INVALID
    assert recorded[3][0] != recorded[4][0]
    await fake_llm.close()  # no server from here on

    for _ in range(2):  # a fresh replay run is identical every time
        log = InMemoryCallLog()
        replay = build_language_model(
            load_llm_settings(provider="replay", **common), budget=InMemoryTokenBudget(1_000_000), log=log
        )
        assert await ask_all(replay) == recorded
        assert sum(r.usage.total for r in log.records) > 0  # the recorded usage is reported
        assert {r.provider for r in log.records} == {"replay"}
    assert len(fake_llm.completions) == requests


async def test_a_missing_call_names_the_decision(tmp_path: Path) -> None:
    cassette = tmp_path / "empty.jsonl"
    cassette.write_text("")
    settings = load_llm_settings(provider="replay", cassette=cassette)
    model = build_language_model(settings)
    with pytest.raises(LLMError) as info:
        await model.ask(make_call(decision_id="dec-2026-05-07T12:00"), TechnicalView)
    assert info.value.outcome is CallOutcome.REPLAY_MISS
    assert "dec-2026-05-07T12:00" in info.value.reason
    assert "technical" in info.value.reason


def test_the_key_covers_model_messages_and_parameters() -> None:
    call = make_call()
    base = cassette_key("m", call, TechnicalView)
    assert cassette_key("m", make_call(), TechnicalView) == base  # the deadline is not part of it
    assert cassette_key("m2", call, TechnicalView) != base
    assert cassette_key("m", make_call(content="other"), TechnicalView) != base
    assert cassette_key("m", make_call(max_tokens=301), TechnicalView) != base
    assert cassette_key("m", call, TradeProposal) != base


def test_a_broken_or_absent_cassette_is_a_one_line_error(tmp_path: Path) -> None:
    settings = load_llm_settings(provider="replay", cassette=tmp_path / "absent.jsonl")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        ReplayModel(tmp_path / "absent.jsonl", settings)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"key": "a", "outcome": "answer"}\nnot json\n')
    with pytest.raises(ConfigurationError, match="line 2"):
        ReplayModel(broken, settings)
