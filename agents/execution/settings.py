"""Execution agent settings (environment prefix ``TRADESWARM_EXECUTION_``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CrashPoint = Literal[
    "after_persist", "after_submit", "before_fill_store", "before_partial_fill_store", "after_fill_store"
]
"""Where the crash-safety tests kill execution: order stored and not sent; sent and the venue's answer
not stored; a fill at the venue not stored (any, or a partial one); a fill stored and not published."""


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
    paper_amount_step: Decimal | None = Field(
        default=None, gt=0, description="Paper venue lot step: quantities are rounded down to it (none: 1e-8)."
    )
    paper_price_step: Decimal | None = Field(default=None, gt=0, description="Paper venue tick size (none: any).")
    paper_min_quantity: Decimal | None = Field(default=None, gt=0, description="Paper venue minimum quantity.")
    paper_min_notional: Decimal | None = Field(default=None, gt=0, description="Paper venue minimum notional.")
    settle_marks: bool = Field(
        default=True,
        description="After each candle, publish execution.settled.<venue>.<symbol> (PositionsSettled): the "
        "barrier that lets the strategy decide on a candle's snapshot only after that candle's fills. "
        "Backtests turn it off (the in-memory bus already hands each candle to execution first).",
    )
    intrabar: Literal["worst", "next_bar"] = Field(
        default="worst",
        description="Paper venue: protective exits checked from the entry candle itself (worst: a stop touched "
        "inside it is hit; stop before take-profit) or from the next candle (next_bar, optimistic).",
    )
    paper_journal: Path | None = Field(default=None, description="File keeping the paper venue's book across restarts.")
    paper_state: Literal["auto", "postgres", "file", "memory"] = Field(
        default="auto",
        description="Where the paper venue keeps its book across restarts of the execution process: auto = "
        "the file when paper_journal is set, else PostgreSQL when the store is, else memory (lost on restart).",
    )
    store: Literal["postgres", "memory"] = "postgres"
    snapshot_interval_s: float = Field(default=60.0, gt=0)
    retention_grace_s: float | None = Field(
        default=None,
        gt=0,
        description="Forget terminal orders (engine, in-memory store, paper venue) whose intent expired more "
        "than this many seconds ago; none keeps all. Backtests set it (docs/backtesting.md, Memory).",
    )
    paper_order_retention_days: float | None = Field(
        default=7.0,
        gt=0,
        description="Paper venue: forget terminal orders (filled, canceled, rejected, expired) whose intent "
        "expired more than this many days ago, in memory and in its saved book (paper_venue_orders), at start "
        "and whenever an order is submitted; open orders and a protective exit still armed are kept. none keeps "
        "all. retention_grace_s, when set, applies instead.",
    )
    submit_timeout_s: float = Field(default=10.0, gt=0)
    allow_unverified_key_permissions: bool = Field(
        default=False,
        description="Live only: trade on a venue that cannot report whether the API key may withdraw.",
    )
    crash_at: Annotated[list[CrashPoint], NoDecode] = Field(
        default_factory=list,
        description="TEST HOOK (crash-safety tests only): SIGKILL the process at these points (comma-separated).",
    )
    crash_state: Path | None = Field(
        default=None,
        description="TEST HOOK: with crash_at, a file listing the points already crashed at: each point kills "
        "one process only, so a supervised agent goes through every point, one restart each.",
    )

    @field_validator("crash_at", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def paper_retention(self) -> timedelta | None:
        """The paper venue's retention grace: ``retention_grace_s`` when set, else
        ``paper_order_retention_days`` (``None``: keep every order)."""
        if self.retention_grace_s is not None:
            return timedelta(seconds=self.retention_grace_s)
        if self.paper_order_retention_days is not None:
            return timedelta(days=self.paper_order_retention_days)
        return None

    def resolved_paper_state(self) -> Literal["postgres", "file", "memory"]:
        """Where the paper venue's book lives (see ``paper_state``)."""
        if self.paper_state != "auto":
            return self.paper_state
        if self.paper_journal is not None:
            return "file"
        return "postgres" if self.store == "postgres" else "memory"
