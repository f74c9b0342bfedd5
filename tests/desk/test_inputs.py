"""The desk's file inputs: served as of the decision time, never later than it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from infrastructure.feeds.desk_files import (
    CsvNewsSource,
    CsvSentimentSource,
    DeskDataFiles,
    DeskFileError,
    JsonTokenomicsSource,
)

T = datetime(2025, 5, 5, 12, tzinfo=UTC)


def test_headlines_count_from_first_seen_not_published() -> None:
    news = DeskDataFiles().load().news
    got = news.headlines("BTC", T, limit=500, lookback_h=1000)
    assert got
    assert all(h.first_seen <= T for h in got)
    assert [h.first_seen for h in got] == sorted((h.first_seen for h in got), reverse=True)
    # items published before T but first seen after it are not shown
    assert isinstance(news, CsvNewsSource)
    late = [h for h in news._items if h.published <= T < h.first_seen]
    assert late, "the sample has items that were published before they were first seen"
    assert not {h.title for h in late} & {h.title for h in got}
    assert news.headlines("BTC", datetime(2025, 5, 1, tzinfo=UTC), limit=5, lookback_h=48) == []
    assert news.headlines("ETH", T, limit=5, lookback_h=48) == []
    assert len(news.headlines("BTC", T, limit=3, lookback_h=48)) == 3


def test_sentiment_of_a_day_is_available_from_its_midnight() -> None:
    sentiment = DeskDataFiles().load().sentiment
    before = sentiment.readings(datetime(2025, 5, 4, 23, 59, tzinfo=UTC), days=3)
    at = sentiment.readings(datetime(2025, 5, 5, tzinfo=UTC), days=3)
    assert [r.day_start.day for r in before] == [2, 3, 4]
    assert [r.day_start.day for r in at] == [3, 4, 5]
    assert all(0 <= r.value <= 100 and r.label for r in at)


def test_tokenomics_profiles() -> None:
    tokenomics = DeskDataFiles().load().tokenomics
    btc = tokenomics.profile("BTC")
    assert btc is not None
    assert btc.max_supply == "21000000"
    assert len(btc.risks) >= 2
    assert tokenomics.profile("DOGE") is None


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "news.csv"
    bad.write_text("published_utc,first_seen_utc,source,headline\nyesterday,2025-05-05T00:00:00Z,x,y\n")
    with pytest.raises(DeskFileError, match="news.csv:2: bad time 'yesterday'"):
        CsvNewsSource(bad)
    fg = tmp_path / "fg.csv"
    fg.write_text("date,value,classification\n2025-05-05,140,Greed\n")
    with pytest.raises(DeskFileError, match="not in 0..100"):
        CsvSentimentSource(fg)
    tok = tmp_path / "t.json"
    tok.write_text("{}")
    with pytest.raises(DeskFileError, match="not a tokenomics file"):
        JsonTokenomicsSource(tok)
