"""OpenAIModel: the desk's questions over any OpenAI-compatible chat-completions endpoint.

Built on the official ``openai`` package (``AsyncOpenAI``): one base URL reaches OpenAI, OpenRouter,
Together.ai or a local vLLM/Ollama server. A role's tier picks the model (``CHEAP_MODEL`` for the
analysts, ``STRONG_MODEL`` for the rest). The answer is asked for as JSON with the provider's
JSON-schema response format, built from the role's output model; a provider that rejects
``json_schema`` is asked for ``json_object`` with the schema in a system message instead (from then
on, for that model).

Failure semantics (:mod:`core.llm`):

- the answer is validated against the role's model; on bad JSON or a schema error, exactly one
  repair call shows the model its answer and the error; still invalid: ``LLMError(INVALID)``;
- timeouts, connection errors, 429 (honouring ``Retry-After``) and 5xx are retried with backoff
  (tenacity), only inside the call's deadline and at most ``LLM_MAX_ATTEMPTS`` times; then
  ``LLMError(ERROR)``; other 4xx (a bad key, an unknown model) fail at once with ``ERROR``;
- the API key never appears in a record, a log line or an error: provider messages are redacted.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import openai
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from core.llm import CallOutcome, LLMAnswer, LLMCall, LLMCallRecord, LLMError, OutputT, Usage
from infrastructure.llm.budget import utc_now
from infrastructure.llm.calllog import summarize
from infrastructure.llm.metered import estimate_prompt_tokens, input_summary
from infrastructure.llm.settings import LLMSettings

MAX_PROBLEM_CHARS = 1000
"""Longest validation error quoted back to the model in the repair call."""

REPAIR_PROMPT = (
    "Your previous answer was not valid: {problem}\n"
    "Reply again with only the corrected JSON object that matches the required schema, no prose."
)

_KEY_PATTERN = re.compile(r"(sk|pk|rk|or|tgp)[-_][A-Za-z0-9_\-*.]{6,}")
_NAME_PATTERN = re.compile(r"[^A-Za-z0-9_-]")


class _SchemaFormatUnsupported(Exception):
    """The provider refused ``response_format: json_schema``."""


@dataclass(frozen=True, slots=True)
class _Completion:
    content: str
    usage: Usage
    started: datetime
    latency_s: float
    truncated: bool = False


def response_format_for(output: type[BaseModel]) -> dict[str, Any]:
    """The ``json_schema`` response format of an output model."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": _NAME_PATTERN.sub("_", output.__name__)[:64] or "answer",
            "schema": output.model_json_schema(),
            "strict": False,
        },
    }


def describe_validation_error(exc: ValidationError) -> str:
    """A short, model-readable account of what is wrong with an answer."""
    parts = []
    for err in exc.errors(include_url=False)[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "answer"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)[:MAX_PROBLEM_CHARS]


def strip_fences(text: str) -> str:
    """The JSON inside a Markdown code fence (some models add one in json_object mode)."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.removesuffix("```").strip()
    return stripped


def retry_after_seconds(exc: BaseException, now: datetime) -> float | None:
    """The wait a 429 asks for (``Retry-After`` seconds or HTTP date, or ``retry-after-ms``)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


class _PastDeadline(stop_base):
    """Stop when the next wait would end at or after the call's deadline."""

    def __init__(self, deadline: datetime, now: Callable[[], datetime]) -> None:
        self.deadline = deadline
        self.now = now

    def __call__(self, retry_state: RetryCallState) -> bool:
        upcoming = float(getattr(retry_state, "upcoming_sleep", 0.0) or 0.0)
        return (self.deadline - self.now()).total_seconds() <= upcoming + 0.05


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | openai.RateLimitError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


class OpenAIModel:
    """The ``openai`` provider: tier routing, JSON-schema answers, one repair call, retries."""

    provider = "openai"
    calls_per_ask = 2
    """A question may take two completions (the answer and one repair call): the budget reserves both."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        client: openai.AsyncOpenAI | None = None,
        now: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._secret = settings.require_api_key().get_secret_value()
        self._client = client or openai.AsyncOpenAI(
            api_key=self._secret, base_url=settings.base_url, max_retries=0, timeout=settings.timeout_s
        )
        self._now = now
        self._sleep = sleep
        self._json_object_models: set[str] = set()
        self.backoff = wait_exponential(multiplier=0.25, max=8.0) + wait_random(0, 0.25)

    def model_for(self, call: LLMCall) -> str:
        """The tier's model."""
        return self.settings.model_for(call.tier)

    def max_tokens(self, call: LLMCall) -> int:
        """The answer cap: the call's, never above the role's setting (``LLM_MAX_TOKENS``)."""
        return min(call.max_tokens, self.settings.max_tokens_for(call.role))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """Ask, validate, repair once; raise :class:`LLMError` (INVALID or ERROR) on failure."""
        model = self.model_for(call)
        messages: list[dict[str, str]] = [{"role": m.role, "content": m.content} for m in call.messages]
        records: list[LLMCallRecord] = []

        first = await self._complete(call, model, messages, output, records)
        value, problem = _validate(first, output)
        if value is not None:
            records.append(self._record(call, model, first, CallOutcome.OK))
            return LLMAnswer(value=value, usage=first.usage, model=model, records=tuple(records))
        records.append(self._record(call, model, first, CallOutcome.INVALID, f"{problem} (repair requested)"))

        repair = [
            *messages,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": REPAIR_PROMPT.format(problem=problem)},
        ]
        second = await self._complete(call, model, repair, output, records)
        usage = Usage(first.usage.tokens_in + second.usage.tokens_in, first.usage.tokens_out + second.usage.tokens_out)
        value, problem = _validate(second, output)
        if value is not None:
            records.append(self._record(call, model, second, CallOutcome.REPAIRED))
            return LLMAnswer(value=value, usage=usage, model=model, records=tuple(records))
        records.append(self._record(call, model, second, CallOutcome.INVALID, problem))
        raise LLMError(
            CallOutcome.INVALID,
            f"{call.role} answer of decision {call.decision_id} still invalid after the repair call: {problem}",
            tuple(records),
        )

    async def _complete(
        self,
        call: LLMCall,
        model: str,
        messages: list[dict[str, str]],
        output: type[BaseModel],
        records: list[LLMCallRecord],
    ) -> _Completion:
        """One completion, retried inside the deadline; a json_schema refusal switches the model to
        json_object once. A failure appends its record and raises ``LLMError(ERROR)``."""
        started, t0 = self._now(), time.monotonic()
        for _ in range(2):
            try:
                return await self._with_retries(call, model, messages, output, started, t0)
            except _SchemaFormatUnsupported:
                self._json_object_models.add(model)
            except LLMError as exc:
                failed = _Completion("", Usage(0, 0), started, time.monotonic() - t0)
                records.append(self._record(call, model, failed, CallOutcome.ERROR, exc.reason))
                raise LLMError(CallOutcome.ERROR, exc.reason, tuple(records)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _with_retries(
        self,
        call: LLMCall,
        model: str,
        messages: list[dict[str, str]],
        output: type[BaseModel],
        started: datetime,
        t0: float,
    ) -> _Completion:
        kwargs = self._request(call, model, messages, output)
        attempts = 0

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after_seconds(exc, self._now()) if exc is not None else None
            return asked if asked is not None else float(self.backoff(state))

        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=wait,
            stop=stop_any(stop_after_attempt(self.settings.max_attempts), _PastDeadline(call.deadline, self._now)),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    remaining = (call.deadline - self._now()).total_seconds()
                    if remaining <= 0:
                        raise LLMError(CallOutcome.ERROR, "the decision's deadline passed before the call")
                    response = await self._client.chat.completions.create(
                        **kwargs, timeout=min(self.settings.timeout_s, remaining)
                    )
                    return self._completion(response, messages, started, t0)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            if kwargs["response_format"]["type"] == "json_schema" and _mentions_format(exc):
                raise _SchemaFormatUnsupported from None
            raise LLMError(CallOutcome.ERROR, self._describe(exc, attempts)) from None
        except openai.OpenAIError as exc:
            reason = self._describe(exc, attempts)
            if _retryable(exc) and attempts < self.settings.max_attempts:
                reason += " (no retry fits before the deadline)"
            raise LLMError(CallOutcome.ERROR, reason) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(
        self, call: LLMCall, model: str, messages: list[dict[str, str]], output: type[BaseModel]
    ) -> dict[str, Any]:
        if self.settings.json_schema and model not in self._json_object_models:
            return {
                "model": model,
                "messages": messages,
                "max_tokens": self.max_tokens(call),
                "temperature": call.temperature,
                "response_format": response_format_for(output),
            }
        schema = json.dumps(output.model_json_schema(), separators=(",", ":"))
        guide = {"role": "system", "content": f"Answer with one JSON object matching this JSON schema: {schema}"}
        return {
            "model": model,
            "messages": [guide, *messages],
            "max_tokens": self.max_tokens(call),
            "temperature": call.temperature,
            "response_format": {"type": "json_object"},
        }

    def _completion(self, response: Any, messages: list[dict[str, str]], started: datetime, t0: float) -> _Completion:
        content, truncated = "", False
        if response.choices:
            content = response.choices[0].message.content or ""
            truncated = response.choices[0].finish_reason == "length"
        if response.usage is not None:
            usage = Usage(int(response.usage.prompt_tokens), int(response.usage.completion_tokens or 0))
        else:  # some compatible servers omit usage: count generously rather than not at all
            from core.llm import ChatMessage

            prompt = estimate_prompt_tokens([ChatMessage("user", m["content"]) for m in messages])
            usage = Usage(prompt, max(1, len(content.encode()) // 3))
        return _Completion(content, usage, started, time.monotonic() - t0, truncated)

    def _describe(self, exc: openai.OpenAIError, attempts: int) -> str:
        if isinstance(exc, openai.APITimeoutError):
            what = "timed out"
        elif isinstance(exc, openai.APIConnectionError):
            what = "could not connect"
        elif isinstance(exc, openai.APIStatusError):
            what = f"HTTP {exc.status_code} {type(exc).__name__}: {exc.message}"
        else:
            what = type(exc).__name__
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
        return self.redact(f"{self.provider} call {what}{tries}")[:500]

    def redact(self, text: str) -> str:
        """``text`` without the API key (or anything shaped like a key)."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return _KEY_PATTERN.sub("***", text)

    def _record(
        self, call: LLMCall, model: str, completion: _Completion, outcome: CallOutcome, error: str | None = None
    ) -> LLMCallRecord:
        from decimal import Decimal

        return LLMCallRecord(
            ts=completion.started,
            decision_id=call.decision_id,
            role=call.role,
            symbol=call.symbol,
            provider=self.provider,
            model=model,
            usage=completion.usage,
            cost_usd=Decimal(0),
            latency_s=completion.latency_s,
            outcome=outcome,
            input_summary=input_summary(call),
            output_summary=summarize(self.redact(completion.content)),
            error=self.redact(error) if error else None,
        )


def _validate(completion: _Completion, output: type[OutputT]) -> tuple[OutputT | None, str]:
    try:
        return output.model_validate_json(strip_fences(completion.content)), ""
    except ValidationError as exc:
        problem = describe_validation_error(exc)
        if completion.truncated:
            problem = f"the answer was cut off at the token limit, answer more briefly; {problem}"
        return None, problem[:MAX_PROBLEM_CHARS]


def _mentions_format(exc: openai.APIStatusError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return "response_format" in text or "json_schema" in text
