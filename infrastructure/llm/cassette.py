"""Cassettes: record a real provider's answers once, replay them for free and bit for bit.

A cassette is a JSON-lines file, one line per question: its key (a SHA-256 of the model, the
messages and the parameters: answer cap, temperature and the output model's JSON schema), the
decision and role it was asked for, and what came back: the validated answer with its usage and
records, or the failure (outcome and reason). :class:`RecordingModel` wraps a real provider and
appends a line per question; :class:`ReplayModel` answers from the file and never touches the
network. A question the cassette does not hold raises ``LLMError(REPLAY_MISS)`` naming the
decision. The same question asked several times replays its recordings in order (the last one
again when they run out), so a run replays exactly as it was recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.errors import ConfigurationError
from core.llm import CallOutcome, LanguageModel, LLMAnswer, LLMCall, LLMCallRecord, LLMError, OutputT, Usage
from infrastructure.llm.budget import utc_now
from infrastructure.llm.metered import RoutedModel
from infrastructure.llm.settings import LLMSettings

CASSETTE_VERSION = 1


def cassette_key(model: str, call: LLMCall, output: type[BaseModel]) -> str:
    """The SHA-256 of everything that shapes the answer: model, messages and parameters."""
    canonical = {
        "v": CASSETTE_VERSION,
        "model": model,
        "messages": [[m.role, m.content] for m in call.messages],
        "max_tokens": call.max_tokens,
        "temperature": call.temperature,
        "output": output.model_json_schema(),
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _record_to_json(record: LLMCallRecord) -> dict[str, Any]:
    return {
        "ts": record.ts.isoformat(),
        "model": record.model,
        "tokens_in": record.usage.tokens_in,
        "tokens_out": record.usage.tokens_out,
        "latency_s": record.latency_s,
        "outcome": record.outcome.value,
        "input_summary": record.input_summary,
        "output_summary": record.output_summary,
        "error": record.error,
    }


def _record_from_json(data: dict[str, Any], call: LLMCall, provider: str) -> LLMCallRecord:
    return LLMCallRecord(
        ts=datetime.fromisoformat(data["ts"]),
        decision_id=call.decision_id,
        role=call.role,
        symbol=call.symbol,
        provider=provider,
        model=data["model"],
        usage=Usage(int(data["tokens_in"]), int(data["tokens_out"])),
        cost_usd=Decimal(0),
        latency_s=float(data["latency_s"]),
        outcome=CallOutcome(data["outcome"]),
        input_summary=data["input_summary"],
        output_summary=data["output_summary"],
        error=data["error"],
    )


def _model_of(provider: LanguageModel, call: LLMCall) -> str:
    return provider.model_for(call) if isinstance(provider, RoutedModel) else provider.provider


class RecordingModel:
    """Asks ``inner`` (a real provider) and appends every question and its outcome to the cassette."""

    def __init__(self, inner: LanguageModel, path: Path) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.path = path
        self.calls_per_ask = int(getattr(inner, "calls_per_ask", 1))
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        """Close the inner provider's connections (when it has any)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()

    def model_for(self, call: LLMCall) -> str:
        """The inner provider's model."""
        return _model_of(self.inner, call)

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """Ask the real provider, write the cassette line, return (or raise) what it gave."""
        model = self.model_for(call)
        entry: dict[str, Any] = {
            "key": cassette_key(model, call, output),
            "decision_id": call.decision_id,
            "role": call.role,
            "model": model,
            "prompt_version": call.prompt_version,
        }
        try:
            answer = await self.inner.ask(call, output)
        except LLMError as exc:
            entry.update(
                outcome=exc.outcome.value, reason=exc.reason, records=[_record_to_json(r) for r in exc.records]
            )
            self._append(entry)
            raise
        entry.update(
            outcome="answer",
            value=answer.value.model_dump(mode="json"),
            answer_model=answer.model,
            usage=[answer.usage.tokens_in, answer.usage.tokens_out],
            records=[_record_to_json(r) for r in answer.records],
        )
        self._append(entry)
        return answer

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)


class ReplayModel:
    """Answers from a cassette: no network, no key, the recorded answers in the recorded order."""

    provider = "replay"
    calls_per_ask = 2
    """A recorded question may have taken a repair call: the budget reserves for two completions."""

    def __init__(self, path: Path, settings: LLMSettings, *, now: Callable[[], datetime] = utc_now) -> None:
        self.path = path
        self.settings = settings
        self._now = now
        self._entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._served: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(f"cassette {self.path} cannot be read: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._entries[entry["key"]].append(entry)
            except (ValueError, KeyError, TypeError):
                raise ConfigurationError(f"cassette {self.path} line {number} is not a recorded call") from None

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def model_for(self, call: LLMCall) -> str:
        """The tier's model (part of the key: a cassette replays only the models it recorded)."""
        return self.settings.model_for(call.tier)

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """The recorded answer (or the recorded failure); ``LLMError(REPLAY_MISS)`` when absent."""
        model = self.model_for(call)
        key = cassette_key(model, call, output)
        with self._lock:
            recorded = self._entries.get(key)
            if not recorded:
                entry = None
            else:
                entry = recorded[min(self._served[key], len(recorded) - 1)]
                self._served[key] += 1
        if entry is None:
            raise LLMError(
                CallOutcome.REPLAY_MISS,
                f"cassette {self.path.name} has no recording of the {call.role} call of decision "
                f"{call.decision_id} (model {model}, prompt {call.prompt_version}, key {key[:16]}); "
                "record it with LLM_PROVIDER=record",
            )
        records = tuple(
            dataclasses.replace(_record_from_json(r, call, self.provider), ts=self._now()) for r in entry["records"]
        )
        if entry["outcome"] != "answer":
            raise LLMError(CallOutcome(entry["outcome"]), entry["reason"], records)
        tokens_in, tokens_out = entry["usage"]
        return LLMAnswer(
            value=output.model_validate(entry["value"]),
            usage=Usage(int(tokens_in), int(tokens_out)),
            model=entry["answer_model"],
            records=records,
        )
