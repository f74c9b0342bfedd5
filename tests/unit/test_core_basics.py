"""ids, clocks, routing matching, settings and the committed contract document."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import SimulatedClock, WallClock, ms_from_utc, utc_from_ms
from core.domain import Mode, timeframe_to_timedelta
from core.errors import ConfigurationError
from core.ids import client_order_id, content_id, uuid7, uuid7_time_ms
from core.routing import escape, partition_of, topic_matches
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_uuid7_is_time_ordered_unique_and_versioned() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids[:50])
    assert uuid7_time_ms(uuid7(lambda: 1_700_000_000_123)) >= 1_700_000_000_123


def test_content_ids_are_deterministic_and_unambiguous() -> None:
    a = content_id("intent", "binance", "BTC/USDT", "2024-01-01T00:00:00Z", "long")
    assert a == content_id("intent", "binance", "BTC/USDT", "2024-01-01T00:00:00Z", "long")
    assert a != content_id("intent", "binance", "BTC/USDT", "2024-01-01T00:00:00Z", "exit")
    assert content_id("x", "ab", "c") != content_id("x", "a", "bc")  # parts are separated
    coid = client_order_id(a)
    assert coid == client_order_id(a)
    assert re.fullmatch(r"[A-Za-z0-9-]{1,32}", coid)
    assert client_order_id(a, attempt=1) != coid


def test_simulated_clock_only_moves_forward() -> None:
    clock = SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    clock.advance(timedelta(hours=1))
    assert clock.now() == datetime(2024, 1, 1, 1, tzinfo=UTC)
    assert clock.monotonic() == 3600
    with pytest.raises(ValueError, match="back"):
        clock.advance_to(datetime(2023, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="aware"):
        SimulatedClock(datetime(2024, 1, 1))
    assert WallClock().now().tzinfo is UTC


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_ms_conversion_round_trips(ms: int) -> None:
    assert ms_from_utc(utc_from_ms(ms)) == ms


def test_timeframes() -> None:
    assert timeframe_to_timedelta("4h") == timedelta(hours=4)
    assert timeframe_to_timedelta("1w") == timedelta(days=7)
    with pytest.raises(ValueError, match="calendar-month"):
        timeframe_to_timedelta("1M")
    with pytest.raises(ValueError, match="unknown timeframe"):
        timeframe_to_timedelta("1y")


def _reference_match(pattern: str, key: str) -> bool:
    """A regex translation of AMQP topic patterns, independent of the implementation.

    Every word is matched with its leading dot, against '.' + key: '*' is one dotted word and '#'
    any number (zero included) of dotted words.
    """
    tokens = {"*": r"\.[^.]+", "#": r"(?:\.[^.]+)*"}
    rx = "".join(tokens.get(word, r"\." + re.escape(word)) for word in pattern.split("."))
    return re.fullmatch(rx, "." + key) is not None


words = st.sampled_from(["market", "candle", "binance", "BTC-USDT", "1h", "a"])
pattern_words = st.one_of(words, st.just("*"), st.just("#"))


@given(st.lists(pattern_words, min_size=1, max_size=5), st.lists(words, min_size=1, max_size=6))
def test_topic_matching_agrees_with_a_regex_reference(pattern: list[str], key: list[str]) -> None:
    p, k = ".".join(pattern), ".".join(key)
    assert topic_matches(p, k) == _reference_match(p, k), (p, k)


def test_topic_matching_edge_cases() -> None:
    assert topic_matches("a.#", "a")  # '#' matches zero words
    assert topic_matches("#", "a.b.c")
    assert topic_matches("a.#.c", "a.c")
    assert not topic_matches("a.*", "a")
    assert not topic_matches("a.*", "a.b.c")
    assert escape("BTC/USDT:USDT") == "BTC-USDT-USDT"


def test_partitions_are_stable_and_spread() -> None:
    symbols = [f"S{i}/USDT" for i in range(200)]
    parts = [partition_of(s, 4) for s in symbols]
    assert parts == [partition_of(s, 4) for s in symbols]
    assert set(parts) == {0, 1, 2, 3}


def test_settings_defaults_and_mode_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("TRADESWARM_"):
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.mode is Mode.PAPER
    assert s.symbols == ["BTC/USDT"]
    assert "guest" not in repr(s)  # secrets are masked
    monkeypatch.setenv("TRADESWARM_SYMBOLS", "BTC/USDT, ETH/USDT")
    assert load_settings().symbols == ["BTC/USDT", "ETH/USDT"]
    monkeypatch.setenv("TRADESWARM_EXCHANGE_API_KEY", "k-123")
    with pytest.raises(ConfigurationError, match="no exchange keys"):
        load_settings()
    monkeypatch.setenv("TRADESWARM_MODE", "live")
    with pytest.raises(ConfigurationError, match="come together"):
        load_settings()
    monkeypatch.setenv("TRADESWARM_EXCHANGE_API_SECRET", "s-456")
    with pytest.raises(ConfigurationError, match="LIVE_TRADING_CONFIRMED"):
        load_settings()
    monkeypatch.setenv("TRADESWARM_LIVE_TRADING_CONFIRMED", "true")
    live = load_settings()
    assert live.mode is Mode.LIVE
    assert "k-123" not in repr(live)
    assert "s-456" not in str(live.model_dump())
    assert live.require_exchange_keys() == ("k-123", "s-456")
    monkeypatch.delenv("TRADESWARM_EXCHANGE_API_KEY")
    monkeypatch.delenv("TRADESWARM_EXCHANGE_API_SECRET")
    keyless = load_settings()  # a live strategy agent holds no keys
    with pytest.raises(ConfigurationError, match="execution agent"):
        keyless.require_exchange_keys()
    monkeypatch.setenv("TRADESWARM_SYMBOLS", "BTCUSDT")
    with pytest.raises(ConfigurationError, match="TRADESWARM_SYMBOLS"):
        load_settings()


def test_secrets_can_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "TRADESWARM_API_TOKEN").write_text("file-token")
    monkeypatch.setenv("TRADESWARM_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "file-token"


def test_env_example_lists_every_core_setting() -> None:
    from core.settings import Settings

    text = (ROOT / ".env.example").read_text()
    missing = [
        f"TRADESWARM_{name.upper()}" for name in Settings.model_fields if f"TRADESWARM_{name.upper()}" not in text
    ]
    assert not missing, f".env.example lacks {missing}"


def test_committed_contract_document_matches_the_models() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tradeswarm", "contracts", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_cli_bad_arguments_get_one_line_not_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tradeswarm", "agent", "no_such_agent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown agent 'no_such_agent'" in result.stderr
    assert "Traceback" not in result.stderr
