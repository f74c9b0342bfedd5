"""Small desk-like output models and calls for the LLM client tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.llm import ChatMessage, LLMAnswer, LLMCall, LLMError, OutputT, Tier, Usage


class TechnicalView(BaseModel):
    """A technical analyst's answer (the shape the desk's model has)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trend: Literal["up", "down", "sideways"]
    momentum: Literal["strong", "weak"]
    condition: Literal["overbought", "oversold", "neutral"]
    reasoning: list[str] = Field(min_length=1, max_length=5)


class TradeProposal(BaseModel):
    """A trader's answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["BUY", "SELL", "HOLD"]
    size_pct: float = Field(ge=0, le=100)
    reasoning: list[str] = Field(min_length=1)


GOOD_TECHNICAL = {"trend": "up", "momentum": "strong", "condition": "neutral", "reasoning": ["EMA20 above EMA50"]}


def make_call(
    role: str = "technical",
    *,
    tier: Tier | None = None,
    decision_id: str = "dec-1",
    max_tokens: int = 300,
    deadline_s: float = 30.0,
    content: str = "RSI 61, MACD hist +12.5, EMA20 > EMA50. Answer in JSON.",
) -> LLMCall:
    """A call as the desk makes it."""
    return LLMCall(
        decision_id=decision_id,
        role=role,
        tier=tier or ("cheap" if role in ("technical", "sentiment", "tokenomics") else "strong"),
        symbol="BTC/USDT",
        messages=(ChatMessage("system", "You are a technical analyst. Reply with JSON."), ChatMessage("user", content)),
        max_tokens=max_tokens,
        deadline=datetime.now(UTC) + timedelta(seconds=deadline_s),
        prompt_version=f"{role}-v1",
    )


class ScriptedModel:
    """An in-process provider answering from a script (like the desk's rules provider would)."""

    provider = "scripted"

    def __init__(self, *answers: Mapping[str, object] | LLMError, usage: Usage | None = None) -> None:
        self.answers = list(answers)
        self.usage = usage or Usage(100, 40)
        self.calls: list[LLMCall] = []

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        self.calls.append(call)
        answer = self.answers.pop(0)
        if isinstance(answer, LLMError):
            raise answer
        return LLMAnswer(value=output.model_validate(answer), usage=self.usage, model="scripted-1")
