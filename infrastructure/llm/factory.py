"""Builds the desk's :class:`LanguageModel` from :class:`LLMSettings`: the provider, wrapped in
:class:`MeteredModel` (budget, call log, price table, metrics).

``rules`` is the desk's offline provider (passed in: this package does not import agents);
``openai`` talks to any OpenAI-compatible endpoint; ``replay`` answers from a cassette; ``record``
calls ``openai`` and writes the cassette. Without a budget or a log, in-memory ones are used (the
backtest and the embedded run); the processes of a stack pass the PostgreSQL ones.
"""

from __future__ import annotations

from core.errors import ConfigurationError
from core.llm import CallLog, LanguageModel, TokenBudget
from infrastructure.database.timescale.migrate import apply_migrations
from infrastructure.database.timescale.pool import Database
from infrastructure.llm.budget import InMemoryTokenBudget, PostgresTokenBudget
from infrastructure.llm.calllog import InMemoryCallLog, PostgresCallLog
from infrastructure.llm.metered import MeteredModel
from infrastructure.llm.settings import LLMSettings


def build_provider(settings: LLMSettings, *, rules: LanguageModel | None = None) -> LanguageModel:
    """The bare provider the settings name (not metered)."""
    if settings.provider == "rules":
        if rules is None:
            raise ConfigurationError("LLM_PROVIDER=rules needs the desk's rules provider")
        return rules
    from infrastructure.llm.cassette import RecordingModel, ReplayModel
    from infrastructure.llm.openai_model import OpenAIModel

    if settings.provider == "openai":
        return OpenAIModel(settings)
    if settings.cassette is None:  # pragma: no cover - the settings refuse replay/record without one
        raise ConfigurationError(f"LLM_PROVIDER={settings.provider} needs LLM_CASSETTE")
    if settings.provider == "replay":
        return ReplayModel(settings.cassette, settings)
    return RecordingModel(OpenAIModel(settings), settings.cassette)


def build_language_model(
    settings: LLMSettings,
    *,
    rules: LanguageModel | None = None,
    budget: TokenBudget | None = None,
    log: CallLog | None = None,
    instrument: bool = True,
) -> MeteredModel:
    """The configured provider behind the budget, the call log, the prices and the metrics."""
    return MeteredModel(
        build_provider(settings, rules=rules),
        budget if budget is not None else InMemoryTokenBudget(settings.daily_token_budget),
        log if log is not None else InMemoryCallLog(),
        settings.price_table(),
        instrument=instrument,
    )


async def open_postgres_ledgers(
    dsn: str, daily_tokens: int, *, retry_for_s: float = 60.0
) -> tuple[Database, PostgresTokenBudget, PostgresCallLog]:
    """Connect to PostgreSQL, apply the migrations (003 holds the budget and ``agent_logs``) and
    return the shared budget and call log of a stack process. Close the database when done."""
    db = Database(dsn, retry_for_s=retry_for_s)
    await db.connect()
    await apply_migrations(db)
    return db, PostgresTokenBudget(db, daily_tokens), PostgresCallLog(db)


async def connect_language_model(
    settings: LLMSettings,
    *,
    rules: LanguageModel | None = None,
    dsn: str | None = None,
    instrument: bool = True,
) -> tuple[MeteredModel, Database | None]:
    """The model of a long-running process (the desk agent, the API): with ``dsn``, on the shared
    PostgreSQL budget and ``agent_logs`` (migrations applied); without, on in-memory ones. Returns
    the database to close at stop (None without ``dsn``); close the model too (``await model.close()``)."""
    if dsn is None:
        return build_language_model(settings, rules=rules, instrument=instrument), None
    db, budget, log = await open_postgres_ledgers(dsn, settings.daily_token_budget)
    try:
        model = build_language_model(settings, rules=rules, budget=budget, log=log, instrument=instrument)
    except BaseException:
        await db.close()
        raise
    return model, db
