"""``build(ctx)``: the orchestrator with its REST API, its database read model and backtest jobs."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

from agents.base import Agent, AgentContext
from agents.orchestrator.agent import OrchestratorAgent
from agents.orchestrator.commands import TradingMode
from agents.orchestrator.intent import IntentStore, TradingIntent
from agents.orchestrator.settings import OrchestratorSettings
from core.errors import UnroutableMessage
from core.messages import Payload
from infrastructure.api.app import create_app
from infrastructure.api.desk import DeskAnalyzer, DeskApi
from infrastructure.api.jobs import BacktestJobs
from infrastructure.api.ports import BacktestRunner
from infrastructure.api.queries import PostgresReadModel
from infrastructure.api.queues import management_queue_depths, vhost_of
from infrastructure.api.schemas import SnapshotView
from infrastructure.api.server import ApiServer
from infrastructure.database.timescale.control_store import PostgresIntentStore
from infrastructure.database.timescale.desk_store import PostgresDeskStore
from infrastructure.database.timescale.migrate import apply_migrations
from infrastructure.database.timescale.pool import Database
from infrastructure.database.timescale.reviews import PostgresReviewStore


class DatabaseService:
    """Opens the pool with the agent and closes it after (the API's PostgreSQL access and the review
    queue, whose table the orchestrator migrates)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self) -> None:
        """Connect (retrying while PostgreSQL is unreachable) and apply the pending migrations."""
        await self.db.connect()
        await apply_migrations(self.db)

    async def stop(self) -> None:
        """Close the pool."""
        await self.db.close()


class JobsService:
    """Cancels running backtest jobs at shutdown."""

    def __init__(self, jobs: BacktestJobs) -> None:
        self.jobs = jobs

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Cancel the running jobs."""
        await self.jobs.close()


def load_backtest_runner(spec: str, data_dir: Path) -> BacktestRunner | None:
    """The runner named by ``module:factory`` (None for an empty spec or a build without it).

    Resolved by name at run time: the backtester runs every agent in-process, and the orchestrator
    must not depend on the other agents' code.
    """
    if not spec:
        return None
    module_name, _, factory_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise
    factory = getattr(module, factory_name)
    return cast(BacktestRunner, factory(data_dir))


class ClosingService:
    """Closes something that holds connections (the desk analyzer's model and database) at stop."""

    def __init__(self, resource: object) -> None:
        self.resource = resource

    async def start(self) -> None:
        """Nothing to start (it connects on first use)."""

    async def stop(self) -> None:
        """Close it when it can be closed."""
        close = getattr(self.resource, "close", None)
        if close is not None:
            await close()


def load_desk_api(spec: str, data_dir: Path, db: Database, agent: OrchestratorAgent) -> DeskApi:
    """The desk endpoints' store (PostgreSQL) and analyzer (``module:factory``, resolved by name so the
    orchestrator never imports the desk's code; None when empty or not in this build)."""
    store = PostgresDeskStore(db)
    if not spec:
        return DeskApi(store)
    module_name, _, factory_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return DeskApi(store)
        raise

    async def publish(payload: Payload) -> None:
        try:
            await agent.publish(payload)
        except UnroutableMessage:
            agent.log.debug("desk event unroutable: no consumer is bound", type=type(payload).__name__)

    def latest(symbol: str, limit: int) -> list[SnapshotView]:
        return agent.market_latest(symbol, None, None, limit)

    analyzer = cast(DeskAnalyzer, getattr(module, factory_name)(data_dir, store, publish, latest))
    return DeskApi(store, analyzer)


class PostgresIntents:
    """The orchestrator's :class:`~agents.orchestrator.intent.IntentStore` on PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.rows = PostgresIntentStore(db)

    async def load(self) -> TradingIntent | None:
        """See the port."""
        row = await self.rows.load()
        if row is None:
            return None
        return TradingIntent(
            TradingMode(row["mode"]), row["changed_at"], row["command_id"], row["reason"], row["issued_by"]
        )

    async def save(self, intent: TradingIntent) -> None:
        """See the port."""
        await self.rows.save(intent.mode.value, intent.changed_at, intent.command_id, intent.reason, intent.issued_by)


async def build(ctx: AgentContext) -> Agent:
    """The orchestrator agent; with ``TRADESWARM_ORCHESTRATOR_API_ENABLED`` it serves the API and keeps
    the review queue in PostgreSQL (without the API, in memory: nobody could decide a review anyway).

    With ``state_store=postgres`` (the default) the intended trading state is kept in PostgreSQL
    (migrations applied first), so a HALT outlives the orchestrator process."""
    settings = OrchestratorSettings()
    db: Database | None = None
    intents: IntentStore | None = None
    if settings.state_store == "postgres" or settings.api_enabled:
        db = Database(ctx.settings.postgres_dsn.get_secret_value(), min_size=1, max_size=4)
    if settings.state_store == "postgres":
        assert db is not None
        await db.connect()
        await apply_migrations(db)
        intents = PostgresIntents(db)
    reviews = PostgresReviewStore(db) if settings.api_enabled and db is not None else None
    agent = OrchestratorAgent(ctx, settings, reviews=reviews, intent_store=intents)
    if db is not None:
        agent.services.append(DatabaseService(db))  # closed with the agent (connect is idempotent)
    if not settings.api_enabled:
        return agent
    assert db is not None
    runner = load_backtest_runner(settings.backtest_runner, settings.backtest_data_dir)
    jobs = BacktestJobs(runner, workers=settings.backtest_workers, now=ctx.clock.now) if runner is not None else None
    desk = load_desk_api(settings.desk_analyzer, settings.backtest_data_dir, db, agent)
    if desk.analyzer is not None:
        agent.services.append(ClosingService(desk.analyzer))
    management = settings.rabbitmq_management_url
    queues = (
        management_queue_depths(management.get_secret_value(), vhost_of(ctx.settings.rabbitmq_url.get_secret_value()))
        if management is not None and management.get_secret_value()
        else None
    )
    links = {"rabbitmq": settings.rabbitmq_ui_url, "grafana": settings.grafana_url}
    app = create_app(
        agent, PostgresReadModel(db), jobs, api_token=ctx.settings.api_token, desk=desk, events=agent.events,
        queues=queues, links=links,
    )  # fmt: skip
    if jobs is not None:
        agent.services.append(JobsService(jobs))
    agent.services.append(ApiServer(app, settings.api_host, settings.api_port))
    agent.services.append(agent.events)  # stopped first: ends the open event streams
    return agent
