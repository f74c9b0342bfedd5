"""Execution agent settings (environment prefix ``TRADESWARM_EXECUTION_``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ExecutionSettings(BaseSettings):
    """Venue choice, paper fill model, persistence and snapshots."""

    model_config = SettingsConfigDict(
        env_prefix="TRADESWARM_EXECUTION_", extra="ignore", frozen=True, env_parse_none_str="none"
    )

    account: str = Field(default="paper", pattern=r"^[a-z0-9_-]{1,32}$")
    initial_cash: Decimal = Field(default=Decimal(10_000), gt=0)
    venue: Literal["paper", "live"] = Field(
        default="paper", description="live also needs TRADESWARM_MODE=live + confirmation."
    )
    paper_venue_name: str = Field(default="paper", pattern=r"^[a-z0-9][a-z0-9_]{0,39}$")
    maker_fee_bps: Decimal = Field(default=Decimal(10), ge=0, le=1000)
    taker_fee_bps: Decimal = Field(default=Decimal(10), ge=0, le=1000)
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0, le=1000)
    spread_bps: Decimal = Field(default=Decimal(0), ge=0, le=1000, description="Assumed spread when no book is seen.")
    participation: Decimal | None = Field(
        default=None, gt=0, le=1, description="Max share of a candle's volume per fill."
    )
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    paper_credit: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description="Quote currency the paper account may borrow: cash may go down to -credit (0 = spot, no margin).",
    )
    paper_journal: Path | None = Field(default=None, description="File keeping the paper venue's book across restarts.")
    store: Literal["postgres", "memory"] = "postgres"
    snapshot_interval_s: float = Field(default=60.0, gt=0)
    retention_grace_s: float | None = Field(
        default=None,
        gt=0,
        description="Forget terminal orders (engine, in-memory store, paper venue) whose intent expired more "
        "than this many seconds ago; none keeps all. Backtests set it (docs/backtesting.md, Memory).",
    )
    submit_timeout_s: float = Field(default=10.0, gt=0)
    allow_unverified_key_permissions: bool = Field(
        default=False,
        description="Live only: trade on a venue that cannot report whether the API key may withdraw.",
    )
    crash_at: Literal["after_persist", "before_fill_store"] | None = Field(
        default=None, description="TEST HOOK: SIGKILL the process at this point (crash-safety tests only)."
    )
