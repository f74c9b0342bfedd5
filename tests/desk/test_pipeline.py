"""The desk's pipeline on the offline rules provider: roles, failure semantics, look-ahead, blind mode."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import timedelta

from agents.desk.pipeline import Desk, DeskLimits, intent_of
from agents.desk.prompts import PROMPT_VERSIONS, input_of
from agents.desk.rules import RulesModel
from core.desk.inputs import DeskInputs, NoNews, NoSentiment, NoTokenomics
from core.desk.roles import ANALYSTS, Role
from core.domain import Direction, Side
from infrastructure.feeds.desk_files import DeskDataFiles
from tests.desk.helpers import FlakyRules, sample_rows, view_at

INPUTS = DeskDataFiles().load()
LAST = len(sample_rows()) - 1


async def test_every_role_answers_with_its_model_and_prompt_version() -> None:
    outcome = await Desk(RulesModel(), INPUTS).decide(view_at(LAST))
    assert outcome is not None
    assert outcome.alert is None
    d = outcome.decision
    assert d.provider == "rules"
    assert [r.role for r in d.roles] == list(Role)
    assert all(r.status == "ok" and r.model == "rules-v1" for r in d.roles)
    assert [r.prompt_version for r in d.roles] == [PROMPT_VERSIONS[r] for r in Role]
    assert d.verdict in ("APPROVE", "ADJUST", "REJECT")


async def test_too_short_a_window_decides_nothing() -> None:
    assert await Desk(RulesModel(), INPUTS).decide(view_at(20, window=20)) is None


async def find_buy() -> tuple[int, Desk]:
    desk = Desk(RulesModel(), INPUTS)
    for end in range(LAST, 200, -1):
        outcome = await desk.decide(view_at(end))
        assert outcome is not None
        if outcome.decision.action == "BUY" and outcome.decision.intent_id is not None:
            return end, desk
    raise AssertionError("the rules desk never buys on the sample")


async def test_a_buy_becomes_an_intent_with_allocation_and_levels() -> None:
    end, desk = await find_buy()
    outcome = await desk.decide(view_at(end))
    assert outcome is not None
    d = outcome.decision
    intent = intent_of(d, now=d.ts, ttl=timedelta(hours=1))
    assert intent is not None
    assert intent.intent_id == d.intent_id
    assert intent.side is Side.BUY
    assert intent.direction is Direction.LONG
    assert intent.allocation_pct == d.size_pct / 100
    assert intent.stop_loss is not None
    assert intent.stop_loss < d.reference_price
    assert intent.take_profit is not None
    assert intent.take_profit > d.reference_price
    # the risk manager caps the size at the room left under the position limit
    tight = Desk(RulesModel(), INPUTS, limits=DeskLimits(max_position_pct=2.0))
    adjusted = await tight.decide(view_at(end))
    assert adjusted is not None
    assert adjusted.decision.verdict == "ADJUST"
    assert adjusted.decision.size_pct == 2.0
    full = await tight.decide(replace(view_at(end), position_pct=2.0))
    assert full is not None
    assert full.decision.verdict == "REJECT"
    assert full.decision.intent_id is None


async def test_a_failed_or_skipped_analyst_is_unavailable_and_the_others_go_on() -> None:
    model = FlakyRules(fail={"technical"}, broke={"tokenomics"})
    outcome = await Desk(model, INPUTS).decide(view_at(LAST))
    assert outcome is not None
    assert outcome.alert is None
    d = outcome.decision
    tech, sent, tok = (d.report(r) for r in ANALYSTS)
    assert tech is not None
    assert tech.status == "unavailable"
    assert "invalid" in tech.reason
    assert tok is not None
    assert tok.status == "unavailable"
    assert tok.reason.startswith("budget")
    assert sent is not None
    assert sent.status == "ok"
    researcher_call = next(c for c in model.calls if c.role == "researcher")
    analysts = input_of(researcher_call.messages)["analysts"]
    assert analysts["technical"]["status"] == "unavailable"
    assert analysts["sentiment"]["status"] == "ok"
    assert d.verdict != "NO_TRADE"


async def test_a_strong_role_failure_means_no_trade_with_reason_and_alert() -> None:
    for role in ("researcher", "trader", "risk_manager"):
        outcome = await Desk(FlakyRules(fail={role}), INPUTS).decide(view_at(LAST))
        assert outcome is not None
        d = outcome.decision
        assert d.verdict == "NO_TRADE"
        assert d.intent_id is None
        assert d.size_pct == 0
        assert role in d.reason
        assert outcome.alert is not None
        assert outcome.alert[0] == "desk_no_trade"
        failed = d.report(Role(role))
        assert failed is not None
        assert failed.status == "failed"
        later = [r for r in d.roles if r.status == "unavailable"]
        assert all(r.reason.startswith("not run") for r in later)
    broke = await Desk(FlakyRules(broke={"trader"}), INPUTS).decide(view_at(LAST))
    assert broke is not None
    assert broke.alert is not None
    assert broke.alert[0] == "desk_budget_exhausted"


async def test_no_input_after_the_decision_time_is_shown() -> None:
    model = FlakyRules()
    view = view_at(LAST - 10)
    await Desk(model, INPUTS).decide(view)
    sentiment = input_of(next(c for c in model.calls if c.role == "sentiment").messages)
    assert sentiment["headlines"]
    assert all(h["age_h"] >= 0 for h in sentiment["headlines"])
    assert all(r["days_ago"] >= 0 for r in sentiment["fear_greed"])


async def test_blind_mode_hides_name_dates_and_price_level() -> None:
    model = FlakyRules()
    outcome = await Desk(model, INPUTS, blind=True).decide(view_at(LAST))
    assert outcome is not None
    assert outcome.decision.blind
    prompts = " ".join(m.content for c in model.calls for m in c.messages)
    for leak in ("BTC", "Bitcoin", "bitcoin", "2025", str(int(float(sample_rows()[LAST]["close"])))):
        assert leak not in prompts, leak
    assert not re.search(r"\$\s?\d", prompts), "quoted prices are hidden"
    technical = input_of(next(c for c in model.calls if c.role == "technical").messages)
    assert technical["summary"]["last_close"] == 100.0


async def test_analysts_run_concurrently() -> None:
    started: list[str] = []
    gate = asyncio.Event()

    class Slow(FlakyRules):
        async def ask(self, call, output):
            if call.role in ("technical", "sentiment", "tokenomics"):
                started.append(call.role)
                if len(started) == 3:
                    gate.set()
                await asyncio.wait_for(gate.wait(), 5)  # all three must be in flight at once
            return await super().ask(call, output)

    outcome = await Desk(Slow(), INPUTS).decide(view_at(LAST))
    assert outcome is not None
    assert sorted(started) == ["sentiment", "technical", "tokenomics"]


async def test_without_inputs_the_desk_still_decides() -> None:
    empty = DeskInputs(NoNews(), NoSentiment(), NoTokenomics())
    outcome = await Desk(RulesModel(), empty).decide(view_at(LAST))
    assert outcome is not None
    tok = outcome.decision.report(Role.TOKENOMICS)
    assert tok is not None
    assert tok.status == "unavailable"
    assert tok.reason == "no input for this symbol"
    sent = outcome.decision.report(Role.SENTIMENT)
    assert sent is not None
    assert sent.output is not None
    assert json.loads(sent.model_dump_json())["output"]["sentiment"] == "neutral"
