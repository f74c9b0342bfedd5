"""What the desk reads besides candles: headlines, a daily sentiment index, token metadata.

Each input is behind a port so a live source can replace the shipped files. Every source answers
"as of" a decision time: an item whose availability time is after it is never returned, so no role
ever sees the future (a headline counts from the time it was *first seen*, not the time the
article claims; a daily index from 00:00 UTC of its day, when it is published).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Headline:
    """One news headline: when it was published, when it was first seen (its availability)."""

    published: datetime
    first_seen: datetime
    source: str
    title: str


@dataclass(frozen=True, slots=True)
class SentimentReading:
    """One daily sentiment index value (Fear & Greed: 0 = extreme fear, 100 = extreme greed)."""

    day_start: datetime
    """00:00 UTC of the day the value refers to (and from which it is available)."""
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class TokenProfile:
    """A token's metadata: category, supply schedule and its major structural risks."""

    asset: str
    name: str
    category: str
    max_supply: str
    issuance: str
    fee_burn: str
    risks: tuple[str, ...]


@runtime_checkable
class NewsSource(Protocol):
    """Headlines about a symbol's asset."""

    def headlines(self, asset: str, as_of: datetime, *, limit: int, lookback_h: float) -> list[Headline]:
        """The latest ``limit`` headlines first seen in ``(as_of - lookback_h, as_of]``, newest first."""
        ...


@runtime_checkable
class SentimentSource(Protocol):
    """A daily market sentiment index."""

    def readings(self, as_of: datetime, *, days: int) -> list[SentimentReading]:
        """The last ``days`` readings available at ``as_of`` (day start <= as_of), oldest first."""
        ...


@runtime_checkable
class TokenomicsSource(Protocol):
    """Static token metadata."""

    def profile(self, asset: str) -> TokenProfile | None:
        """The profile of ``asset`` (``BTC``), or None when it is not known."""
        ...


@dataclass(frozen=True, slots=True)
class DeskInputs:
    """The three input sources of the desk (any may be empty)."""

    news: NewsSource
    sentiment: SentimentSource
    tokenomics: TokenomicsSource


class NoNews:
    """A news source with no headlines."""

    def headlines(self, asset: str, as_of: datetime, *, limit: int, lookback_h: float) -> list[Headline]:
        """Always empty."""
        return []


class NoSentiment:
    """A sentiment source with no readings."""

    def readings(self, as_of: datetime, *, days: int) -> list[SentimentReading]:
        """Always empty."""
        return []


class NoTokenomics:
    """A tokenomics source that knows no token."""

    def profile(self, asset: str) -> TokenProfile | None:
        """Always None."""
        return None
