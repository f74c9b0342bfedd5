"""The technical analysis agent over a column of candles: indicators as functions over arrays.

The agent's only input is candles, so its output for a whole block of candles is known as soon as
the block is: :func:`derive_snapshots` feeds every series' indicator engine the block in one pass
(:meth:`IndicatorEngine.update_many`: the same handles, the same updates as one candle at a time)
and returns the snapshots as a :class:`SnapshotColumn`. A snapshot is built (exactly as
:meth:`TechnicalAnalysisAgent.on_candle` builds it) only when a consumer must receive it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from agents.technical_analysis.snapshot import build_snapshot
from core.columns import REGIMES, CandleColumn, IndicatorColumn, SeriesInfo
from core.messages import Envelope, IndicatorSnapshot, Payload
from core.routing import INDICATORS

_isfinite = math.isfinite


class SnapshotColumn(IndicatorColumn):
    """Row ``i``: the snapshot the agent publishes when it handles candle ``i`` of ``candles``."""

    def __init__(
        self,
        candles: CandleColumn,
        table: Sequence[SeriesInfo],
        present: NDArray[np.bool_],
        values: dict[str, NDArray[np.float64]],
        patterns: dict[str, NDArray[np.int64]],
        regime: NDArray[np.int8],
        *,
        source: str,
    ) -> None:
        super().__init__(candles, table, present, values, regime, source=source)
        self.patterns = patterns
        self._lists: dict[str, list[float]] | None = None

    def build(self, i: int) -> IndicatorSnapshot:
        """The snapshot of row ``i``."""
        candle = self.candles.candle(i)
        values: dict[str, float] = {}
        for key, array in self.values.items():
            value = float(array[i])
            if _isfinite(value):
                values[key] = value
        patterns = {key: int(array[i]) for key, array in self.patterns.items() if array[i]}
        return build_snapshot(candle, values, patterns, REGIMES[int(self.regime[i])])

    def wrap(self, i: int, payload: Payload) -> Envelope:
        """The agent's envelope: caused by the candle's, at the candle's close time."""
        clock = self.clock
        assert clock is not None
        assert isinstance(payload, IndicatorSnapshot)
        return Envelope.wrap(
            payload, source=self.source, clock=clock, ts_event=payload.close_time, cause=self.candles.envelope(i)
        )


def snapshot_table(candles: CandleColumn) -> list[SeriesInfo]:
    """The snapshot routing of each series of ``candles``."""
    return [
        SeriesInfo(
            info.venue,
            info.symbol,
            info.timeframe,
            INDICATORS.key(venue=info.venue, symbol=info.symbol, timeframe=info.timeframe),
        )
        for info in candles.table
    ]
