"""The language-model port: what the AI desk's roles ask a model, and what comes back.

The desk (``agents/desk``) depends only on :class:`LanguageModel`. Adapters live in
``infrastructure/llm``: an OpenAI-compatible HTTP client (one base URL reaches OpenAI, OpenRouter,
Together.ai, vLLM or Ollama), a cassette ``replay``/``record`` pair, and the desk's offline ``rules``
provider. Every adapter validates the answer against the role's output model, reserves tokens from
a :class:`TokenBudget` before a call and settles the real usage after it, and reports each call as
an :class:`LLMCallRecord` (the ``agent_logs`` table and the Prometheus counters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

Tier = Literal["cheap", "strong"]
"""Model tier: ``cheap`` (``CHEAP_MODEL``) for the analysts, ``strong`` (``STRONG_MODEL``) for the rest."""

OutputT = TypeVar("OutputT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message: ``role`` is ``system``, ``user`` or ``assistant``."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One question a desk role puts to a model.

    ``deadline`` is the wall-clock instant (UTC) by which the decision needs the answer: retries
    (timeouts, 429 with ``Retry-After``, 5xx) happen only inside it. ``prompt_version`` names the
    versioned template file the messages were rendered from.
    """

    decision_id: str
    role: str
    tier: Tier
    symbol: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    deadline: datetime
    prompt_version: str
    temperature: float = 0.0


class CallOutcome(StrEnum):
    """How a call ended (the ``outcome`` column of ``agent_logs``)."""

    OK = "ok"
    REPAIRED = "repaired"
    """The first answer failed validation; the one repair call succeeded."""
    INVALID = "invalid"
    """Still invalid after the repair call: the role failed."""
    ERROR = "error"
    """Transport failure (timeout, 429, 5xx) not recovered inside the deadline."""
    BUDGET = "budget"
    """Skipped: the daily token budget could not cover the reservation."""
    REPLAY_MISS = "replay_miss"
    """A replay cassette has no recording for this call."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call really used (as the provider reported them)."""

    tokens_in: int
    tokens_out: int

    @property
    def total(self) -> int:
        """Tokens in and out."""
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True, slots=True)
class LLMCallRecord:
    """What is logged of one call (never the API key, never the full prompt)."""

    ts: datetime
    decision_id: str
    role: str
    symbol: str
    provider: str
    model: str
    usage: Usage
    cost_usd: Decimal
    latency_s: float
    outcome: CallOutcome
    input_summary: str
    output_summary: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LLMAnswer(Generic[OutputT]):
    """A validated answer: the role's output model, the usage, and the call's record(s)."""

    value: OutputT
    usage: Usage
    model: str
    records: tuple[LLMCallRecord, ...] = field(default=())


class LLMError(Exception):
    """A call failed for good: ``outcome`` says how, ``records`` what was spent on the way."""

    def __init__(self, outcome: CallOutcome, reason: str, records: tuple[LLMCallRecord, ...] = ()) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.records = records


class BudgetExhausted(LLMError):
    """The daily token budget cannot cover the call's reservation."""

    def __init__(self, reason: str) -> None:
        super().__init__(CallOutcome.BUDGET, reason)


@runtime_checkable
class LanguageModel(Protocol):
    """Answers a desk role's question with a validated instance of the role's output model."""

    provider: str

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """Ask, validate against ``output`` (one repair call on a validation error), or raise
        :class:`LLMError` / :class:`BudgetExhausted`."""
        ...


@runtime_checkable
class TokenBudget(Protocol):
    """The daily token budget, shared by every process that calls a model.

    ``reserve`` atomically takes ``tokens`` from today's remainder (UTC day) or returns None when
    they do not fit; ``settle`` replaces a reservation with the real usage (returning the
    difference). Two processes racing can never take more than the budget.
    """

    async def reserve(self, tokens: int, *, role: str, model: str) -> str | None:
        """Reserve ``tokens``; the reservation id, or None when the budget cannot cover them."""
        ...

    async def settle(self, reservation_id: str, usage: Usage, cost_usd: Decimal) -> None:
        """Record the real usage of a reserved call (0 tokens if the call never happened)."""
        ...

    async def used_today(self) -> int:
        """Tokens reserved or used today (UTC)."""
        ...


@runtime_checkable
class CallLog(Protocol):
    """Where every model call is recorded (the ``agent_logs`` table, or memory in backtests)."""

    async def record(self, record: LLMCallRecord) -> None:
        """Store one call's record (idempotent: the same record stored twice is kept once)."""
        ...
