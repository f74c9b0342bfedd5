"""Orchestrator settings (environment prefix ``TRADESWARM_ORCHESTRATOR_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_HALT_ACK_KINDS = ("strategy", "risk", "compliance", "execution")
DEFAULT_PARTITIONED_KINDS = ("technical_analysis", "strategy")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class OrchestratorSettings(BaseSettings):
    """Where the REST API listens, which agents must acknowledge each command, cache sizes."""

    model_config = SettingsConfigDict(env_prefix="TRADESWARM_ORCHESTRATOR_", extra="ignore", frozen=True)

    api_enabled: bool = Field(default=True, description="Serve the REST API from the orchestrator process.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535, description="Port of the REST API; 0 = any free port.")
    halt_ack_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_HALT_ACK_KINDS),
        description="Agent kinds that must acknowledge HALT (and RESUME) before it is reported complete.",
    )
    pause_ack_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["strategy"],
        description="Agent kinds that must acknowledge PAUSE before it is reported complete.",
    )
    flatten_ack_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["risk"],
        description="Agent kinds that must acknowledge FLATTEN before it is reported complete.",
    )
    check_interval_s: float | None = Field(
        default=None, gt=0, le=60, description="How often heartbeats are checked; default: heartbeat interval / 2."
    )
    partitioned_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PARTITIONED_KINDS),
        description="Agent kinds whose symbol partitions (TRADESWARM_RABBITMQ_PARTITIONS > 1) are assigned "
        "to their live replicas.",
    )
    assignment_interval_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="How often partition assignments are republished (late joiners); they stay valid for "
        "three intervals, after which replicas consume every partition.",
    )
    settle_s: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="How long after a command heartbeats may still predate it (they are not held against the "
        "agent); default: two heartbeat intervals.",
    )
    state_store: Literal["postgres", "memory"] = Field(
        default="postgres",
        description="Where the intended trading state (active/paused/halted) survives an orchestrator restart.",
    )
    latest_snapshots: int = Field(default=200, ge=1, le=10_000, description="Indicator snapshots kept per series.")
    commands_kept: int = Field(default=200, ge=1, le=10_000, description="Commands remembered for the API.")
    backtest_runner: str = Field(
        default="infrastructure.api.backtests:engine_runner",
        pattern=r"^$|^[a-z_][a-z0-9_.]*:[a-z_][a-z0-9_]*$",
        description="module:factory of the backtest runner (factory(data_dir) -> runner); empty = none.",
    )
    backtest_data_dir: Path = Field(
        default=Path("data/samples"), description="Candle files (<venue>_<BASE>-<QUOTE>_<tf>.csv) for API backtests."
    )
    backtest_workers: int = Field(default=1, ge=1, le=8, description="Backtest jobs run at the same time.")
    desk_analyzer: str = Field(
        default="backtesting.desk_api:desk_analyzer",
        pattern=r"^$|^[a-z_][a-z0-9_.]*:[a-z_][a-z0-9_]*$",
        description="module:factory of the AI desk's analyzer for POST /analyze "
        "(factory(data_dir, store, publish, latest)); empty = the desk endpoints read stored decisions only.",
    )
    rabbitmq_management_url: SecretStr | None = Field(
        default=None,
        description="RabbitMQ's management API with credentials (http://user:pass@host:15672), for the dashboard's "
        "queue depths; unset: not shown.",
    )
    rabbitmq_ui_url: str = Field(
        default="http://localhost:15672", description="Link to the RabbitMQ management UI shown by the dashboard."
    )
    grafana_url: str = Field(default="http://localhost:3000", description="Link to Grafana shown by the dashboard.")

    @field_validator("halt_ack_kinds", "pause_ack_kinds", "flatten_ack_kinds", "partitioned_kinds", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)
