"""Adapters of the language-model port (:mod:`core.llm`): the OpenAI-compatible client, cassettes,
the token budgets, the call logs and the metered wrapper. See ``docs/llm.md``."""
