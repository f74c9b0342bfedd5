"""Columns: a block of messages of one kind held as arrays, each message built only when delivered.

A backtest replays millions of candles; most of them change nothing anywhere (no order to fill, no
stop touched, no strategy that would vote). A :class:`Column` carries such a block as numpy arrays,
one row per message in publish order, and builds a row's payload and envelope only when a consumer
must really receive it (:mod:`core.wake` says which). Publishing a column means exactly what
publishing its rows one after the other means (:meth:`core.ports.Bus.publish_column`): a bus that
has no use for columns (RabbitMQ) just builds and publishes every row.

* :class:`CandleColumn`: candles of one or more (venue, symbol, timeframe) series merged by close
  time. Its float arrays are the exact ``float()`` of each candle's Decimal prices (what every
  consumer that computes in floats reads), and ``build(i)`` makes the very same :class:`Candle` the
  row-by-row feed would have made.
* Derived columns (the technical analysis agent's indicator snapshots) are aligned row for row with
  the column they come from: row ``i`` of the derived column is what its producer publishes when it
  handles row ``i`` of its input (``present[i]`` is False where it publishes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.clock import SimulatedClock, ms_from_utc
from core.domain import MarketRegime
from core.messages.base import Envelope, Payload
from core.messages.market import Candle
from core.trusted import trusted_candle

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Rows = NDArray[np.intp]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

REGIMES: tuple[MarketRegime, ...] = tuple(MarketRegime)
"""Regime codes of an :class:`IndicatorColumn`: ``REGIMES[code]``."""
REGIME_CODE: dict[MarketRegime, int] = {regime: code for code, regime in enumerate(REGIMES)}


def utc_from_ms(ms: int) -> datetime:
    """The exact UTC datetime of epoch milliseconds (the same object a feed builds by addition)."""
    seconds, millis = divmod(ms, 1000)
    return EPOCH + timedelta(0, seconds, millis * 1000)  # positional: half the cost of the keyword form


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One series of a column: its identity and the routing key its messages are published with."""

    venue: str
    symbol: str
    timeframe: str
    routing_key: str


class Column:
    """A block of ``n`` messages in publish order, built on demand (see the module docstring).

    ``series[i]`` is the index in :attr:`table` of row ``i``'s series; :meth:`rows` lists the rows
    of one series. ``present[i]`` says whether row ``i`` carries a message at all.
    """

    def __init__(
        self,
        table: Sequence[SeriesInfo],
        series: NDArray[np.intp],
        *,
        source: str,
        clock: SimulatedClock | None,
        present: NDArray[np.bool_] | None = None,
    ) -> None:
        self.table = tuple(table)
        self.series = series
        self.n = int(series.shape[0])
        self.source = source
        self.clock = clock
        self.present = present
        self._rows: dict[int, Rows] = {}
        self._all: Rows | None = np.arange(self.n, dtype=np.intp) if len(self.table) == 1 and present is None else None
        """Every row, when there is one series and every row carries a message (rows are then ranges)."""
        self._payloads: dict[int, Payload] = {}
        self._envelopes: dict[int, Envelope] = {}
        self.built = 0
        """Payloads built so far (the backtest reports how few)."""

    @property
    def single_series(self) -> bool:
        """One series, every row present: the rows of the series are ``range(n)``."""
        return self._all is not None

    def rows(self, s: int) -> Rows:
        """The (sorted) row indices of series ``s`` (present rows only)."""
        if self._all is not None:
            return self._all
        rows = self._rows.get(s)
        if rows is None:
            mask = self.series == s
            if self.present is not None:
                mask &= self.present
            rows = self._rows[s] = np.flatnonzero(mask)
        return rows

    def rows_between(self, s: int, start: int, stop: int) -> Rows:
        """The rows of series ``s`` in ``[start, stop)``."""
        if self._all is not None:
            return self._all[start:stop]
        rows = self.rows(s)
        return rows[rows.searchsorted(start) : rows.searchsorted(stop)]

    def first_row(self, sids: Sequence[int], start: int, stop: int) -> int:
        """The first row in ``[start, stop)`` of one of ``sids`` (``stop`` if none)."""
        if self._all is not None:
            return start if start < stop else stop
        for s in sids:
            rows = self.rows(s)
            i = int(rows.searchsorted(start))
            if i < rows.shape[0] and rows[i] < stop:
                stop = int(rows[i])
        return stop

    def has(self, i: int) -> bool:
        """Whether row ``i`` carries a message."""
        present = self.present
        return present is None or bool(present[i])

    def payload(self, i: int) -> Payload:
        """Row ``i``'s payload, built once."""
        payload = self._payloads.get(i)
        if payload is None:
            payload = self._payloads[i] = self.build(i)
            self.built += 1
        return payload

    def envelope(self, i: int) -> Envelope:
        """Row ``i``'s envelope, built once (one envelope shared by every consumer of the row)."""
        envelope = self._envelopes.get(i)
        if envelope is None:
            envelope = self._envelopes[i] = self.wrap(i, self.payload(i))
        return envelope

    def built_envelope(self, i: int) -> Envelope | None:
        """Row ``i``'s envelope if it was built already (delivered to someone)."""
        return self._envelopes.get(i)

    def release(self, i: int) -> None:
        """Forget row ``i``'s payload and envelope (it was delivered: memory stays bounded)."""
        self._payloads.pop(i, None)
        self._envelopes.pop(i, None)

    # -- to implement -----------------------------------------------------------------------------

    def build(self, i: int) -> Payload:
        """Build row ``i``'s payload."""
        raise NotImplementedError

    def wrap(self, i: int, payload: Payload) -> Envelope:
        """Row ``i``'s envelope around ``payload``."""
        raise NotImplementedError


DAY_MS = 86_400_000


class CandleLists:
    """A :class:`CandleColumn`'s arrays as Python lists, each built on first use (see
    :meth:`CandleColumn.lists`): code that decides over a few rows at a time in plain Python reads
    one list item far cheaper than a numpy scalar or call. It holds the arrays, not the column (no
    reference cycle: a block's memory goes as soon as the block does)."""

    __slots__ = (
        "_close",
        "_close_array",
        "_close_ms",
        "_close_ms_array",
        "_day",
        "_high",
        "_high_array",
        "_low",
        "_low_array",
        "_open_ms",
        "_open_ms_array",
        "_series",
        "_series_array",
    )

    def __init__(self, column: CandleColumn) -> None:
        self._series_array = column.series
        self._close_array = column.close
        self._open_ms_array = column.open_ms
        self._close_ms_array = column.close_ms
        self._high_array = column.high
        self._low_array = column.low
        self._series: list[int] | None = None
        self._close: list[float] | None = None
        self._day: list[int] | None = None
        self._open_ms: list[int] | None = None
        self._close_ms: list[int] | None = None
        self._high: list[float] | None = None
        self._low: list[float] | None = None

    @property
    def series(self) -> list[int]:
        """Each row's series index."""
        if self._series is None:
            self._series = self._series_array.tolist()
        return self._series

    @property
    def close(self) -> list[float]:
        """Each row's close (float)."""
        if self._close is None:
            self._close = self._close_array.tolist()
        return self._close

    @property
    def day(self) -> list[int]:
        """The UTC day number (days since the epoch) of each row's close time."""
        if self._day is None:
            self._day = (self._close_ms_array // DAY_MS).tolist()
        return self._day

    @property
    def open_ms(self) -> list[int]:
        """Each row's open time in epoch milliseconds."""
        if self._open_ms is None:
            self._open_ms = self._open_ms_array.tolist()
        return self._open_ms

    @property
    def close_ms(self) -> list[int]:
        """Each row's close time in epoch milliseconds."""
        if self._close_ms is None:
            self._close_ms = self._close_ms_array.tolist()
        return self._close_ms

    @property
    def high(self) -> list[float]:
        """Each row's high (float)."""
        if self._high is None:
            self._high = self._high_array.tolist()
        return self._high

    @property
    def low(self) -> list[float]:
        """Each row's low (float)."""
        if self._low is None:
            self._low = self._low_array.tolist()
        return self._low


ExactCandle = Callable[[int], tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]
"""Row -> its exact (open, high, low, close, volume) Decimals."""
ExactClose = Callable[[int], Decimal]
"""Row -> its exact close (cheaper than all five values)."""


class CandleColumn(Column):
    """Candles of one or more series merged by close time (see the module docstring).

    Arrays (one entry per row): ``open_ms``, ``close_ms`` (epoch milliseconds), ``open``, ``high``,
    ``low``, ``close``, ``volume`` (``float`` of the exact values) and ``sequence``. ``exact(i)``
    gives the exact Decimals of row ``i``; :meth:`close_decimal` caches the closes that consumers
    computing in Decimal ask for.
    """

    def __init__(
        self,
        table: Sequence[SeriesInfo],
        series: NDArray[np.intp],
        *,
        open_ms: I64,
        close_ms: I64,
        open: F64,
        high: F64,
        low: F64,
        close: F64,
        volume: F64,
        sequence: I64,
        exact: ExactCandle,
        source: str,
        clock: SimulatedClock | None = None,
        candles: Sequence[Candle] | None = None,
        exact_close: ExactClose | None = None,
    ) -> None:
        super().__init__(table, series, source=source, clock=clock)
        self.open_ms = open_ms
        self.close_ms = close_ms
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.sequence = sequence
        self.exact = exact
        self._exact_close = exact_close
        self._candles = candles
        self._closes: dict[int, Decimal] = {}
        self._lists: CandleLists | None = None

    def lists(self) -> CandleLists:
        """The column's arrays as Python lists, each built on first use (:class:`CandleLists`)."""
        if self._lists is None:
            self._lists = CandleLists(self)
        return self._lists

    def build(self, i: int) -> Candle:
        """The row's :class:`Candle` (the exact one the row-by-row feed makes)."""
        if self._candles is not None:
            return self._candles[i]
        info = self.table[int(self.series[i])]
        o, h, low, c, v = self.exact(i)
        return trusted_candle(
            info.venue,
            info.symbol,
            info.timeframe,
            utc_from_ms(int(self.open_ms[i])),
            utc_from_ms(int(self.close_ms[i])),
            o,
            h,
            low,
            c,
            v,
            int(self.sequence[i]),
        )

    def candle(self, i: int) -> Candle:
        """Row ``i``'s candle (built once)."""
        payload = self.payload(i)
        assert isinstance(payload, Candle)
        return payload

    def close_time(self, i: int) -> datetime:
        """Row ``i``'s close time."""
        return utc_from_ms(int(self.close_ms[i]))

    def close_decimal(self, i: int) -> Decimal:
        """Row ``i``'s exact close."""
        close = self._closes.get(i)
        if close is None:
            payload = self._payloads.get(i)
            if isinstance(payload, Candle):
                close = payload.close
            elif self._exact_close is not None:
                close = self._exact_close(i)
            else:
                close = self.exact(i)[3]
            self._closes[i] = close
        return close

    def close_uncached(self, i: int) -> Decimal:
        """Row ``i``'s exact close, not kept (for a reader that visits each row once: the replay's
        equity samples); :meth:`close_decimal` keeps what the agents ask for."""
        close = self._closes.get(i)
        if close is not None:
            return close
        payload = self._payloads.get(i)
        if isinstance(payload, Candle):
            return payload.close
        return self._exact_close(i) if self._exact_close is not None else self.exact(i)[3]

    def wrap(self, i: int, payload: Payload) -> Envelope:
        """The feed's envelope of row ``i`` (source = the feed, market time = the close time)."""
        clock = self.clock
        assert clock is not None, "a column needs a clock to make envelopes"
        assert isinstance(payload, Candle)
        return Envelope.wrap(payload, source=self.source, clock=clock, ts_event=payload.close_time)

    def release(self, i: int) -> None:
        """Also forget the row's cached close."""
        super().release(i)
        self._closes.pop(i, None)


def candle_column_of(candles: Sequence[Candle], table_keys: Callable[[Candle], str], *, source: str,
                     clock: SimulatedClock | None = None) -> CandleColumn:  # fmt: skip
    """A column over candles that already exist (tests, sources without arrays)."""
    table: list[SeriesInfo] = []
    index: dict[tuple[str, str, str], int] = {}
    series = np.empty(len(candles), dtype=np.intp)
    for i, c in enumerate(candles):
        k = (c.venue, c.symbol, c.timeframe)
        s = index.get(k)
        if s is None:
            s = index[k] = len(table)
            table.append(SeriesInfo(c.venue, c.symbol, c.timeframe, table_keys(c)))
        series[i] = s

    def arr(get: Callable[[Candle], Any], dtype: Any) -> Any:
        return np.fromiter((get(c) for c in candles), dtype=dtype, count=len(candles))

    def exact(i: int) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        c = candles[i]
        return c.open, c.high, c.low, c.close, c.volume

    return CandleColumn(
        table,
        series,
        open_ms=arr(lambda c: ms_from_utc(c.open_time), np.int64),
        close_ms=arr(lambda c: ms_from_utc(c.close_time), np.int64),
        open=arr(lambda c: float(c.open), np.float64),
        high=arr(lambda c: float(c.high), np.float64),
        low=arr(lambda c: float(c.low), np.float64),
        close=arr(lambda c: float(c.close), np.float64),
        volume=arr(lambda c: float(c.volume), np.float64),
        sequence=arr(lambda c: c.sequence, np.int64),
        exact=exact,
        source=source,
        clock=clock,
        candles=list(candles),
    )


class IndicatorColumn(Column):
    """Indicator snapshots derived row for row from a :class:`CandleColumn` (technical analysis).

    ``values[name][i]`` is the value row ``i``'s snapshot carries (not finite: the snapshot lacks
    it); ``regime[i]`` the index of its regime in :data:`REGIMES`; ``close`` and ``close_ms`` are the
    candles'. Consumers that only read these arrays (a strategy's vectorised twin) need no snapshot.
    """

    def __init__(
        self,
        candles: CandleColumn,
        table: Sequence[SeriesInfo],
        present: NDArray[np.bool_],
        values: dict[str, F64],
        regime: NDArray[np.int8],
        *,
        source: str,
    ) -> None:
        super().__init__(table, candles.series, source=source, clock=candles.clock, present=present)
        self.candles = candles
        self.values = values
        self.regime = regime
        self.close = candles.close
        self.close_ms = candles.close_ms
