"""Settings of the AI desk agent (environment prefix ``TRADESWARM_DESK_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.desk.pipeline import DeskLimits


class DeskSettings(BaseSettings):
    """When the desk decides, what it may propose, and where its inputs are.

    The language model (provider, tiers, budget, key) is configured by the LLM client's own settings
    (``LLM_PROVIDER``, ``CHEAP_MODEL``, ``STRONG_MODEL``, ``DAILY_TOKEN_BUDGET``...); without them the
    desk runs on the offline ``rules`` provider.
    """

    model_config = SettingsConfigDict(env_prefix="TRADESWARM_DESK_", extra="ignore", frozen=True)

    every: int = Field(default=24, ge=1, le=100_000, description="Decide every N closed candles per symbol.")
    timeframe: str | None = Field(
        default=None, pattern=r"^[1-9]\d{0,2}[smhdwM]$", description="Candles the desk reads (default: the first)."
    )
    window: int = Field(default=120, ge=35, le=2000, description="Candles in the technical summary.")
    blind: bool = Field(default=False, description="Hide the symbol, dates and price level from the prompts.")
    deadline_s: float = Field(default=60.0, gt=0, le=600, description="Seconds one decision may take.")
    intent_ttl_s: float = Field(default=300.0, gt=0, le=86_400, description="Seconds a desk intent stays valid.")
    trade: bool = Field(default=True, description="Publish an approved decision as a TradeIntent.")
    max_size_pct: float = Field(default=10.0, gt=0, le=100)
    max_position_pct: float = Field(default=20.0, gt=0, le=100)
    max_exposure_pct: float = Field(default=60.0, gt=0, le=1000)
    max_volatility_pct: float = Field(default=2.5, gt=0, le=100)
    data_dir: Path | None = Field(default=None, description="Directory of the input files (default data/desk).")

    def limits(self) -> DeskLimits:
        """The trader's cap and the risk manager's rules."""
        return DeskLimits(
            max_size_pct=self.max_size_pct,
            max_position_pct=self.max_position_pct,
            max_exposure_pct=self.max_exposure_pct,
            max_volatility_pct=self.max_volatility_pct,
        )
