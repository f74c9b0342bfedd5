"""Settings of the strategy agent (environment prefix ``TRADESWARM_STRATEGY_``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from strategies.consensus import ConsensusConfig
from strategies.registry import StrategySpec, build_specs


class StrategySettings(BaseSettings):
    """Which strategies run, with which parameters and weights, and how their votes are fused.

    ``params`` and ``weights`` are JSON objects in the environment, for example
    ``TRADESWARM_STRATEGY_PARAMS='{"sma_cross": {"fast": 10, "slow": 30}}'``; parameters are
    validated against each strategy's model by :meth:`strategy_specs` at start-up.
    """

    model_config = SettingsConfigDict(
        env_prefix="TRADESWARM_STRATEGY_", extra="ignore", frozen=True, validate_default=True
    )

    strategies: Annotated[tuple[str, ...], NoDecode] = ("sma_cross",)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    method: Literal["weighted", "bayesian"] = "weighted"
    threshold: float = Field(default=75.0, ge=0, le=100, description="Score at or above which a consensus executes.")
    variance_limit: float = Field(
        default=1600.0,
        ge=0,
        description="Disagreement between directions (mean square opposition, score² units) above which "
        "a person reviews the consensus (docs/strategies.md).",
    )
    intent_ttl_s: float = Field(default=60.0, gt=0, le=30 * 86_400, description="Seconds an intent stays valid.")
    review_ttl_s: float = Field(
        default=900.0,
        gt=0,
        le=7 * 86_400,
        description="Seconds a MANUAL_REVIEW waits in the review queue for a person before it expires.",
    )
    stop_atr_multiple: float = Field(default=2.0, ge=0, le=100, description="Stop-loss hint in ATRs; 0 = none.")
    take_profit_atr_multiple: float = Field(
        default=3.0, ge=0, le=100, description="Take-profit hint in ATRs; 0 = none."
    )
    atr_indicator: str = Field(default="atr_14", pattern=r"^[a-z0-9_]{1,64}$")
    publish_votes: bool = Field(
        default=False, description="Also publish every StrategyVote (they are always in the decision)."
    )
    await_settlement: bool = Field(
        default=True,
        description="Decide on a candle's snapshot only once execution marked that candle settled "
        "(PositionsSettled: its fills are in): the multi-process swarm then decides on the same position "
        "as a backtest. Engaged per symbol from the first mark seen; backtests turn it off.",
    )
    settlement_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Wall-clock seconds a snapshot waits for execution's mark before it is decided anyway "
        "(with a warning: execution down or slow).",
    )
    allow_pyramiding: bool = Field(default=False, description="Allow an entry in the direction already held.")
    max_series: int = Field(default=1000, ge=1, le=1_000_000)
    desk_weight: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="Weight of the AI desk as one more voter (its latest decision per symbol, strategy `desk`); "
        "0 = the desk does not vote.",
    )
    desk_vote_ttl_s: float = Field(
        default=86_400.0, gt=0, le=30 * 86_400, description="Seconds a desk decision counts as a vote after it."
    )

    @field_validator("strategies", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def strategy_specs(self) -> list[StrategySpec]:
        """The configured strategies with validated parameters (raises ``ConfigurationError``)."""
        return build_specs(self.strategies, self.params, self.weights)

    def consensus_config(self) -> ConsensusConfig:
        """The fusion rules."""
        weights = dict(self.weights)
        if self.desk_weight > 0:
            weights["desk"] = self.desk_weight
        return ConsensusConfig(
            method=self.method,
            threshold=self.threshold,
            variance_limit=self.variance_limit,
            weights=weights,
        )
