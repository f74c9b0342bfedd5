"""The incremental indicator engine of one (venue, symbol, timeframe) series.

Warm-up: the first candles are kept (as floats) until every enabled indicator can be opened on
them, which is the first candle where every indicator has a value (the same candle where TA-Lib's
batch output stops being NaN); the values of that candle are read from the freshly opened handles.
From then on each candle costs O(1) per indicator and the warm-up buffer is dropped: memory does
not grow with the feed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agents.technical_analysis.indicators import (
    Bars,
    BollingerSlot,
    CloseSlot,
    HlcSlot,
    MacdSlot,
    MfiSlot,
    ObvSlot,
    PatternSlot,
    RollingVwapSlot,
    Slot,
    StochSlot,
    VolatilitySlot,
)
from agents.technical_analysis.regime import classify_regime
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from agents.technical_analysis.talib_compat import InsufficientHistory, lookback, stream_factory
from core.columns import REGIME_CODE
from core.domain import MarketRegime
from core.errors import ConfigurationError

_isfinite = math.isfinite

_WARMUP_SLACK = 64
"""Extra candles tolerated beyond the estimated warm-up before the engine gives up (seeding quirks)."""


@dataclass(slots=True)
class IndicatorResult:
    """The indicator values, fired patterns and regime after one closed candle."""

    values: dict[str, float]
    patterns: dict[str, int]
    regime: MarketRegime


@dataclass(slots=True)
class BlockResult:
    """:meth:`IndicatorEngine.update_many`'s output: row ``i`` is what :meth:`IndicatorEngine.update`
    returned for candle ``i`` (``produced[i]`` False: ``None``; a value that is not finite: absent;
    a pattern of 0: not fired)."""

    produced: NDArray[np.bool_]
    values: dict[str, NDArray[np.float64]]
    patterns: dict[str, NDArray[np.int64]]
    regime: NDArray[np.int8]


def build_slots(settings: TechnicalAnalysisSettings) -> tuple[list[Slot], list[PatternSlot], int]:
    """The slots the settings enable, the pattern slots, and the estimated warm-up in candles."""
    groups = set(settings.indicators)
    slots: list[Slot] = []
    lookbacks: list[int] = [0]

    if "sma" in groups:
        for p in settings.sma_periods:
            slots.append(CloseSlot(f"sma_{p}", stream_factory("SMA"), timeperiod=p))
            lookbacks.append(lookback("SMA", timeperiod=p))
    if "ema" in groups:
        for p in settings.ema_periods:
            slots.append(CloseSlot(f"ema_{p}", stream_factory("EMA"), timeperiod=p))
            lookbacks.append(lookback("EMA", timeperiod=p))
    if "rsi" in groups:
        p = settings.rsi_period
        slots.append(CloseSlot(f"rsi_{p}", stream_factory("RSI"), timeperiod=p))
        lookbacks.append(lookback("RSI", timeperiod=p))
    if "macd" in groups:
        slots.append(MacdSlot(settings.macd_fast, settings.macd_slow, settings.macd_signal))
        lookbacks.append(
            lookback(
                "MACD", fastperiod=settings.macd_fast, slowperiod=settings.macd_slow, signalperiod=settings.macd_signal
            )
        )
    if "bbands" in groups:
        slots.append(BollingerSlot(settings.bb_period, settings.bb_nbdev))
        lookbacks.append(lookback("BBANDS", timeperiod=settings.bb_period))
    if "atr" in groups:
        p = settings.atr_period
        slots.append(HlcSlot(f"atr_{p}", stream_factory("ATR"), timeperiod=p))
        lookbacks.append(lookback("ATR", timeperiod=p))
    if "adx" in groups:
        p = settings.adx_period
        slots.append(HlcSlot(f"adx_{p}", stream_factory("ADX"), timeperiod=p))
        slots.append(HlcSlot(f"plus_di_{p}", stream_factory("PLUS_DI"), timeperiod=p))
        slots.append(HlcSlot(f"minus_di_{p}", stream_factory("MINUS_DI"), timeperiod=p))
        lookbacks.append(lookback("ADX", timeperiod=p))
    if "stoch" in groups:
        slots.append(StochSlot(settings.stoch_fastk, settings.stoch_slowk, settings.stoch_slowd))
        lookbacks.append(
            lookback(
                "STOCH",
                fastk_period=settings.stoch_fastk,
                slowk_period=settings.stoch_slowk,
                slowd_period=settings.stoch_slowd,
            )
        )
    if "obv" in groups:
        slots.append(ObvSlot())
    if "mfi" in groups:
        slots.append(MfiSlot(settings.mfi_period))
        lookbacks.append(lookback("MFI", timeperiod=settings.mfi_period))
    if "vwap" in groups:
        slots.append(RollingVwapSlot(settings.vwap_period))
        lookbacks.append(lookback("VWMA", timeperiod=settings.vwap_period))
    if "volatility" in groups:
        slots.append(VolatilitySlot(settings.rv_period, settings.vol_window))
        lookbacks.append(1 + settings.rv_period - 1 + lookback("PERCENTRANK", timeperiod=settings.vol_window))
    patterns: list[PatternSlot] = []
    if "patterns" in groups:
        for name in settings.patterns:
            patterns.append(PatternSlot(name))
            lookbacks.append(lookback(name))
    # a handle opens on lookback + 1 bars: the first candle with a value
    return slots, patterns, max(lookbacks) + 1


class IndicatorEngine:
    """Indicators of one series, updated one closed candle at a time (see the module docstring)."""

    def __init__(self, settings: TechnicalAnalysisSettings) -> None:
        self._settings = settings
        self._slots, self._patterns, self.warmup_estimate = build_slots(settings)
        self._history: list[tuple[float, float, float, float, float]] | None = []
        self._max_history = self.warmup_estimate + _WARMUP_SLACK
        adx_p = settings.adx_period
        self._regime_keys = (
            f"adx_{adx_p}",
            f"plus_di_{adx_p}",
            f"minus_di_{adx_p}",
            f"rv_pct_{settings.vol_window}",
        )
        self._regime_enabled = "adx" in settings.indicators and "volatility" in settings.indicators
        self._adx_trend = settings.regime_adx_trend
        self._high_vol_pct = settings.regime_high_vol_pct
        self.candles_seen = 0
        self._close_updates: list[tuple[str, Callable[[float], float]]] = []
        self._other_slots: list[Slot] = []
        self._pattern_updates: list[tuple[str, Callable[[float, float, float, float], float]]] = []

    @property
    def warm(self) -> bool:
        """Whether every indicator is open (snapshots are produced)."""
        return self._history is None

    @property
    def inputs(self) -> frozenset[str]:
        """The candle fields some enabled indicator reads; the others may be passed as 0.0."""
        fields: set[str] = {"close"}
        for slot in self._slots:
            fields |= slot.inputs
        for pattern in self._patterns:
            fields |= pattern.inputs
        return frozenset(fields)

    def value_keys(self) -> tuple[str, ...]:
        """Every value name this engine can produce."""
        return tuple(key for slot in self._slots for key in slot.keys)

    def update(self, o: float, h: float, low: float, c: float, v: float) -> IndicatorResult | None:
        """Feed one closed candle; the indicators after it, or ``None`` while warming up."""
        self.candles_seen += 1
        history = self._history
        values: dict[str, float] = {}
        patterns: dict[str, int] = {}
        if history is None:
            # the hot path: single-output close indicators and patterns call their handle directly
            for key, update_close in self._close_updates:
                value = update_close(c)
                if _isfinite(value):
                    values[key] = value
            for slot in self._other_slots:
                slot.update(o, h, low, c, v, values)
            for key, update_pattern in self._pattern_updates:
                fired = update_pattern(o, h, low, c)
                if fired:
                    patterns[key] = int(fired)
        else:
            history.append((o, h, low, c, v))
            if len(history) < self.warmup_estimate or not self._try_open(history):
                return None
            self._history = None
            self._prepare_hot_path()
            for slot in self._slots:
                slot.current(values)
            for pattern in self._patterns:
                fired = pattern.current()
                if fired:
                    patterns[pattern.key] = fired
        regime = MarketRegime.UNKNOWN
        if self._regime_enabled:
            k_adx, k_plus, k_minus, k_pct = self._regime_keys
            regime = classify_regime(
                values.get(k_adx),
                values.get(k_plus),
                values.get(k_minus),
                values.get(k_pct),
                adx_trend=self._adx_trend,
                high_vol_pct=self._high_vol_pct,
            )
        return IndicatorResult(values, patterns, regime)

    def update_many(
        self,
        o: NDArray[np.float64],
        h: NDArray[np.float64],
        low: NDArray[np.float64],
        c: NDArray[np.float64],
        v: NDArray[np.float64],
    ) -> BlockResult:
        """Feed a block of closed candles: the same as calling :meth:`update` on each row in order
        (the same handles, the same calls), with the results in arrays instead of dicts. Engines of
        close-only indicators (SMA, EMA, RSI) without patterns or regime feed each handle the whole
        block in one loop; the others go row by row."""
        n = int(c.shape[0])
        produced = np.zeros(n, dtype=bool)
        values = {key: np.full(n, np.nan) for key in self.value_keys()}
        patterns = {p.key: np.zeros(n, dtype=np.int64) for p in self._patterns}
        regime = np.full(n, REGIME_CODE[MarketRegime.UNKNOWN], dtype=np.int8)
        ol, hl, ll, cl, vl = o.tolist(), h.tolist(), low.tolist(), c.tolist(), v.tolist()

        def store(i: int, result: IndicatorResult) -> None:
            produced[i] = True
            for key, value in result.values.items():
                values[key][i] = value
            for key, fired in result.patterns.items():
                patterns[key][i] = fired
            regime[i] = REGIME_CODE[result.regime]

        i = 0
        while i < n and not self.warm:
            result = self.update(ol[i], hl[i], ll[i], cl[i], vl[i])
            if result is not None:
                store(i, result)
            i += 1
        if i >= n:
            return BlockResult(produced, values, patterns, regime)
        if not self._other_slots and not self._pattern_updates and not self._regime_enabled:
            rest = cl[i:]
            for key, update_close in self._close_updates:
                values[key][i:] = np.fromiter(map(update_close, rest), dtype=np.float64, count=n - i)
            self.candles_seen += n - i
            produced[i:] = True
            return BlockResult(produced, values, patterns, regime)
        update = self.update
        for j in range(i, n):
            result = update(ol[j], hl[j], ll[j], cl[j], vl[j])
            if result is not None:
                store(j, result)
        return BlockResult(produced, values, patterns, regime)

    def _prepare_hot_path(self) -> None:
        self._close_updates = [slot.fast_path() for slot in self._slots if isinstance(slot, CloseSlot)]
        self._other_slots = [slot for slot in self._slots if not isinstance(slot, CloseSlot)]
        self._pattern_updates = [pattern.fast_path() for pattern in self._patterns]

    def _try_open(self, history: list[tuple[float, float, float, float, float]]) -> bool:
        """Open every slot on the candles so far; False when one needs more history."""
        arr = np.asarray(history, dtype=np.float64)
        bars = Bars(
            np.ascontiguousarray(arr[:, 0]),
            np.ascontiguousarray(arr[:, 1]),
            np.ascontiguousarray(arr[:, 2]),
            np.ascontiguousarray(arr[:, 3]),
            np.ascontiguousarray(arr[:, 4]),
        )
        try:
            for slot in self._slots:
                slot.open(bars)
            for pattern in self._patterns:
                pattern.open(bars)
        except InsufficientHistory:
            if len(history) >= self._max_history:
                raise ConfigurationError(
                    f"indicators still lack history after {len(history)} candles; check the periods"
                ) from None
            return False
        return True
