"""MeteredModel: the budget, the call log and the metrics around any :class:`LanguageModel`.

For every question: reserve the call's worst case from the daily budget (refused: no call, a
``budget`` record, :class:`BudgetExhausted`), ask the inner provider, settle the reservation with
the real usage, price each call from the price table, record it in the call log and count it in
Prometheus. Failures are recorded and counted too. The inner provider may be the OpenAI client, a
cassette, or the desk's offline ``rules`` provider: it only has to answer or raise
:class:`LLMError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from core.llm import (
    BudgetExhausted,
    CallLog,
    CallOutcome,
    ChatMessage,
    LanguageModel,
    LLMAnswer,
    LLMCall,
    LLMCallRecord,
    LLMError,
    OutputT,
    TokenBudget,
    Usage,
)
from core.logging import get_logger
from infrastructure.llm.budget import utc_now
from infrastructure.llm.calllog import summarize
from infrastructure.llm.prices import PriceTable
from infrastructure.observability import metrics

REPAIR_OVERHEAD_TOKENS = 400
"""Upper bound of the tokens a repair request adds besides the bad answer (the error it quotes)."""

_FAILED = frozenset({CallOutcome.INVALID, CallOutcome.ERROR, CallOutcome.BUDGET, CallOutcome.REPLAY_MISS})


@runtime_checkable
class RoutedModel(Protocol):
    """A provider that names the model a call goes to (for the reservation and the labels)."""

    def model_for(self, call: LLMCall) -> str:
        """The model name ``call`` is sent to."""
        ...


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """A generous estimate of the prompt's tokens: a token per 3 UTF-8 bytes plus the chat framing.

    Tokenisers average about 4 bytes a token on English and JSON; 3 keeps the reservation above
    the real usage without a tokeniser for every model.
    """
    return 3 + sum(4 + math.ceil(len(m.content.encode("utf-8")) / 3) for m in messages)


def reservation_tokens(call: LLMCall, calls_per_ask: int = 1) -> int:
    """The worst case of a question: each completion's prompt and answer cap; a repair call's
    prompt also carries the bad answer and the error it quotes."""
    prompt = estimate_prompt_tokens(call.messages)
    first = prompt + call.max_tokens
    repairs = max(0, calls_per_ask - 1)
    return first + repairs * (prompt + 2 * call.max_tokens + REPAIR_OVERHEAD_TOKENS)


def input_summary(call: LLMCall) -> str:
    """The logged summary of a call's input: prompt version and the last user message, cut short."""
    last = next((m.content for m in reversed(call.messages) if m.role == "user"), "")
    return summarize(f"[{call.prompt_version}] {last}")


class MeteredModel:
    """Wraps a provider with the daily budget, the call log, the price table and the metrics."""

    def __init__(
        self,
        inner: LanguageModel,
        budget: TokenBudget,
        log: CallLog,
        prices: PriceTable | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        instrument: bool = True,
    ) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.budget = budget
        self.log = log
        self.prices = prices or PriceTable()
        self._now = now
        self._metrics = metrics.Handles(enabled=instrument)
        self._logger = get_logger(__name__, component="llm")
        self._calls_per_ask = int(getattr(inner, "calls_per_ask", 1))

    async def close(self) -> None:
        """Close the inner provider's connections (when it has any)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()

    def model_for(self, call: LLMCall) -> str:
        """The inner provider's model for ``call`` (its provider name when it does not route)."""
        if isinstance(self.inner, RoutedModel):
            return self.inner.model_for(call)
        return self.provider

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """Reserve, ask, settle, log and count; raises :class:`BudgetExhausted` without calling
        when the budget cannot cover the reservation, and re-raises the provider's :class:`LLMError`
        with the priced records."""
        model = self.model_for(call)
        tokens = reservation_tokens(call, self._calls_per_ask)
        try:
            # A ledger that cannot answer before the deadline is as good as unreachable.
            remaining = max(0.1, (call.deadline - self._now()).total_seconds())
            reservation = await asyncio.wait_for(
                self.budget.reserve(tokens, role=call.role, model=model), timeout=remaining
            )
        except Exception as exc:
            record = self._record(
                call, model, CallOutcome.ERROR, error=f"token budget unavailable: {type(exc).__name__}"
            )
            await self._finish((record,), None)
            raise LLMError(CallOutcome.ERROR, record.error or "", (record,)) from exc
        if reservation is None:
            reason = (
                f"daily token budget exhausted: {call.role} of decision {call.decision_id} needs up to {tokens} tokens"
            )
            record = self._record(call, model, CallOutcome.BUDGET, error=reason)
            await self._finish((record,), None)
            refused = BudgetExhausted(reason)
            refused.records = (record,)
            raise refused

        started = time.monotonic()
        try:
            answer = await self.inner.ask(call, output)
        except LLMError as exc:
            records = self._priced(exc.records) or (
                self._record(call, model, exc.outcome, error=exc.reason, latency_s=time.monotonic() - started),
            )
            await self._finish(records, reservation)
            exc.records = records
            raise
        except Exception as exc:
            reason = f"{self.provider} provider failed: {type(exc).__name__}"
            record = self._record(call, model, CallOutcome.ERROR, error=reason, latency_s=time.monotonic() - started)
            await self._finish((record,), reservation)
            raise LLMError(CallOutcome.ERROR, reason, (record,)) from exc
        except asyncio.CancelledError:
            # What a cancelled call spent is unknown: its reservation stays held for the day
            # (conservative). Pass a deadline in the LLMCall instead of cancelling.
            record = self._record(
                call,
                model,
                CallOutcome.ERROR,
                error="cancelled before the answer (its reservation stays held)",
                latency_s=time.monotonic() - started,
            )
            await asyncio.shield(self._finish((record,), None))
            raise

        records = self._priced(answer.records) or (
            self._record(
                call,
                answer.model,
                CallOutcome.OK,
                usage=answer.usage,
                latency_s=time.monotonic() - started,
                output=answer.value.model_dump_json(),
            ),
        )
        await self._finish(records, reservation)
        return dataclasses.replace(answer, records=records)

    def _record(
        self,
        call: LLMCall,
        model: str,
        outcome: CallOutcome,
        *,
        usage: Usage | None = None,
        latency_s: float = 0.0,
        output: str = "",
        error: str | None = None,
    ) -> LLMCallRecord:
        usage = usage or Usage(0, 0)
        return LLMCallRecord(
            ts=self._now(),
            decision_id=call.decision_id,
            role=call.role,
            symbol=call.symbol,
            provider=self.provider,
            model=model,
            usage=usage,
            cost_usd=self.prices.cost(model, usage),
            latency_s=latency_s,
            outcome=outcome,
            input_summary=input_summary(call),
            output_summary=summarize(output),
            error=error,
        )

    def _priced(self, records: tuple[LLMCallRecord, ...]) -> tuple[LLMCallRecord, ...]:
        return tuple(dataclasses.replace(r, cost_usd=self.prices.cost(r.model, r.usage)) for r in records)

    async def _finish(self, records: tuple[LLMCallRecord, ...], reservation: str | None) -> None:
        """Settle the reservation, log and count the records. A failing ledger or log is reported
        and does not lose the answer (the reservation then stays held for the day: conservative)."""
        if reservation is not None:
            usage = Usage(sum(r.usage.tokens_in for r in records), sum(r.usage.tokens_out for r in records))
            try:
                await self.budget.settle(reservation, usage, sum((r.cost_usd for r in records), Decimal(0)))
            except Exception as exc:  # noqa: BLE001 - accounting must not lose the answer
                self._logger.warning("llm_budget_settle_failed", error=type(exc).__name__, reservation=reservation)
        for record in records:
            try:
                await self.log.record(record)
            except Exception as exc:  # noqa: BLE001 - accounting must not lose the answer
                self._logger.warning("llm_call_log_failed", error=type(exc).__name__, decision_id=record.decision_id)
            self._count(record)
        final = records[-1]
        if final.outcome in _FAILED:
            self._metrics(metrics.LLM_FAILURES, final.role, final.model, final.outcome.value).inc()
            self._logger.warning(
                "llm_call_failed",
                decision_id=final.decision_id,
                role=final.role,
                model=final.model,
                outcome=final.outcome.value,
                reason=final.error,
            )

    def _count(self, record: LLMCallRecord) -> None:
        if record.outcome is CallOutcome.BUDGET:
            return  # no call was made (counted as a failure only)
        h = self._metrics
        h(metrics.LLM_CALLS, record.role, record.model, record.outcome.value).inc()
        h(metrics.LLM_TOKENS, record.role, record.model, "in").inc(record.usage.tokens_in)
        h(metrics.LLM_TOKENS, record.role, record.model, "out").inc(record.usage.tokens_out)
        h(metrics.LLM_COST, record.role, record.model).inc(float(record.cost_usd))
        h(metrics.LLM_LATENCY, record.role, record.model).observe(record.latency_s)
