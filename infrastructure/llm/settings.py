"""The LLM client's settings, read from the environment (and, for the key, a secret file).

Each variable has a ``TRADESWARM_`` form (``TRADESWARM_LLM_PROVIDER``, ``TRADESWARM_CHEAP_MODEL``...)
like every other tradeswarm setting, and the short form the issue and the compose files use
(``LLM_PROVIDER``, ``CHEAP_MODEL``, ``DAILY_TOKEN_BUDGET``...); the prefixed one wins when it is set
(an empty value counts as unset, so an empty ``TRADESWARM_LLM_API_KEY=`` never hides ``LLM_API_KEY``). The API key
is a ``SecretStr`` taken from ``LLM_API_KEY`` or read from the file named by ``LLM_API_KEY_FILE``
(Docker/Kubernetes secrets): it never appears in a repr, a log line or an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigurationError
from core.llm import Tier
from infrastructure.llm.prices import DEFAULT_PRICES, ModelPrice, PriceTable, parse_prices

Provider = Literal["rules", "openai", "replay", "record"]

ANALYST_ROLES = ("technical", "sentiment", "tokenomics")
"""The cheap-tier roles; every other role is on the strong tier."""

DEFAULT_MAX_TOKENS: dict[str, int] = {
    "technical": 400,
    "sentiment": 400,
    "tokenomics": 400,
    "researcher": 700,
    "trader": 400,
    "risk_manager": 500,
}
"""Per-role cap on the tokens a model may write in one answer (``max_tokens``)."""


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"TRADESWARM_{name}", name)


def _parse_role_ints(value: object) -> object:
    """``"technical=300,trader=500"`` (or a JSON object) into a dict."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            import json

            return json.loads(text)
        out: dict[str, str] = {}
        for part in text.split(","):
            if not part.strip():
                continue
            role, sep, number = part.partition("=")
            if not sep:
                raise ValueError(f"expected role=tokens, got {part.strip()!r}")
            out[role.strip()] = number.strip()
        return out
    return value


class LLMSettings(BaseSettings):
    """How the desk reaches a language model, which models it uses and what it may spend."""

    model_config = SettingsConfigDict(
        env_file=None,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        validate_default=True,
        populate_by_name=True,
    )

    provider: Provider = Field(
        default="rules",
        validation_alias=_env("LLM_PROVIDER"),
        description="rules (offline, deterministic, no key) | openai (any OpenAI-compatible endpoint) | "
        "replay (a recorded cassette) | record (call openai and write the cassette).",
    )
    base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=_env("LLM_BASE_URL"),
        description="Base URL of the OpenAI-compatible API (OpenAI, OpenRouter, Together.ai, vLLM, Ollama).",
    )
    api_key: SecretStr | None = Field(default=None, validation_alias=_env("LLM_API_KEY"))
    api_key_file: Path | None = Field(
        default=None,
        validation_alias=_env("LLM_API_KEY_FILE"),
        description="A file holding the API key (a Docker/Kubernetes secret); used when LLM_API_KEY is unset.",
    )
    cheap_model: str = Field(default="gpt-4o-mini", min_length=1, validation_alias=_env("CHEAP_MODEL"))
    strong_model: str = Field(default="gpt-4o", min_length=1, validation_alias=_env("STRONG_MODEL"))
    daily_token_budget: int = Field(default=200_000, ge=0, validation_alias=_env("DAILY_TOKEN_BUDGET"))
    max_tokens: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        validation_alias=_env("LLM_MAX_TOKENS"),
        description="Per-role answer caps over the defaults, e.g. 'researcher=900,trader=300'.",
    )
    default_max_tokens: int = Field(default=500, ge=16, le=32_768, validation_alias=_env("LLM_DEFAULT_MAX_TOKENS"))
    timeout_s: float = Field(
        default=30.0, gt=0, le=600, validation_alias=_env("LLM_TIMEOUT_S"), description="One HTTP attempt's timeout."
    )
    max_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        validation_alias=_env("LLM_MAX_ATTEMPTS"),
        description="HTTP attempts per completion (timeouts, 429, 5xx); all of them inside the call's deadline.",
    )
    json_schema: bool = Field(
        default=True,
        validation_alias=_env("LLM_JSON_SCHEMA"),
        description="Ask for response_format json_schema; false asks for json_object (the fallback is automatic "
        "when a provider rejects json_schema).",
    )
    prices: Annotated[dict[str, ModelPrice], NoDecode] = Field(
        default_factory=dict,
        validation_alias=_env("LLM_PRICES"),
        description="USD per million tokens over the built-in table: 'model=in/out,...', e.g. 'my-model=0.2/0.8'.",
    )
    cassette: Path | None = Field(
        default=None, validation_alias=_env("LLM_CASSETTE"), description="The cassette file of replay/record."
    )

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _roles(cls, value: object) -> object:
        return _parse_role_ints(value)

    @field_validator("max_tokens")
    @classmethod
    def _roles_positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [role for role, n in value.items() if not 16 <= n <= 32_768]
        if bad:
            raise ValueError(f"max tokens must be 16..32768 for {bad}")
        return value

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_prices(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.provider in ("replay", "record") and self.cassette is None:
            raise ValueError(f"provider {self.provider} needs LLM_CASSETTE (the cassette file)")
        return self

    def model_for(self, tier: Tier) -> str:
        """The model name of a tier."""
        return self.cheap_model if tier == "cheap" else self.strong_model

    @staticmethod
    def tier_of(role: str) -> Tier:
        """The tier of a desk role: analysts are cheap, the rest strong."""
        return "cheap" if role in ANALYST_ROLES else "strong"

    def max_tokens_for(self, role: str) -> int:
        """The answer cap of a role."""
        return self.max_tokens.get(role, DEFAULT_MAX_TOKENS.get(role, self.default_max_tokens))

    def price_table(self) -> PriceTable:
        """The built-in prices with the configured ones over them."""
        return PriceTable({**DEFAULT_PRICES, **self.prices})

    def resolved_api_key(self) -> SecretStr | None:
        """The key from ``LLM_API_KEY``, else from ``LLM_API_KEY_FILE``; None when neither is set."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key
        if self.api_key_file is not None:
            try:
                text = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"LLM_API_KEY_FILE {self.api_key_file} cannot be read: {exc.strerror}"
                ) from None
            return SecretStr(text) if text else None
        return None

    def require_api_key(self) -> SecretStr:
        """The key, or a :class:`ConfigurationError` saying where to put it."""
        key = self.resolved_api_key()
        if key is None:
            raise ConfigurationError(
                "the openai provider needs an API key: set LLM_API_KEY or LLM_API_KEY_FILE "
                "(a local vLLM/Ollama server accepts any non-empty value)"
            )
        return key


def load_llm_settings(**overrides: Any) -> LLMSettings:
    """Read :class:`LLMSettings` from the environment plus ``overrides`` (by field name); invalid
    settings raise :class:`ConfigurationError` with one line per problem (never the key)."""
    try:
        return LLMSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            field = str(err["loc"][0]) if err["loc"] else ""
            info = LLMSettings.model_fields.get(field)
            alias = info.validation_alias if info is not None else None
            name = alias.choices[-1] if isinstance(alias, AliasChoices) else (field or "llm settings")
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigurationError("invalid LLM settings: " + "; ".join(problems)) from None
