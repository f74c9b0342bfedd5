"""A fake OpenAI-compatible server for the LLM client's tests (and the desk's): see ``server.py``.

Use the ``fake_llm`` fixture (``tests/conftest.py``) or ``await FakeLLM().start()``.
"""

from tests.fakellm.server import (
    DEFAULT_KEY,
    Behaviour,
    FakeLLM,
    answer,
    malformed,
    rate_limited,
    schema_violation,
    server_error,
    slow,
    truncated,
)

__all__ = [
    "DEFAULT_KEY",
    "Behaviour",
    "FakeLLM",
    "answer",
    "malformed",
    "rate_limited",
    "schema_violation",
    "server_error",
    "slow",
    "truncated",
]
