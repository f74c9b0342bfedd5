"""Incremental indicators: one slot per configured indicator, each backed by a TA-Lib stream handle.

Every slot is opened once on history (the warm-up) and then carried forward one closed candle at a
time in O(1) with ``talib.stream`` handles (TA-Lib 0.8), whose values are bit-identical to the
batch functions (``talib.SMA``, ``talib.RSI``...) on the same series. No slot keeps the history:
memory stays bounded whatever the length of the feed.

Derived inputs are computed with the same float operations TA-Lib uses, so the chain stays exact:

* rolling VWAP = ``talib.VWMA(talib.TYPPRICE(h, l, c), volume, n)``; the typical price is
  ``(h + l + c) / 3.0`` in Python, the same IEEE operations as ``TA_TYPPRICE``;
* realised volatility = ``talib.STDDEV(talib.LN(talib.ROCR(close, 1)), n)`` (the population standard
  deviation of the last ``n`` log returns, per candle, not annualised); the log return is
  ``math.log(close / previous_close)``, the same libm call as ``TA_LN``;
* volatility percentile = ``talib.PERCENTRANK(realised_volatility, window)`` (0..100).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import talib
from numpy.typing import NDArray

from agents.technical_analysis.talib_compat import StreamFactory, stream_factory

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Bars:
    """A block of OHLCV history as float64 arrays of equal length (oldest first)."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.close.shape[0])


class Slot(ABC):
    """One incremental indicator: opened on history, then updated with each closed candle."""

    keys: tuple[str, ...]
    """The snapshot value names this slot writes."""
    inputs: frozenset[str] = frozenset({"close"})
    """The candle fields this slot reads (``open``, ``high``, ``low``, ``close``, ``volume``)."""

    @abstractmethod
    def open(self, bars: Bars) -> None:
        """Open the stream handle(s) on ``bars``; raises ``talib.InsufficientHistory`` if too short."""

    @abstractmethod
    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Carry the indicator forward by one closed candle and write its values into ``out``."""

    @abstractmethod
    def current(self, out: dict[str, float]) -> None:
        """Write the values at the last candle the slot was opened on (or fed) into ``out``."""


_isfinite = math.isfinite


def _put(out: dict[str, float], key: str, value: float) -> None:
    if _isfinite(value):
        out[key] = value


class CloseSlot(Slot):
    """A single-output indicator of the close (SMA, EMA, RSI)."""

    def __init__(self, key: str, factory: StreamFactory, **params: float) -> None:
        self.keys = (key,)
        self._key = key
        self._factory = factory
        self._params = params
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on the close."""
        self._handle = self._factory(bars.close, **self._params)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed the close."""
        value = self._update(c)
        if _isfinite(value):
            out[self._key] = value

    def current(self, out: dict[str, float]) -> None:
        """The value at the last candle."""
        _put(out, self._key, self._handle.value)

    def fast_path(self) -> tuple[str, Callable[[float], float]]:
        """``(key, handle.update)`` once open: the engine calls the handle directly (one Python
        frame less per candle)."""
        return self._key, self._update


class MacdSlot(Slot):
    """MACD line, signal and histogram (``talib.MACD``)."""

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self.keys = ("macd", "macd_signal", "macd_hist")
        self._params = {"fastperiod": fast, "slowperiod": slow, "signalperiod": signal}
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on the close."""
        self._handle = stream_factory("MACD")(bars.close, **self._params)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed the close."""
        self._write(self._update(c), out)

    def current(self, out: dict[str, float]) -> None:
        """The values at the last candle."""
        self._write(self._handle.value, out)

    @staticmethod
    def _write(result: tuple[float, float, float], out: dict[str, float]) -> None:
        macd, signal, hist = result
        _put(out, "macd", macd)
        _put(out, "macd_signal", signal)
        _put(out, "macd_hist", hist)


class BollingerSlot(Slot):
    """Bollinger Bands (``talib.BBANDS`` with a simple moving average)."""

    def __init__(self, period: int, nbdev: float) -> None:
        self.keys = (f"bb_upper_{period}", f"bb_middle_{period}", f"bb_lower_{period}")
        self._params: dict[str, float] = {"timeperiod": period, "nbdevup": nbdev, "nbdevdn": nbdev, "matype": 0}
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on the close."""
        self._handle = stream_factory("BBANDS")(bars.close, **self._params)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed the close."""
        self._write(self._update(c), out)

    def current(self, out: dict[str, float]) -> None:
        """The bands at the last candle."""
        self._write(self._handle.value, out)

    def _write(self, result: tuple[float, float, float], out: dict[str, float]) -> None:
        upper, middle, lower = result
        k_up, k_mid, k_low = self.keys
        _put(out, k_up, upper)
        _put(out, k_mid, middle)
        _put(out, k_low, lower)


class HlcSlot(Slot):
    """A single-output indicator of high, low, close (ATR, ADX, +DI, -DI)."""

    inputs = frozenset({"high", "low", "close"})

    def __init__(self, key: str, factory: StreamFactory, **params: float) -> None:
        self.keys = (key,)
        self._key = key
        self._factory = factory
        self._params = params
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on high, low, close."""
        self._handle = self._factory(bars.high, bars.low, bars.close, **self._params)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed high, low, close."""
        _put(out, self._key, self._update(h, low, c))

    def current(self, out: dict[str, float]) -> None:
        """The value at the last candle."""
        _put(out, self._key, self._handle.value)

    def fast_path(self) -> tuple[str, Callable[[float], float]]:
        """``(key, handle.update)`` once open: the engine calls the handle directly (one Python
        frame less per candle)."""
        return self._key, self._update


class StochSlot(Slot):
    """Slow stochastic %K and %D (``talib.STOCH`` with simple moving averages)."""

    inputs = frozenset({"high", "low", "close"})

    def __init__(self, fastk: int, slowk: int, slowd: int) -> None:
        self.keys = ("stoch_k", "stoch_d")
        self._params = {
            "fastk_period": fastk,
            "slowk_period": slowk,
            "slowk_matype": 0,
            "slowd_period": slowd,
            "slowd_matype": 0,
        }
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on high, low, close."""
        self._handle = stream_factory("STOCH")(bars.high, bars.low, bars.close, **self._params)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed high, low, close."""
        k, d = self._update(h, low, c)
        _put(out, "stoch_k", k)
        _put(out, "stoch_d", d)

    def current(self, out: dict[str, float]) -> None:
        """%K and %D at the last candle."""
        k, d = self._handle.value
        _put(out, "stoch_k", k)
        _put(out, "stoch_d", d)


class ObvSlot(Slot):
    """On-balance volume (``talib.OBV``)."""

    keys = ("obv",)
    inputs = frozenset({"close", "volume"})

    def __init__(self) -> None:
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on close and volume."""
        self._handle = stream_factory("OBV")(bars.close, bars.volume)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed close and volume."""
        _put(out, "obv", self._update(c, v))

    def current(self, out: dict[str, float]) -> None:
        """The value at the last candle."""
        _put(out, "obv", self._handle.value)


class MfiSlot(Slot):
    """Money flow index (``talib.MFI``)."""

    inputs = frozenset({"high", "low", "close", "volume"})

    def __init__(self, period: int) -> None:
        self.keys = (f"mfi_{period}",)
        self._key = self.keys[0]
        self._period = period
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on high, low, close, volume."""
        self._handle = stream_factory("MFI")(bars.high, bars.low, bars.close, bars.volume, timeperiod=self._period)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed high, low, close, volume."""
        _put(out, self._key, self._update(h, low, c, v))

    def current(self, out: dict[str, float]) -> None:
        """The value at the last candle."""
        _put(out, self._key, self._handle.value)

    def fast_path(self) -> tuple[str, Callable[[float], float]]:
        """``(key, handle.update)`` once open: the engine calls the handle directly (one Python
        frame less per candle)."""
        return self._key, self._update


class RollingVwapSlot(Slot):
    """Rolling VWAP over ``period`` candles: ``talib.VWMA(talib.TYPPRICE(h, l, c), volume, period)``."""

    inputs = frozenset({"high", "low", "close", "volume"})

    def __init__(self, period: int) -> None:
        self.keys = (f"vwap_{period}",)
        self._key = self.keys[0]
        self._period = period
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on the typical price and volume."""
        typical = (bars.high + bars.low + bars.close) / 3.0
        self._handle = stream_factory("VWMA")(typical, bars.volume, timeperiod=self._period)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed the typical price and volume."""
        _put(out, self._key, self._update((h + low + c) / 3.0, v))

    def current(self, out: dict[str, float]) -> None:
        """The value at the last candle."""
        _put(out, self._key, self._handle.value)

    def fast_path(self) -> tuple[str, Callable[[float], float]]:
        """``(key, handle.update)`` once open: the engine calls the handle directly (one Python
        frame less per candle)."""
        return self._key, self._update


class VolatilitySlot(Slot):
    """Realised volatility (stddev of log returns) and its percentile rank over a bounded window."""

    def __init__(self, period: int, window: int) -> None:
        self.keys = (f"rv_{period}", f"rv_pct_{window}")
        self._rv_key, self._pct_key = self.keys
        self._period = period
        self._window = window
        self._prev_close = math.nan
        self._rv: Callable[[float], float] = _not_open
        self._pct: Callable[[float], float] = _not_open

    def open(self, bars: Bars) -> None:
        """Open the stddev on the log returns and the percentile rank on the volatility series."""
        close = bars.close
        log_returns = talib.LN(talib.ROCR(close, timeperiod=1))
        rv_series = talib.STDDEV(log_returns, timeperiod=self._period, nbdev=1.0)
        rv_handle = stream_factory("STDDEV")(log_returns, timeperiod=self._period, nbdev=1.0)
        pct_handle = stream_factory("PERCENTRANK")(rv_series, timeperiod=self._window)
        self._rv = rv_handle.update
        self._pct = pct_handle.update
        self._handles = (rv_handle, pct_handle)
        self._prev_close = float(close[-1])

    def update(self, o: float, h: float, low: float, c: float, v: float, out: dict[str, float]) -> None:
        """Feed the log return of the close."""
        rv = self._rv(math.log(c / self._prev_close))
        self._prev_close = c
        _put(out, self._rv_key, rv)
        _put(out, self._pct_key, self._pct(rv))

    def current(self, out: dict[str, float]) -> None:
        """Volatility and percentile at the last candle."""
        rv_handle, pct_handle = self._handles
        _put(out, self._rv_key, rv_handle.value)
        _put(out, self._pct_key, pct_handle.value)


class PatternSlot:
    """A TA-Lib candlestick pattern (``talib.CDL*``): -100/100 (or +-200) when it fires, 0 otherwise."""

    inputs = frozenset({"open", "high", "low", "close"})

    def __init__(self, function: str) -> None:
        if not function.startswith("CDL"):
            raise ValueError(f"{function!r} is not a TA-Lib candlestick pattern (CDLENGULFING, CDLHAMMER...)")
        self.function = function
        self.key = pattern_key(function)
        self._factory: StreamFactory = stream_factory(function)
        self._update: Callable[..., Any] = _not_open

    def open(self, bars: Bars) -> None:
        """Open on open, high, low, close; raises ``talib.InsufficientHistory`` if too short."""
        self._handle = self._factory(bars.open, bars.high, bars.low, bars.close)
        self._update = self._handle.update

    def update(self, o: float, h: float, low: float, c: float) -> int:
        """Carry the pattern forward by one candle; its output on that candle."""
        return int(self._update(o, h, low, c))

    def current(self) -> int:
        """The output at the last candle."""
        return int(self._handle.value)

    def fast_path(self) -> tuple[str, Callable[[float, float, float, float], float]]:
        """``(key, handle.update)`` once open (see :meth:`CloseSlot.fast_path`)."""
        return self.key, self._update


def pattern_key(function: str) -> str:
    """Snapshot name of a pattern function: ``CDLENGULFING`` -> ``cdl_engulfing``."""
    return "cdl_" + function.removeprefix("CDL").lower()


def _not_open(*_: float) -> float:
    raise RuntimeError("indicator slot used before it was opened")
