"""Settings of the data collection agent (environment prefix ``TRADESWARM_DATA_``).

The shared ones (``TRADESWARM_EXCHANGE``, ``TRADESWARM_SYMBOLS``, ``TRADESWARM_TIMEFRAMES``,
``TRADESWARM_INFLUX_*``) are in :class:`core.settings.Settings`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DataCollectionSettings(BaseSettings):
    """What the data collection agent reads from and how it guards its feeds."""

    model_config = SettingsConfigDict(env_prefix="TRADESWARM_DATA_", extra="ignore", frozen=True, env_ignore_empty=True)

    source: Literal["ccxt", "replay", "synthetic"] = Field(
        default="ccxt", description="ccxt = the live venue; replay = candle files; synthetic = seeded GBM."
    )
    replay_path: Path | None = Field(
        default=None, description="A candle file, or a folder of <venue>_<BASE>-<QUOTE>_<tf>.csv files."
    )
    replay_speed: float = Field(default=0.0, ge=0, description="0 = as fast as possible; N = N times real time.")
    replay_start: datetime | None = None
    replay_end: datetime | None = None
    synthetic_seed: int = 42
    synthetic_count: int | None = Field(default=10_000, ge=1)
    synthetic_start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    synthetic_price: Decimal = Field(default=Decimal(30000), gt=0)
    synthetic_sigma: float = Field(default=0.6, ge=0, le=10)
    synthetic_mu: float = Field(default=0.05, ge=-10, le=10)

    trades: bool = Field(default=True, description="Also stream public trades (ticks) and store them.")
    book: bool = Field(
        default=True, description="Also stream the top of book (best bid/ask) for the paper venue's spread."
    )
    book_min_interval_s: float = Field(
        default=1.0, ge=0, description="Publish a changed top of book at most this often per symbol."
    )
    book_refresh_s: float = Field(
        default=30.0, gt=0, description="Publish the top of book this often even when it did not change."
    )
    store: bool = Field(default=True, description="Write candles and trades to InfluxDB.")
    store_batch_size: int = Field(default=500, ge=1, le=100_000)
    store_flush_s: float = Field(default=1.0, gt=0, le=60)

    stale_intervals: float = Field(default=3.0, gt=0, description="A feed with no data for N intervals is stale.")
    trade_stale_s: float = Field(default=300.0, gt=0, description="A trade feed silent this long is stale.")
    backfill_max_candles: int = Field(default=5000, ge=0, description="Largest gap backfilled through REST.")
    resume_from_store: bool = Field(default=True, description="On start, continue after the last stored candle.")
    close_grace_ms: int = Field(
        default=2000, ge=0, description="Wait after a candle's close time before closing it by the clock."
    )
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, description="REST requests per second (default: ccxt's)."
    )
    api_urls: dict[str, Any] = Field(
        default_factory=dict, description="JSON overrides of ccxt urls['api'] (tests, proxies)."
    )

    @model_validator(mode="after")
    def _replay_needs_path(self) -> Self:
        if self.source == "replay" and self.replay_path is None:
            raise ValueError("TRADESWARM_DATA_SOURCE=replay needs TRADESWARM_DATA_REPLAY_PATH")
        return self
