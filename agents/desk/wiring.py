"""Wiring of the desk: its language model, its inputs, its store.

The model comes from the LLM client's factory (:mod:`infrastructure.llm.factory`): the provider
``LLM_PROVIDER`` names (``rules`` by default: the desk's offline provider, :mod:`agents.desk.rules`;
``openai``, ``replay``, ``record``) behind the daily token budget, the call log (``agent_logs``), the
price table and the metrics. A stack process uses the PostgreSQL budget and log shared by every
process; backtests, the embedded run and ``tradeswarm analyze`` use in-memory ones.
"""

from __future__ import annotations

from typing import Any

from agents.base import AgentContext
from agents.desk.pipeline import Desk
from agents.desk.rules import RulesModel
from agents.desk.settings import DeskSettings
from core.desk.inputs import DeskInputs
from core.desk.roles import Role
from core.desk.store import DeskStore
from core.llm import LanguageModel
from core.settings import Settings
from infrastructure.feeds.desk_files import DEFAULT_DESK_DATA, DeskDataFiles
from infrastructure.llm.factory import build_language_model, connect_language_model
from infrastructure.llm.settings import LLMSettings, load_llm_settings


def desk_inputs(settings: DeskSettings) -> DeskInputs:
    """The file inputs (``TRADESWARM_DESK_DATA_DIR``, default ``data/desk``)."""
    return DeskDataFiles(root=settings.data_dir or DEFAULT_DESK_DATA).load()


def llm_settings(provider: str | None = None) -> LLMSettings:
    """The LLM settings from the environment, with ``provider`` over ``LLM_PROVIDER`` when given."""
    return load_llm_settings(provider=provider) if provider else load_llm_settings()


def language_model(provider: str | None = None, *, instrument: bool = False) -> LanguageModel:
    """The configured model on in-memory ledgers (backtests, the embedded run, ``analyze``)."""
    return build_language_model(llm_settings(provider), rules=RulesModel(), instrument=instrument)


def build_desk(
    settings: DeskSettings, base: Settings, model: LanguageModel | None = None, llm: LLMSettings | None = None
) -> Desk:
    """The desk pipeline with its inputs, limits and the per-role answer caps of the LLM settings."""
    llm = llm or llm_settings()
    return Desk(
        model if model is not None else language_model(),
        desk_inputs(settings),
        limits=settings.limits(),
        max_tokens={role: llm.max_tokens_for(role.value) for role in Role},
        deadline_s=settings.deadline_s,
        blind=settings.blind,
    )


async def connected_desk(settings: DeskSettings, ctx: AgentContext) -> tuple[Desk, list[Any]]:
    """The desk of a stack process: its model on the shared PostgreSQL budget and call log; returns
    the resources to close at stop (the model, the database)."""
    llm = llm_settings()
    model, db = await connect_language_model(
        llm, rules=RulesModel(), dsn=ctx.settings.postgres_dsn.get_secret_value(), instrument=ctx.instrument
    )
    return build_desk(settings, ctx.settings, model, llm), [model, *([db] if db is not None else [])]


async def postgres_store(ctx: AgentContext) -> tuple[DeskStore, list[Any]]:
    """The PostgreSQL desk store (migrations applied) and the pool to close at stop."""
    from infrastructure.database.timescale import Database, apply_migrations
    from infrastructure.database.timescale.desk_store import PostgresDeskStore

    db = Database(ctx.settings.postgres_dsn.get_secret_value())
    await db.connect()
    await apply_migrations(db)
    return PostgresDeskStore(db), [db]
