"""Wiring of the desk: its language model, its inputs, its store.

The model: the LLM client's factory (``infrastructure.llm.factory.build_language_model``) builds the
configured provider (``LLM_PROVIDER``: ``openai``, ``replay``, ``record`` or ``rules``) with the daily
budget and the call log; until that layer is installed, or with ``LLM_PROVIDER`` unset, the desk
runs on the offline rules provider (:mod:`agents.desk.rules`).
"""

from __future__ import annotations

import importlib
from typing import Any

from agents.base import AgentContext
from agents.desk.pipeline import Desk
from agents.desk.rules import RulesModel
from agents.desk.settings import DeskSettings
from core.desk.inputs import DeskInputs
from core.desk.store import DeskStore
from core.llm import LanguageModel
from core.settings import Settings
from infrastructure.feeds.desk_files import DEFAULT_DESK_DATA, DeskDataFiles


def desk_inputs(settings: DeskSettings) -> DeskInputs:
    """The file inputs (``TRADESWARM_DESK_DATA_DIR``, default ``data/desk``)."""
    return DeskDataFiles(root=settings.data_dir or DEFAULT_DESK_DATA).load()


def language_model(provider: str | None = None) -> LanguageModel:
    """The configured model: ``rules`` offline by default, else the LLM client's factory."""
    if provider in (None, "", "rules"):
        return RulesModel()
    try:
        factory: Any = importlib.import_module("infrastructure.llm.factory")
        llm_settings: Any = importlib.import_module("infrastructure.llm.settings")
    except ModuleNotFoundError:
        from core.errors import ConfigurationError

        raise ConfigurationError(
            f"LLM provider {provider!r} needs the LLM client layer (infrastructure.llm); use 'rules'"
        ) from None
    settings = llm_settings.LLMSettings(provider=provider)
    model: LanguageModel = factory.build_language_model(settings, rules=RulesModel(), budget=None, log=None)
    return model


def build_desk(settings: DeskSettings, base: Settings, model: LanguageModel | None = None) -> Desk:
    """The desk pipeline with its inputs and limits."""
    import os

    return Desk(
        model if model is not None else language_model(os.environ.get("LLM_PROVIDER")),
        desk_inputs(settings),
        limits=settings.limits(),
        deadline_s=settings.deadline_s,
        blind=settings.blind,
    )


async def postgres_store(ctx: AgentContext) -> tuple[DeskStore, list[Any]]:
    """The PostgreSQL desk store (migrations applied) and the pool to close at stop."""
    from infrastructure.database.timescale import Database, apply_migrations
    from infrastructure.database.timescale.desk_store import PostgresDeskStore

    db = Database(ctx.settings.postgres_dsn.get_secret_value())
    await db.connect()
    await apply_migrations(db)
    return PostgresDeskStore(db), [db]
