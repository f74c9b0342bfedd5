"""Settings of the technical analysis agent (environment prefix ``TRADESWARM_TA_``)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IndicatorGroup = Literal[
    "sma", "ema", "rsi", "macd", "bbands", "atr", "adx", "stoch", "obv", "mfi", "vwap", "volatility", "patterns"
]
ALL_GROUPS: tuple[IndicatorGroup, ...] = (
    "sma", "ema", "rsi", "macd", "bbands", "atr", "adx", "stoch", "obv", "mfi", "vwap", "volatility", "patterns",
)  # fmt: skip

DEFAULT_PATTERNS: tuple[str, ...] = (
    "CDLENGULFING",
    "CDLHAMMER",
    "CDLSHOOTINGSTAR",
    "CDLDOJI",
    "CDLMORNINGSTAR",
    "CDLEVENINGSTAR",
    "CDL3WHITESOLDIERS",
    "CDL3BLACKCROWS",
    "CDLHARAMI",
    "CDLPIERCING",
    "CDLDARKCLOUDCOVER",
)
"""The candlestick patterns computed by default: common reversal and continuation signals."""

Period = Annotated[int, Field(ge=2, le=5000)]


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class TechnicalAnalysisSettings(BaseSettings):
    """Which indicators the technical analysis agent computes, with their periods.

    Lists are comma-separated in the environment (``TRADESWARM_TA_SMA_PERIODS=10,30``). Only the
    enabled ``indicators`` groups cost time per candle; a backtest of one strategy can enable just
    what it needs (``TRADESWARM_TA_INDICATORS=sma``).
    """

    model_config = SettingsConfigDict(env_prefix="TRADESWARM_TA_", extra="ignore", frozen=True, validate_default=True)

    indicators: Annotated[tuple[IndicatorGroup, ...], NoDecode] = ALL_GROUPS
    sma_periods: Annotated[tuple[Period, ...], NoDecode] = (10, 20, 30, 50)
    ema_periods: Annotated[tuple[Period, ...], NoDecode] = (12, 26, 50)
    rsi_period: Period = 14
    macd_fast: Period = 12
    macd_slow: Period = 26
    macd_signal: Annotated[int, Field(ge=1, le=5000)] = 9
    bb_period: Period = 20
    bb_nbdev: float = Field(default=2.0, gt=0, le=10)
    atr_period: Annotated[int, Field(ge=1, le=5000)] = 14
    adx_period: Period = 14
    stoch_fastk: Annotated[int, Field(ge=1, le=5000)] = 14
    stoch_slowk: Annotated[int, Field(ge=1, le=5000)] = 3
    stoch_slowd: Annotated[int, Field(ge=1, le=5000)] = 3
    mfi_period: Period = 14
    vwap_period: Period = 20
    rv_period: Period = 20
    vol_window: Period = Field(default=100, description="Candles in the volatility-percentile window.")
    patterns: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PATTERNS
    regime_adx_trend: float = Field(default=25.0, gt=0, le=100, description="ADX at or above which a market trends.")
    regime_high_vol_pct: float = Field(
        default=90.0, gt=0, le=100, description="Volatility percentile at or above which the regime is high volatility."
    )
    history_source: Literal["store", "none"] = Field(
        default="store", description="Where warm-up candles come from: the tick store (InfluxDB) or nowhere."
    )
    history_candles: int = Field(default=500, ge=0, le=100_000, description="Candles asked from history at start.")
    history_timeout_s: float = Field(
        default=15.0, gt=0, le=600, description="Seconds to wait for one series' history before warming up live."
    )
    max_series: int = Field(
        default=1000, ge=1, le=1_000_000, description="Most (venue, symbol, timeframe) series kept."
    )

    @field_validator("indicators", "sma_periods", "ema_periods", "patterns", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _csv(value)

    @field_validator("patterns")
    @classmethod
    def _patterns_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from talib import stream

        bad = [p for p in value if not p.startswith("CDL") or not hasattr(stream, p)]
        if bad:
            raise ValueError(f"unknown TA-Lib candlestick patterns {bad}; expected names like CDLENGULFING")
        return tuple(dict.fromkeys(value))

    @field_validator("sma_periods", "ema_periods", "indicators")
    @classmethod
    def _dedupe(cls, value: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be below macd_slow")
        return self
