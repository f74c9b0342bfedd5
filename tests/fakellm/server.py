"""A fake OpenAI-compatible chat-completions server on loopback, for tests through real HTTP.

``POST /v1/chat/completions`` answers like OpenAI does (``choices``, ``usage`` with realistic token
counts: about 4 characters a token). By default the answer is a minimal valid instance of the
``response_format`` JSON schema (or :attr:`FakeLLM.default_answer`: a value, or a function of the
request body); queue behaviours to get, one request each: a given answer, malformed JSON,
schema-violating JSON, 429 with ``Retry-After``, a 5xx, a slow answer or an answer cut at the
token limit; ``supports_json_schema = False`` refuses ``json_schema`` response formats. Every
request is kept in :attr:`FakeLLM.requests` (body and headers) for the test to inspect.

Run it alone with ``python -m tests.fakellm --port 8089`` (for a manual desk run).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakellm.schema_instance import instance_from_schema

DEFAULT_KEY = "sk-fake-0123456789abcdef"


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request."""

    kind: str
    content: str | None = None
    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0


def answer(value: Any) -> Behaviour:
    """Answer with ``value`` as JSON (a str is sent as it is)."""
    return Behaviour("answer", content=value if isinstance(value, str) else json.dumps(value))


def malformed() -> Behaviour:
    """Answer with text that is not JSON."""
    return Behaviour("answer", content='{"trend": "up", "momentum": ')


def schema_violation(value: Any | None = None) -> Behaviour:
    """Answer with JSON that breaks the schema (an unknown enum value by default)."""
    return Behaviour("answer", content=json.dumps(value if value is not None else {"trend": "moon"}))


def truncated() -> Behaviour:
    """An answer cut at the token limit (``finish_reason: length``)."""
    return Behaviour("truncated", content='{"trend": "up", "momentum": "str')


def rate_limited(retry_after: float | str = 1) -> Behaviour:
    """429 with a ``Retry-After`` header (seconds, or an HTTP date as a string)."""
    return Behaviour("error", status=429, retry_after=str(retry_after))


def server_error(status: int = 500) -> Behaviour:
    """A 5xx error."""
    return Behaviour("error", status=status)


def slow(delay_s: float, then: Behaviour | None = None) -> Behaviour:
    """Wait ``delay_s`` before answering (with ``then``, or the default answer)."""
    inner = then or Behaviour("default")
    return Behaviour(inner.kind, content=inner.content, status=inner.status, delay_s=delay_s)


def tokens_of(text: str) -> int:
    """About 4 characters a token, like the common tokenisers on English and JSON."""
    return max(1, math.ceil(len(text) / 4))


@dataclass
class FakeLLM:
    """The server. ``await start()``, point the client at :attr:`base_url`, ``await close()``."""

    api_key: str = DEFAULT_KEY
    supports_json_schema: bool = True
    default_answer: Any = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: deque[Behaviour] = field(default_factory=deque)
    port: int = 0
    _runner: web.AppRunner | None = None

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with ``behaviours``, in order (then the default again)."""
        self.script.extend(behaviours)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def completions(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completion requests received."""
        return [r["body"] for r in self.requests]

    async def start(self, port: int = 0) -> FakeLLM:
        """Listen on 127.0.0.1 (any free port by default)."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return _error(401, f"Incorrect API key provided: {given}.", "invalid_api_key")
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema" and not self.supports_json_schema:
            return _error(400, "response_format json_schema is not supported by this model", "invalid_request_error")
        behaviour = self.script.popleft() if self.script else Behaviour("default")
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        if behaviour.kind == "error":
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after is not None else None
            return _error(behaviour.status, f"fake error {behaviour.status}", "server_error", headers)
        replay = behaviour.kind in ("answer", "truncated")
        content = behaviour.content if replay else self._default_content(body)
        assert content is not None
        prompt = sum(4 + tokens_of(str(m.get("content", ""))) for m in body.get("messages", [])) + 3
        completion = tokens_of(content)
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "length" if behaviour.kind == "truncated" else "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    def _default_content(self, body: dict[str, Any]) -> str:
        fmt = body.get("response_format") or {}
        answer = self.default_answer(body) if callable(self.default_answer) else self.default_answer
        if answer is not None:
            return answer if isinstance(answer, str) else json.dumps(answer)
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema is None:
            return json.dumps({"answer": "ok"})
        return json.dumps(instance_from_schema(schema))


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": code, "param": None, "code": code}}, status=status, headers=headers
    )
