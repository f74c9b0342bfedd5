"""The market-regime label: trending up / down, ranging or high volatility.

Rules, in order (documented in ``docs/agents/technical_analysis.md``):

1. volatility percentile (rank of the current realised volatility among the last ``vol_window``
   values, 0..100) at or above ``high_vol_pct`` -> HIGH_VOLATILITY;
2. ADX at or above ``adx_trend`` -> TRENDING_UP when +DI >= -DI, else TRENDING_DOWN;
3. otherwise RANGING.

Any input missing (warm-up, group disabled) -> UNKNOWN.
"""

from __future__ import annotations

import math

from core.domain import MarketRegime


def classify_regime(
    adx: float | None,
    plus_di: float | None,
    minus_di: float | None,
    vol_pct: float | None,
    *,
    adx_trend: float,
    high_vol_pct: float,
) -> MarketRegime:
    """Label the market from ADX, the directional indicators and the volatility percentile."""
    if vol_pct is None or adx is None or plus_di is None or minus_di is None:
        return MarketRegime.UNKNOWN
    if not all(math.isfinite(x) for x in (adx, plus_di, minus_di, vol_pct)):
        return MarketRegime.UNKNOWN
    if vol_pct >= high_vol_pct:
        return MarketRegime.HIGH_VOLATILITY
    if adx >= adx_trend:
        return MarketRegime.TRENDING_UP if plus_di >= minus_di else MarketRegime.TRENDING_DOWN
    return MarketRegime.RANGING
