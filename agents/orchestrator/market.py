"""The latest indicator snapshots per series, kept in memory from the bus for the API."""

from __future__ import annotations

from collections import deque

from core.messages import IndicatorSnapshot


class LatestSnapshots:
    """The last ``size`` :class:`IndicatorSnapshot` of every (venue, symbol, timeframe).

    A snapshot with the same ``open_time`` as the newest one replaces it (a redelivery), an older
    one is ignored, so the window stays ordered and free of duplicates.
    """

    def __init__(self, size: int = 200) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._size = size
        self._series: dict[tuple[str, str, str], deque[IndicatorSnapshot]] = {}

    def add(self, snapshot: IndicatorSnapshot) -> bool:
        """Keep ``snapshot``; False when it was older than the newest one kept."""
        key = (snapshot.venue, snapshot.symbol, snapshot.timeframe)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = deque(maxlen=self._size)
        if series:
            newest = series[-1]
            if snapshot.open_time < newest.open_time:
                return False
            if snapshot.open_time == newest.open_time:
                series[-1] = snapshot
                return True
        series.append(snapshot)
        return True

    def symbols(self) -> list[tuple[str, str, str]]:
        """Every (venue, symbol, timeframe) seen, sorted."""
        return sorted(self._series)

    def latest(
        self, symbol: str, *, timeframe: str | None = None, venue: str | None = None, limit: int = 50
    ) -> list[IndicatorSnapshot]:
        """Up to ``limit`` most recent snapshots of ``symbol`` (oldest first) for one series.

        With no timeframe/venue given, the first matching series in sorted order is used.
        """
        for key in sorted(self._series):
            v, s, tf = key
            if s == symbol and (timeframe is None or tf == timeframe) and (venue is None or v == venue):
                items = list(self._series[key])
                return items[-limit:] if limit > 0 else []
        return []
