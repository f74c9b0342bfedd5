"""File adapters of the desk's input ports (:mod:`core.desk.inputs`).

* :class:`CsvNewsSource`: ``published_utc,first_seen_utc,source,headline`` (ISO UTC times); a
  headline is available from its ``first_seen_utc``, never from its claimed publication time.
* :class:`CsvSentimentSource`: ``date,value,classification`` (the daily Fear & Greed index); a day's
  value is available from 00:00 UTC of that day.
* :class:`JsonTokenomicsSource`: the ``tokenomics.json`` of ``data/desk`` (``assets.<ASSET>.*``
  fields, each ``{"value": ..., "status": ...}``).

The files are read once; queries are bisections on the sorted availability times.
"""

from __future__ import annotations

import bisect
import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.desk.inputs import DeskInputs, Headline, SentimentReading, TokenProfile

DEFAULT_DESK_DATA = Path(__file__).resolve().parents[2] / "data" / "desk"
"""The shipped sample inputs (see ``data/desk/README.md``)."""


class DeskFileError(ValueError):
    """An input file that cannot be read (a missing column, a bad time or value)."""


def _utc(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DeskFileError(f"{where}: bad time {text!r}") from None
    if value.tzinfo is None:
        raise DeskFileError(f"{where}: time {text!r} has no timezone")
    return value.astimezone(UTC)


class CsvNewsSource:
    """Headlines from a CSV file, served by their first-seen time (see the module docstring)."""

    def __init__(self, path: Path, asset: str = "BTC") -> None:
        self.path = path
        self.asset = asset
        items: list[Headline] = []
        with path.open(encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                where = f"{path.name}:{n}"
                try:
                    items.append(
                        Headline(
                            published=_utc(row["published_utc"], where),
                            first_seen=_utc(row["first_seen_utc"], where),
                            source=row["source"].strip(),
                            title=" ".join(row["headline"].split()),
                        )
                    )
                except KeyError as exc:
                    raise DeskFileError(f"{where}: missing column {exc}") from None
        items.sort(key=lambda h: (h.first_seen, h.published, h.title))
        self._items = items
        self._seen = [h.first_seen for h in items]

    def headlines(self, asset: str, as_of: datetime, *, limit: int, lookback_h: float) -> list[Headline]:
        """The newest ``limit`` headlines first seen in ``(as_of - lookback_h, as_of]``, newest first."""
        if asset != self.asset or limit <= 0:
            return []
        end = bisect.bisect_right(self._seen, as_of)
        start = bisect.bisect_right(self._seen, as_of - timedelta(hours=lookback_h))
        window = self._items[start:end]
        window.sort(key=lambda h: (h.first_seen, h.published, h.title), reverse=True)
        return window[:limit]


class CsvSentimentSource:
    """The daily Fear & Greed index from a CSV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        readings: list[SentimentReading] = []
        with path.open(encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                where = f"{path.name}:{n}"
                try:
                    day = _utc(row["date"] + "T00:00:00+00:00", where)
                    value = int(row["value"])
                except (KeyError, ValueError) as exc:
                    raise DeskFileError(f"{where}: bad row ({exc})") from None
                if not 0 <= value <= 100:
                    raise DeskFileError(f"{where}: value {value} is not in 0..100")
                readings.append(SentimentReading(day, value, row.get("classification", "").strip()))
        readings.sort(key=lambda r: r.day_start)
        self._readings = readings
        self._days = [r.day_start for r in readings]

    def readings(self, as_of: datetime, *, days: int) -> list[SentimentReading]:
        """The last ``days`` readings whose day has started at ``as_of``, oldest first."""
        end = bisect.bisect_right(self._days, as_of)
        return self._readings[max(0, end - days) : end]


def _text(field: Any) -> str:
    if isinstance(field, dict):
        field = field.get("value")
    if field is None:
        return "not provided"
    if isinstance(field, list):
        return "; ".join(str(x) for x in field)
    return str(field)


class JsonTokenomicsSource:
    """Token profiles from ``tokenomics.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            assets = doc["assets"]
        except (OSError, ValueError, KeyError) as exc:
            raise DeskFileError(f"{path.name}: not a tokenomics file ({exc})") from None
        self._profiles: dict[str, TokenProfile] = {}
        for asset, fields in assets.items():
            risks = fields.get("major_risks", {})
            risk_list = risks.get("value", []) if isinstance(risks, dict) else []
            self._profiles[asset] = TokenProfile(
                asset=asset,
                name=str(fields.get("name", asset)),
                category=_text(fields.get("category")),
                max_supply=_text(fields.get("max_supply")),
                issuance=_text(fields.get("issuance_schedule")),
                fee_burn=_text(fields.get("fee_burn")),
                risks=tuple(str(r) for r in risk_list),
            )

    def profile(self, asset: str) -> TokenProfile | None:
        """The profile of ``asset`` or None."""
        return self._profiles.get(asset)


@dataclass(frozen=True, slots=True)
class DeskDataFiles:
    """Where the desk's input files are (``TRADESWARM_DESK_DATA_DIR``, default ``data/desk``)."""

    root: Path = DEFAULT_DESK_DATA
    news: str = "bitcoin_news_2025-05-03_05.csv"
    sentiment: str = "fear_greed_2024-12_2025-05.csv"
    tokenomics: str = "tokenomics.json"

    def load(self) -> DeskInputs:
        """The three file sources."""
        return DeskInputs(
            news=CsvNewsSource(self.root / self.news),
            sentiment=CsvSentimentSource(self.root / self.sentiment),
            tokenomics=JsonTokenomicsSource(self.root / self.tokenomics),
        )
