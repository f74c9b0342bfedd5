"""The AI analyst desk: LLM analysts -> researcher -> trader -> risk manager (see docs/agents/desk.md)."""
