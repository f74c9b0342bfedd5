"""The compact numeric summary of recent candles the technical analyst and the trader read.

Everything is relative (percent returns, distances from moving averages, volatility) except the
last close, so the blind mode only has to rescale that one level. Pure numpy; the window holds
only candles closed at or before the decision time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MIN_CANDLES = 35
"""Candles needed before a summary exists (MACD's slow EMA plus its signal)."""


@dataclass(frozen=True, slots=True)
class CandleSummary:
    """The summary of a window of closes (all percentages are of the last close)."""

    candles: int
    last_close: float
    ret_1_pct: float
    ret_6_pct: float
    ret_24_pct: float
    ret_window_pct: float
    rsi_14: float
    macd_hist_pct: float
    macd_pct: float
    ema_20_dist_pct: float
    ema_50_dist_pct: float
    volatility_pct: float
    """Standard deviation of one-candle returns over the last 24 candles, in percent."""
    range_24_pct: float
    """(High - low) of the last 24 candles over the last close, in percent."""

    def as_prompt(self, *, price_scale: float = 1.0) -> dict[str, float | int]:
        """The summary as prompt input, rounded; ``price_scale`` rescales the one absolute level."""
        out: dict[str, float | int] = {
            "candles": self.candles,
            "last_close": round(self.last_close * price_scale, 4),
            "return_1_pct": round(self.ret_1_pct, 3),
            "return_6_pct": round(self.ret_6_pct, 3),
            "return_24_pct": round(self.ret_24_pct, 3),
            "return_window_pct": round(self.ret_window_pct, 3),
            "rsi_14": round(self.rsi_14, 2),
            "macd_pct": round(self.macd_pct, 4),
            "macd_hist_pct": round(self.macd_hist_pct, 4),
            "ema_20_distance_pct": round(self.ema_20_dist_pct, 3),
            "ema_50_distance_pct": round(self.ema_50_dist_pct, 3),
            "volatility_pct": round(self.volatility_pct, 4),
            "range_24_pct": round(self.range_24_pct, 3),
        }
        return out


def _ema(values: npt.NDArray[np.float64], period: int) -> npt.NDArray[np.float64]:
    alpha = 2.0 / (period + 1.0)
    out = np.empty_like(values)
    acc = float(values[0])
    for i, v in enumerate(values):
        acc = alpha * float(v) + (1.0 - alpha) * acc if i else acc
        out[i] = acc
    return out


def _rsi(closes: npt.NDArray[np.float64], period: int = 14) -> float:
    deltas = np.diff(closes)
    gains = np.clip(deltas, 0.0, None)
    losses = np.clip(-deltas, 0.0, None)
    avg_gain = float(gains[:period].mean())
    avg_loss = float(losses[:period].mean())
    for g, loss in zip(gains[period:], losses[period:], strict=True):
        avg_gain = (avg_gain * (period - 1) + float(g)) / period
        avg_loss = (avg_loss * (period - 1) + float(loss)) / period
    if avg_loss == 0.0:
        return 100.0 if avg_gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def _ret(closes: npt.NDArray[np.float64], back: int) -> float:
    back = min(back, len(closes) - 1)
    return (float(closes[-1]) / float(closes[-1 - back]) - 1.0) * 100.0


def summarize(closes: Sequence[float], highs: Sequence[float], lows: Sequence[float]) -> CandleSummary | None:
    """The summary of a window (oldest first), or None with fewer than :data:`MIN_CANDLES` candles."""
    if len(closes) < MIN_CANDLES:
        return None
    c = np.asarray(closes, dtype=np.float64)
    last = float(c[-1])
    ema12, ema26 = _ema(c, 12), _ema(c, 26)
    macd = ema12 - ema26
    signal = _ema(macd[25:], 9)
    rets = np.diff(c[-25:]) / c[-25:-1]
    return CandleSummary(
        candles=len(c),
        last_close=last,
        ret_1_pct=_ret(c, 1),
        ret_6_pct=_ret(c, 6),
        ret_24_pct=_ret(c, 24),
        ret_window_pct=_ret(c, len(c) - 1),
        rsi_14=_rsi(c),
        macd_hist_pct=float(macd[-1] - signal[-1]) / last * 100.0,
        macd_pct=float(macd[-1]) / last * 100.0,
        ema_20_dist_pct=(last / float(_ema(c, 20)[-1]) - 1.0) * 100.0,
        ema_50_dist_pct=(last / float(_ema(c, min(50, len(c)))[-1]) - 1.0) * 100.0,
        volatility_pct=float(np.std(rets)) * 100.0,
        range_24_pct=(max(highs[-24:]) - min(lows[-24:])) / last * 100.0,
    )
