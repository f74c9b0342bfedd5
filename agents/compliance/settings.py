"""Compliance agent settings (environment prefix ``TRADESWARM_COMPLIANCE_``)."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ComplianceSettings(BaseSettings):
    """Pre-trade gate limits and the audit trail switch."""

    model_config = SettingsConfigDict(
        env_prefix="TRADESWARM_COMPLIANCE_", extra="ignore", frozen=True, env_parse_none_str="none"
    )

    allowed_symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTC/USDT", "ETH/USDT"])
    allowed_venues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["paper", "binance"])
    price_collar_pct: Decimal = Field(default=Decimal("0.05"), gt=0, le=1, description="Max |reference - last| / last.")
    max_order_quantity: Decimal = Field(default=Decimal(1000), gt=0)
    max_order_notional: Decimal = Field(default=Decimal(50_000), gt=0)
    max_trades_per_day: int = Field(default=500, ge=1)
    max_trades_per_day_per_symbol: int = Field(default=200, ge=1)
    max_volume_per_day: Decimal = Field(default=Decimal(1_000_000), gt=0, description="Notional, all symbols.")
    max_volume_per_day_per_symbol: Decimal = Field(default=Decimal(500_000), gt=0)
    trading_start: time = time(0, 0)
    trading_end: time = time(23, 59, 59, 999999)
    trading_days: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], description="0=Monday."
    )
    max_orders_per_window: int = Field(default=20, ge=1)
    rate_window_s: float = Field(default=60.0, gt=0)
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: Decimal = Field(
        default=Decimal(0), ge=0, le=1000, description="Limit price offset from the reference."
    )
    audit: bool = Field(default=True, description="Keep the hash-chained audit trail.")
    audit_secret: SecretStr | None = Field(
        default=None,
        description="The audit key (a secret): rows are HMAC-chained and checkpoints signed with it; the "
        "verifier needs the same key. None: a plain sha256 chain, not anchored (development).",
    )
    audit_secret_file: Path | None = Field(
        default=None, description="A file holding the audit key (a Docker/Kubernetes secret)."
    )
    audit_checkpoint_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Seconds between signed checkpoints of the audit chain."
    )
    restore_days: int = Field(
        default=7, ge=1, le=3650, description="Approvals reloaded on start (duplicates, counters)."
    )
    dedupe_window: int = Field(default=1_000_000, ge=1000, description="Intent ids remembered for duplicate rejection.")
    retention_grace_s: float | None = Field(
        default=None,
        gt=0,
        description="Also forget intent ids that expired more than this many seconds ago (a redelivery is then "
        "rejected as stale instead of duplicate); none keeps dedupe_window. Backtests set it.",
    )

    def audit_key_bytes(self) -> bytes | None:
        """The audit key: ``audit_secret``, else the content of ``audit_secret_file`` (stripped), else None."""
        if self.audit_secret is not None and self.audit_secret.get_secret_value():
            return self.audit_secret.get_secret_value().encode()
        if self.audit_secret_file is not None:
            text = self.audit_secret_file.read_text().strip()
            return text.encode() if text else None
        return None

    @field_validator("allowed_symbols", "allowed_venues", "trading_days", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value
