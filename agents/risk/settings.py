"""Risk agent settings (environment prefix ``TRADESWARM_RISK_``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RiskSettings(BaseSettings):
    """Sizing, limits and protective levels of the risk agent."""

    model_config = SettingsConfigDict(
        env_prefix="TRADESWARM_RISK_", extra="ignore", frozen=True, env_parse_none_str="none"
    )

    account: str = Field(default="paper", pattern=r"^[a-z0-9_-]{1,32}$")
    initial_cash: Decimal = Field(default=Decimal(10_000), gt=0)
    sizing: Literal["fixed_fraction", "volatility", "kelly"] = "fixed_fraction"
    fixed_fraction: Decimal = Field(
        default=Decimal("0.1"), gt=0, le=1, description="Share of equity per entry; 1 = 100%."
    )
    fee_reserve_bps: Decimal = Field(
        default=Decimal(30),
        ge=0,
        le=1000,
        description="Cash kept aside per entry for its fee, slippage and the move to the fill (bps of notional).",
    )
    risk_per_trade: Decimal = Field(
        default=Decimal("0.01"), gt=0, le=1, description="volatility: equity share lost at the stop the entry carries."
    )
    atr_period: int = Field(default=14, ge=1, le=1000)
    atr_multiple: Decimal = Field(default=Decimal(2), gt=0, le=100)
    kelly_win_rate: float = Field(
        default=0.5, ge=0, le=1, description="Prior win rate until enough trades are recorded."
    )
    kelly_payoff: float = Field(default=1.5, gt=0, le=100, description="Prior average win / average loss.")
    kelly_min_trades: int = Field(default=20, ge=1)
    kelly_cap: Decimal = Field(default=Decimal("0.25"), gt=0, le=1)
    quantity_step: Decimal = Field(default=Decimal("0.00000001"), gt=0)
    min_quantity: Decimal = Field(default=Decimal("0.00000001"), gt=0)
    allow_short: bool = False

    max_position_pct: Decimal = Field(
        default=Decimal("0.25"), gt=0, le=1, description="Max position per asset, share of equity."
    )
    max_gross_exposure_pct: Decimal = Field(
        default=Decimal(1), gt=0, le=10, description="Max sum of |positions|, share of equity."
    )
    max_open_positions: int = Field(default=5, ge=1, le=1000)
    daily_loss_limit_pct: Decimal = Field(default=Decimal("0.05"), gt=0, le=1)
    max_drawdown_pct: Decimal = Field(default=Decimal("0.20"), gt=0, le=1)
    drawdown_recovery: Literal["next_day", "recovered", "manual"] = Field(
        default="next_day",
        description="When the drawdown breaker lifts: next_day (first mark of the next UTC day, the peak "
        "restarts from there), recovered (drawdown back at or below DRAWDOWN_RESUME_PCT), manual (RESUME only).",
    )
    drawdown_resume_pct: Decimal = Field(
        default=Decimal("0.10"), ge=0, lt=1, description="recovered: the drawdown at which the breaker lifts."
    )
    var_window: int = Field(default=250, ge=20, le=100_000, description="Equity returns kept for historical VaR.")
    var_every: int = Field(default=60, ge=1, description="Recompute VaR every N marks.")
    var_limit_pct: float = Field(
        default=0.05, gt=0, le=1, description="Alert when 99% VaR exceeds this share of equity."
    )

    stop_loss_pct: Decimal | None = Field(default=Decimal("0.05"), gt=0, lt=1)
    take_profit_pct: Decimal | None = Field(default=Decimal("0.10"), gt=0, le=10)
    trailing_stop_pct: float | None = Field(default=None, gt=0, le=100)
    use_atr_stops: bool = Field(
        default=True, description="volatility: an entry without a stop of its own gets one at ATR x ATR_MULTIPLE."
    )
    reservation_ttl_s: float = Field(
        default=300.0, gt=0, description="Forget an approval with no order news after this."
    )
    retention_grace_s: float | None = Field(
        default=None,
        gt=0,
        description="Forget cached decisions of intents that expired more than this many seconds ago; "
        "none keeps up to 100,000. Backtests set it (docs/backtesting.md, Memory).",
    )
    flatten_ttl_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Seconds a FLATTEN closing order stays valid."
    )

    @model_validator(mode="after")
    def _resume_below_trip(self) -> Self:
        if self.drawdown_recovery == "recovered" and self.drawdown_resume_pct >= self.max_drawdown_pct:
            raise ValueError("drawdown_resume_pct must be below max_drawdown_pct (the breaker would never trip)")
        return self
