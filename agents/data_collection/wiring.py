"""Builds the data collection agent from settings: its source (ccxt / replay / synthetic) and store."""

from __future__ import annotations

from agents.base import Agent, AgentContext
from agents.data_collection.agent import DataCollectionAgent
from agents.data_collection.settings import DataCollectionSettings
from core.gateway import MarketDataSource, TickStore
from core.settings import Settings


def make_source(settings: Settings, config: DataCollectionSettings, ctx: AgentContext) -> tuple[MarketDataSource, str]:
    """The configured market-data source and the venue name its candles carry."""
    if config.source == "replay":
        from infrastructure.feeds import ReplaySource

        assert config.replay_path is not None  # checked by the settings
        return ReplaySource(
            config.replay_path,
            venue=settings.exchange,
            speed=config.replay_speed,
            start=config.replay_start,
            end=config.replay_end,
        ), settings.exchange
    if config.source == "synthetic":
        from infrastructure.feeds import SyntheticSource

        return SyntheticSource(
            venue="synthetic",
            seed=config.synthetic_seed,
            start=config.synthetic_start,
            count=config.synthetic_count,
            initial_price=config.synthetic_price,
            mu=config.synthetic_mu,
            sigma=config.synthetic_sigma,
            speed=config.replay_speed,
        ), "synthetic"
    from infrastructure.gateway import CcxtGateway

    return CcxtGateway(
        settings.exchange,
        clock=ctx.clock,
        urls=config.api_urls or None,
        rate_per_s=config.rate_limit_per_s,
        close_grace_ms=config.close_grace_ms,
    ), settings.exchange


def make_store(settings: Settings) -> TickStore:
    """The InfluxDB tick store of the settings (``TRADESWARM_INFLUX_API`` = v2 or v1)."""
    from infrastructure.database.influx import tick_store_from_settings

    return tick_store_from_settings(
        settings.influx_api,
        settings.influx_url,
        token=settings.influx_token.get_secret_value(),
        org=settings.influx_org,
        bucket=settings.influx_bucket,
    )


async def build(ctx: AgentContext) -> Agent:
    """``tradeswarm agent data_collection`` / ``python -m agents.data_collection`` entry point."""
    config = DataCollectionSettings()
    source, venue = make_source(ctx.settings, config, ctx)
    store = make_store(ctx.settings) if config.store else None
    return DataCollectionAgent(ctx, source, venue=venue, store=store, config=config)
