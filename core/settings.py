"""Process settings from the environment (prefix ``TRADESWARM_``) and optional secret files.

Every variable is listed in ``.env.example``. Secrets are ``SecretStr``: they never appear in a
repr, a log line or an error message. ``mode`` is checked against the rest: paper and backtest
hold no exchange keys at all; every live process needs the explicit confirmation flag, and keys
come in pairs. Only the processes that talk to the venue (execution) hold keys and require them:
see :meth:`Settings.require_exchange_keys`.

Agent-specific settings live beside each agent (``agents/<name>/settings.py``) with their own
prefix (``TRADESWARM_RISK_``...), so this class stays the shared part.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.domain import SYMBOL_RE, Mode, is_valid_timeframe
from core.errors import ConfigurationError
from core.messages.base import AGENT_ID_RE
from core.messages.codec import DEFAULT_MAX_MESSAGE_BYTES
from core.routing import DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_QUEUE_LENGTH

ENV_PREFIX = "TRADESWARM_"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Shared settings of every tradeswarm process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=None,
        secrets_dir=None,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    mode: Mode = Mode.PAPER
    agent_id: str | None = Field(default=None, description="Unique agent id; defaults to '<kind>-<host>'.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    rabbitmq_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    rabbitmq_prefetch: int = Field(default=64, ge=1, le=10_000)
    rabbitmq_delivery_limit: int = Field(default=DEFAULT_DELIVERY_LIMIT, ge=1, le=100)
    rabbitmq_partitions: int = Field(
        default=1, ge=1, le=64, description="Symbol partitions of the scalable agents' queues (<kind>.<purpose>.p<i>)."
    )
    partition_grace_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="With partitions > 1: how long a replica waits for the orchestrator's partition "
        "assignment before it consumes every partition itself (single-active-consumer keeps that correct).",
    )
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest message body an agent sends or accepts; the broker's max_message_size "
        "(docker/rabbitmq/rabbitmq.conf) is the same, so a bigger body is refused at publish.",
    )
    rabbitmq_max_queue_length: int = Field(
        default=DEFAULT_MAX_QUEUE_LENGTH,
        ge=1,
        le=100_000_000,
        description="x-max-length of every agent queue: past it the oldest message is dead-lettered (reason maxlen).",
    )
    max_clock_skew_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="A message stamped (ts_event) further than this in the future of the host's clock is "
        "dead-lettered as implausible; 0 disables the check.",
    )
    max_clock_jump_s: float = Field(
        default=7 * 86_400.0,
        ge=0,
        description="An agent on market time (replays) refuses a message this far ahead of its clock; 0 disables.",
    )

    postgres_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/tradeswarm")
    influx_url: str = "http://127.0.0.1:8086"
    influx_token: SecretStr = SecretStr("")
    influx_org: str = "tradeswarm"
    influx_bucket: str = "market"
    influx_api: Literal["v2", "v1"] = "v2"

    exchange: str = "binance"
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTC/USDT"])
    timeframes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["1m"])
    exchange_api_key: SecretStr | None = None
    exchange_api_secret: SecretStr | None = None
    live_trading_confirmed: bool = False

    http_host: str = "127.0.0.1"
    http_port: int = Field(
        default=9100, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz; 0 = any free port."
    )
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=300)
    heartbeat_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    shutdown_grace_s: float = Field(default=20.0, gt=0, le=600)

    api_token: SecretStr | None = None

    @field_validator("symbols", "timeframes", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("symbols")
    @classmethod
    def _symbols_valid(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not SYMBOL_RE.match(s)]
        if bad:
            raise ValueError(f"not ccxt unified symbols (BASE/QUOTE): {bad}")
        if not value:
            raise ValueError("at least one symbol is required")
        return value

    @field_validator("timeframes")
    @classmethod
    def _timeframes_valid(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not is_valid_timeframe(t)]
        if bad:
            raise ValueError(f"unknown timeframes {bad}; expected e.g. 1m, 5m, 1h, 1d")
        return value

    @field_validator("agent_id")
    @classmethod
    def _agent_id_valid(cls, value: str | None) -> str | None:
        if value is not None and not AGENT_ID_RE.match(value):
            raise ValueError("agent_id: lowercase letters, digits, '_' and '-' only")
        return value

    @model_validator(mode="after")
    def _mode_consistent(self) -> Self:
        has_key = bool(self.exchange_api_key and self.exchange_api_key.get_secret_value())
        has_secret = bool(self.exchange_api_secret and self.exchange_api_secret.get_secret_value())
        if self.mode is Mode.LIVE:
            if has_key != has_secret:
                raise ValueError("TRADESWARM_EXCHANGE_API_KEY and TRADESWARM_EXCHANGE_API_SECRET come together")
            if not self.live_trading_confirmed:
                raise ValueError("live mode needs TRADESWARM_LIVE_TRADING_CONFIRMED=true as an explicit opt-in")
        elif has_key or has_secret:
            raise ValueError(
                f"{self.mode.value} mode must hold no exchange keys; unset the TRADESWARM_EXCHANGE_API_* variables"
            )
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must exceed heartbeat_interval_s")
        return self

    def require_exchange_keys(self) -> tuple[str, str]:
        """The exchange key and secret of a live process that places orders.

        Raises :class:`ConfigurationError` when this is not a confirmed live process with both.
        """
        key = self.exchange_api_key.get_secret_value() if self.exchange_api_key else ""
        secret = self.exchange_api_secret.get_secret_value() if self.exchange_api_secret else ""
        if self.mode is not Mode.LIVE or not self.live_trading_confirmed:
            raise ConfigurationError("exchange keys are only used in confirmed live mode")
        if not (key and secret):
            raise ConfigurationError(
                "live mode needs TRADESWARM_EXCHANGE_API_KEY and TRADESWARM_EXCHANGE_API_SECRET in the execution agent"
            )
        return key, secret

    def resolved_agent_id(self, kind: str, host: str) -> str:
        """The configured agent id, or ``<kind>-<host>`` made safe for routing keys."""
        if self.agent_id:
            return self.agent_id
        safe_host = "".join(ch if ch.isalnum() else "-" for ch in host.lower()).strip("-")[:40] or "local"
        return f"{kind.replace('_', '-')}-{safe_host}"[:63]


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (plus ``overrides``); raise :class:`ConfigurationError`
    with a one-line explanation per problem when they are invalid.

    When ``TRADESWARM_SECRETS_DIR`` names a folder (Docker/Kubernetes secrets), a file there named
    like the variable (``TRADESWARM_EXCHANGE_API_KEY``...) supplies that field's value.
    """
    import os

    from pydantic import ValidationError

    secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
    try:
        if secrets_dir:
            return Settings(_secrets_dir=secrets_dir, **overrides)  # type: ignore[arg-type]
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            field = ".".join(str(p) for p in err["loc"])
            name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None
