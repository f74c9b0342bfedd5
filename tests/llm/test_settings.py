"""LLMSettings: names, parsing, the key (from env or a file) and one-line errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.llm import Usage
from infrastructure.llm.prices import ModelPrice, PriceTable, parse_prices
from infrastructure.llm.settings import LLMSettings, load_llm_settings

ENV_NAMES = [
    "LLM_PROVIDER",
    "LLM_BASE_URL",
    "LLM_API_KEY",
    "LLM_API_KEY_FILE",
    "CHEAP_MODEL",
    "STRONG_MODEL",
    "DAILY_TOKEN_BUDGET",
    "LLM_MAX_TOKENS",
    "LLM_TIMEOUT_S",
    "LLM_PRICES",
    "LLM_CASSETTE",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"TRADESWARM_{name}", raising=False)


def test_defaults_are_offline_rules() -> None:
    s = load_llm_settings()
    assert s.provider == "rules"
    assert s.resolved_api_key() is None
    assert s.model_for("cheap") == "gpt-4o-mini"
    assert s.model_for("strong") == "gpt-4o"
    assert LLMSettings.tier_of("technical") == "cheap"
    assert LLMSettings.tier_of("risk_manager") == "strong"


def test_short_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("CHEAP_MODEL", "short-name")
    monkeypatch.setenv("TRADESWARM_CHEAP_MODEL", "prefixed-name")
    monkeypatch.setenv("DAILY_TOKEN_BUDGET", "5000")
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:11434/v1/")
    monkeypatch.setenv("LLM_MAX_TOKENS", "researcher=900, trader=250")
    s = load_llm_settings()
    assert s.provider == "openai"
    assert s.cheap_model == "prefixed-name"
    assert s.daily_token_budget == 5000
    assert s.base_url == "http://127.0.0.1:11434/v1"
    assert s.max_tokens_for("researcher") == 900
    assert s.max_tokens_for("trader") == 250
    assert s.max_tokens_for("technical") == 400
    assert s.max_tokens_for("someone_else") == s.default_max_tokens


def test_an_empty_prefixed_variable_does_not_hide_the_short_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESWARM_LLM_API_KEY", "")
    monkeypatch.setenv("LLM_API_KEY", "sk-short-name")
    monkeypatch.setenv("TRADESWARM_LLM_PROVIDER", "")
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    s = load_llm_settings()
    assert s.provider == "openai"
    assert s.require_api_key().get_secret_value() == "sk-short-name"


def test_key_from_env_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", "sk-supersecret-123456")
    s = load_llm_settings()
    assert s.require_api_key().get_secret_value() == "sk-supersecret-123456"
    assert "sk-supersecret" not in repr(s)
    assert "sk-supersecret" not in str(s.model_dump())


def test_key_from_file(tmp_path: Path) -> None:
    path = tmp_path / "llm_key"
    path.write_text("sk-from-file\n")
    s = load_llm_settings(api_key_file=path)
    assert s.require_api_key().get_secret_value() == "sk-from-file"


def test_missing_key_and_unreadable_file_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="LLM_API_KEY"):
        load_llm_settings().require_api_key()
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_llm_settings(api_key_file=tmp_path / "absent").require_api_key()


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAILY_TOKEN_BUDGET", "-5")
    monkeypatch.setenv("LLM_API_KEY", "sk-never-shown")
    with pytest.raises(ConfigurationError) as info:
        load_llm_settings()
    message = str(info.value)
    assert "DAILY_TOKEN_BUDGET" in message
    assert "\n" not in message
    assert "sk-never-shown" not in message


def test_replay_needs_a_cassette() -> None:
    with pytest.raises(ConfigurationError, match="LLM_CASSETTE"):
        load_llm_settings(provider="replay")


def test_prices_parse_and_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PRICES", "meta-llama/llama-3.1-8b=0.05/0.08, gpt-4o=3/12")
    table = load_llm_settings().price_table()
    assert table.cost("meta-llama/llama-3.1-8b", Usage(1_000_000, 500_000)) == Decimal("0.09")
    assert table.cost("gpt-4o", Usage(1000, 1000)) == Decimal("0.015")
    assert table.cost("gpt-4o-mini", Usage(1_000_000, 0)) == Decimal("0.15")
    assert not table.known("unknown-model")
    assert table.cost("unknown-model", Usage(10, 10)) == 0


@pytest.mark.parametrize("text", ["gpt=1", "=1/2", "gpt=a/b", "gpt=-1/2"])
def test_bad_prices_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_prices(text)


def test_price_table_items_sorted() -> None:
    table = PriceTable({"b": ModelPrice(Decimal(1), Decimal(2)), "a": ModelPrice(Decimal(0), Decimal(0))})
    assert [m for m, _ in table.items()] == ["a", "b"]


def test_env_example_lists_every_llm_setting() -> None:
    from pydantic import AliasChoices

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text(encoding="utf-8")
    missing = []
    for field in LLMSettings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        prefixed = alias.choices[0]
        if f"{prefixed}=" not in text:
            missing.append(prefixed)
    assert not missing, f".env.example lacks {missing}"
    assert "\n# TRADESWARM_LLM_API_KEY=\n" in text  # a secret: empty
