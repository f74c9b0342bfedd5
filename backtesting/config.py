"""What a backtest runs: strategies, sizing, costs, and the agents' settings derived from them.

The agents keep their own settings classes and defaults; a backtest builds those settings from
their defaults, the data (symbols, venue, timeframes), this configuration's explicit fields
(sizing, fees, slippage, initial cash), and finally the per-agent overrides (``risk``,
``compliance``, ``strategy``, ``ta``, ``execution``: field name -> value, validated by the agent's
own settings class). ``no_limits`` lifts the limits that a research backtest usually does not want
(position cap, daily loss, drawdown breaker, protective stops, compliance caps and throttles).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.compliance.settings import ComplianceSettings
from agents.execution.settings import ExecutionSettings
from agents.risk.settings import RiskSettings
from agents.strategy.settings import StrategySettings
from agents.technical_analysis.engine import build_slots
from agents.technical_analysis.settings import ALL_GROUPS, TechnicalAnalysisSettings
from core.candles import timeframe_ms
from core.errors import ConfigurationError
from strategies.registry import StrategySpec, build_specs

Sizing = Literal["fixed_fraction", "volatility", "kelly"]

NO_LIMITS_RISK: dict[str, Any] = {
    "max_position_pct": Decimal(1),
    "max_gross_exposure_pct": Decimal(1),
    "max_open_positions": 1000,
    "daily_loss_limit_pct": Decimal(1),
    "max_drawdown_pct": Decimal(1),
    "stop_loss_pct": None,
    "take_profit_pct": None,
    "trailing_stop_pct": None,
}
"""Risk overrides of ``no_limits``: sizing alone decides the quantity."""

NO_LIMITS_COMPLIANCE: dict[str, Any] = {
    "price_collar_pct": Decimal(1),
    "max_order_quantity": Decimal("1e15"),
    "max_order_notional": Decimal("1e15"),
    "max_trades_per_day": 10**9,
    "max_trades_per_day_per_symbol": 10**9,
    "max_volume_per_day": Decimal("1e18"),
    "max_volume_per_day_per_symbol": Decimal("1e18"),
    "max_orders_per_window": 10**9,
}
"""Compliance overrides of ``no_limits``."""

NO_LIMITS_STRATEGY: dict[str, Any] = {"stop_atr_multiple": 0.0, "take_profit_atr_multiple": 0.0}
"""Strategy overrides of ``no_limits``: no ATR stop / take-profit hints on intents."""
GAP_ALLOWANCE_BPS = Decimal(20)
"""Besides the configured fee and slippage, the risk agent's cash reserve of a backtest keeps this
much for the move from the decision candle's close to the fill at the next open."""
REFERENCE_CREDIT = Decimal(1_000_000)
"""The paper credit line of :func:`reference_config` (backtrader's reference gets the same)."""
RETENTION_GRACE_S = 86_400.0
"""Backtests forget the per-order / per-intent state of execution, the paper venue, risk and compliance
one simulated day after the intent expired (``retention_grace_s``): memory then follows the trading
rate, not the length of the run (docs/backtesting.md, Memory)."""


class BacktestConfig(BaseModel):
    """A backtest's configuration (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategies: tuple[str, ...] = ("sma_cross",)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    initial_cash: Decimal = Field(default=Decimal(10_000), gt=0)
    sizing: Sizing = "fixed_fraction"
    fraction: Decimal | None = Field(
        default=None, gt=0, le=1, description="fixed_fraction share; agent default when None"
    )
    fee_bps: Decimal = Field(default=Decimal(10), ge=0, le=1000)
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0, le=1000)
    no_limits: bool = False
    intrabar: Literal["worst", "next_bar"] = Field(
        default="worst",
        description="Protective exits: checked from the entry candle (worst case within the bar: a stop touched "
        "inside it is hit, the stop before the take-profit) or from the next candle (next_bar, optimistic).",
    )
    risk: dict[str, Any] = Field(default_factory=dict)
    compliance: dict[str, Any] = Field(default_factory=dict)
    strategy: dict[str, Any] = Field(default_factory=dict)
    ta: dict[str, Any] = Field(default_factory=dict)
    execution: dict[str, Any] = Field(default_factory=dict)
    audit: bool = Field(default=False, description="Keep compliance's in-memory audit trail (costs time).")

    def specs(self) -> list[StrategySpec]:
        """The strategies with validated parameters (raises ``ConfigurationError``)."""
        return build_specs(list(self.strategies), self.params, self.weights)


def reference_config(fee_bps: Decimal | int = 10, fast: int = 10, slow: int = 30) -> BacktestConfig:
    """The configuration of the backtrader reference test: sma_cross, 100% fixed fraction, fees on
    notional, no slippage, no limits, market orders at the next candle's open.

    Like backtrader's sizing in the reference, it keeps no cash reserve (``fee_reserve_bps`` 0), so a
    fill after a gap up costs a little more than the cash: the paper account gets a credit line
    (:data:`REFERENCE_CREDIT`, the same as the reference's), the only configuration where cash may
    go negative."""
    return BacktestConfig(
        strategies=("sma_cross",),
        params={"sma_cross": {"fast": fast, "slow": slow}},
        sizing="fixed_fraction",
        fraction=Decimal(1),
        fee_bps=Decimal(fee_bps),
        slippage_bps=Decimal(0),
        no_limits=True,
        risk={"fee_reserve_bps": Decimal(0)},
        execution={"paper_credit": REFERENCE_CREDIT},
    )


_PERIOD_RE = re.compile(r"^(sma|ema)_(\d+)$")


def _groups_for(needed: set[str], base: TechnicalAnalysisSettings) -> tuple[str, ...] | None:
    """The TA indicator groups whose outputs cover ``needed`` (None when some name is unknown)."""
    groups: list[str] = []
    covered: set[str] = set()
    for group in ALL_GROUPS:
        if group == "patterns":
            continue
        single = base.model_copy(update={"indicators": (group,)})
        slots, _, _ = build_slots(single)
        keys = {k for slot in slots for k in slot.keys}
        if keys & needed:
            groups.append(group)
            covered |= keys
    return tuple(groups) if needed <= covered else None


def _validated(cls: type[Any], label: str, values: dict[str, Any]) -> Any:
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        problems = [
            f"{label}.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigurationError("invalid backtest settings: " + "; ".join(problems)) from None


def settings_defaults(cls: type[Any]) -> dict[str, Any]:
    """The settings class's field defaults (NOT the environment: a backtest is reproducible)."""
    return {name: field.get_default(call_default_factory=True) for name, field in cls.model_fields.items()}


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The settings of every agent of one backtest."""

    ta: TechnicalAnalysisSettings
    strategy: StrategySettings
    risk: RiskSettings
    compliance: ComplianceSettings
    execution: ExecutionSettings


def agent_settings(
    config: BacktestConfig,
    venue: str,
    symbols: list[str],
    *,
    timeframes: list[str] | None = None,
    use_env: bool = False,
) -> AgentSettings:
    """Every agent's settings for ``config`` on data of ``venue``/``symbols`` (see the module docstring).

    ``use_env`` starts from the environment (``TRADESWARM_RISK_*``...) instead of the class defaults.
    """
    specs = config.specs()

    def base(cls: type[Any]) -> dict[str, Any]:
        return cls().model_dump() if use_env else settings_defaults(cls)

    # The paper venue fills a market order on the next candle of its symbol; execution cancels an
    # order whose intent expired, so the intent must outlive one candle of the slowest timeframe
    # (with a 60 s TTL another symbol's candle would cancel it before its own candle arrives).
    longest = max((timeframe_ms(tf) for tf in timeframes or ()), default=0) / 1000
    strategy_layer: dict[str, Any] = {
        # the in-memory bus hands each candle to execution before the analysis of it starts: no
        # settlement barrier (nor its marks) is needed, and a skipped (quiet) candle sends no mark
        "await_settlement": False,
        "strategies": tuple(config.strategies),
        "params": dict(config.params),
        "weights": dict(config.weights),
    }
    risk_layer: dict[str, Any] = {
        "initial_cash": config.initial_cash,
        "sizing": config.sizing,
        "retention_grace_s": RETENTION_GRACE_S,
        # the cash kept aside per entry: the run's own fee and slippage, plus the move to the next open
        "fee_reserve_bps": min(config.fee_bps + config.slippage_bps + GAP_ALLOWANCE_BPS, Decimal(1000)),
    }
    if config.fraction is not None:
        risk_layer["fixed_fraction"] = config.fraction
    compliance_layer: dict[str, Any] = {
        "allowed_symbols": sorted(set(symbols)),
        "allowed_venues": sorted({venue, "paper"}),
        "audit": config.audit,
        "retention_grace_s": RETENTION_GRACE_S,
    }
    execution_layer: dict[str, Any] = {
        "initial_cash": config.initial_cash,
        "maker_fee_bps": config.fee_bps,
        "taker_fee_bps": config.fee_bps,
        "slippage_bps": config.slippage_bps,
        "venue": "paper",
        "store": "memory",
        "paper_journal": None,
        "snapshot_interval_s": 86_400.0,
        "retention_grace_s": RETENTION_GRACE_S,
        "intrabar": config.intrabar,
        "settle_marks": False,
    }
    if longest > 0:
        strategy_layer["intent_ttl_s"] = max(60.0, 2 * longest)
    limits = (NO_LIMITS_RISK, NO_LIMITS_COMPLIANCE, NO_LIMITS_STRATEGY) if config.no_limits else ({}, {}, {})
    strategy = _build_from(
        StrategySettings, "strategy", base(StrategySettings), limits[2], strategy_layer, config.strategy
    )
    risk = _build_from(RiskSettings, "risk", base(RiskSettings), limits[0], risk_layer, config.risk)
    compliance = _build_from(ComplianceSettings, "compliance", base(ComplianceSettings), limits[1], compliance_layer,
                             config.compliance)  # fmt: skip
    execution = _build_from(ExecutionSettings, "execution", base(ExecutionSettings), execution_layer, config.execution)
    ta_base = base(TechnicalAnalysisSettings)
    ta_default = _validated(TechnicalAnalysisSettings, "ta", ta_base)
    needed: set[str] = set()
    sma = set(ta_default.sma_periods)
    ema = set(ta_default.ema_periods)
    for spec in specs:
        for name in spec.create().indicators:
            needed.add(name)
            m = _PERIOD_RE.match(name)
            if m:
                (sma if m.group(1) == "sma" else ema).add(int(m.group(2)))
    uses_atr = strategy.stop_atr_multiple > 0 or strategy.take_profit_atr_multiple > 0 or risk.sizing == "volatility"
    if uses_atr:
        needed.add(strategy.atr_indicator)
    ta_layer: dict[str, Any] = {"history_candles": 0}
    if "indicators" not in config.ta:
        needed_sma = sorted(int(m.group(2)) for n in needed if (m := _PERIOD_RE.match(n)) and m.group(1) == "sma")
        needed_ema = sorted(int(m.group(2)) for n in needed if (m := _PERIOD_RE.match(n)) and m.group(1) == "ema")
        probe = ta_default.model_copy(update={"sma_periods": tuple(sorted(sma)), "ema_periods": tuple(sorted(ema))})
        groups = _groups_for(needed, probe)
        if groups is not None:
            ta_layer["indicators"] = groups
            ta_layer["sma_periods"] = tuple(needed_sma) or ta_default.sma_periods
            ta_layer["ema_periods"] = tuple(needed_ema) or ta_default.ema_periods
    ta = _build_from(TechnicalAnalysisSettings, "ta", ta_base, ta_layer, config.ta)
    return AgentSettings(ta=ta, strategy=strategy, risk=risk, compliance=compliance, execution=execution)


def _build_from(cls: type[Any], label: str, values: dict[str, Any], *layers: dict[str, Any]) -> Any:
    merged = dict(values)
    for layer in layers:
        unknown = set(layer) - set(cls.model_fields)
        if unknown:
            raise ConfigurationError(
                f"unknown {label} setting(s) {sorted(unknown)}; known: {', '.join(sorted(cls.model_fields))}"
            )
        merged.update(layer)
    return _validated(cls, label, merged)
