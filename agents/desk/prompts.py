"""The desk's versioned prompt templates (``agents/desk/prompts/<role>.v<N>.txt``).

A template is the system message; ``{schema}`` is replaced by the JSON schema of the role's output
model. The user message is the role's input as one JSON object (numbers rounded, summaries only)
after the line :data:`INPUT_MARKER`, so every provider, the offline ``rules`` one included, reads
exactly the same input. Changing a template means adding a new version file and bumping
:data:`PROMPT_VERSIONS`: a replay cassette keyed on the old text then misses loudly.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from core.desk.roles import OUTPUT_MODELS, Role
from core.llm import ChatMessage

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
INPUT_MARKER = "Input (JSON):"

PROMPT_VERSIONS: dict[Role, str] = {role: f"{role.value}.v1" for role in Role}
"""The template version each role uses (the file ``prompts/<version>.txt``)."""


class PromptInputError(ValueError):
    """A user message without a JSON input after :data:`INPUT_MARKER`."""


@cache
def template(version: str) -> str:
    """The text of template ``version`` (``technical.v1``)."""
    return (PROMPTS_DIR / f"{version}.txt").read_text(encoding="utf-8")


@cache
def _schema(role: Role) -> str:
    return json.dumps(OUTPUT_MODELS[role].model_json_schema(), sort_keys=True, separators=(",", ":"))


def render(role: Role, payload: dict[str, Any]) -> tuple[ChatMessage, ...]:
    """The system and user messages of ``role`` for ``payload`` (deterministic: sorted keys)."""
    system = template(PROMPT_VERSIONS[role]).replace("{schema}", _schema(role))
    user = f"{INPUT_MARKER}\n{json.dumps(payload, sort_keys=True, separators=(',', ':'), ensure_ascii=False)}"
    return (ChatMessage("system", system), ChatMessage("user", user))


def input_of(messages: tuple[ChatMessage, ...]) -> dict[str, Any]:
    """The JSON input of a rendered call (the last user message)."""
    for message in reversed(messages):
        if message.role == "user" and INPUT_MARKER in message.content:
            text = message.content.split(INPUT_MARKER, 1)[1]
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise PromptInputError(f"the input is not JSON: {exc}") from None
            if not isinstance(value, dict):
                raise PromptInputError("the input is not a JSON object")
            return value
    raise PromptInputError(f"no user message with {INPUT_MARKER!r}")
