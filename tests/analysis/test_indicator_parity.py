"""Every incremental indicator equals TA-Lib's batch function on the same real series (to 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from talib._ta_lib import MA_Type

from agents.technical_analysis.engine import IndicatorEngine, IndicatorResult
from agents.technical_analysis.indicators import pattern_key
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from core.domain import MarketRegime
from tests.analysis.candles import load_arrays

TOL = 1e-9


def _run(settings: TechnicalAnalysisSettings, a: dict[str, np.ndarray]) -> list[IndicatorResult | None]:
    engine = IndicatorEngine(settings)
    cols = [a[k].tolist() for k in ("open", "high", "low", "close", "volume")]
    return [engine.update(*bar) for bar in zip(*cols, strict=True)]


def _batch_reference(s: TechnicalAnalysisSettings, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    _o, h, lo, c, v = a["open"], a["high"], a["low"], a["close"], a["volume"]
    ref: dict[str, np.ndarray] = {}
    for p in s.sma_periods:
        ref[f"sma_{p}"] = talib.SMA(c, timeperiod=p)
    for p in s.ema_periods:
        ref[f"ema_{p}"] = talib.EMA(c, timeperiod=p)
    ref[f"rsi_{s.rsi_period}"] = talib.RSI(c, timeperiod=s.rsi_period)
    ref["macd"], ref["macd_signal"], ref["macd_hist"] = talib.MACD(
        c, fastperiod=s.macd_fast, slowperiod=s.macd_slow, signalperiod=s.macd_signal
    )
    bb = s.bb_period
    ref[f"bb_upper_{bb}"], ref[f"bb_middle_{bb}"], ref[f"bb_lower_{bb}"] = talib.BBANDS(
        c, timeperiod=bb, nbdevup=s.bb_nbdev, nbdevdn=s.bb_nbdev, matype=MA_Type.SMA
    )
    ref[f"atr_{s.atr_period}"] = talib.ATR(h, lo, c, timeperiod=s.atr_period)
    ref[f"adx_{s.adx_period}"] = talib.ADX(h, lo, c, timeperiod=s.adx_period)
    ref[f"plus_di_{s.adx_period}"] = talib.PLUS_DI(h, lo, c, timeperiod=s.adx_period)
    ref[f"minus_di_{s.adx_period}"] = talib.MINUS_DI(h, lo, c, timeperiod=s.adx_period)
    ref["stoch_k"], ref["stoch_d"] = talib.STOCH(
        h,
        lo,
        c,
        fastk_period=s.stoch_fastk,
        slowk_period=s.stoch_slowk,
        slowk_matype=MA_Type.SMA,
        slowd_period=s.stoch_slowd,
        slowd_matype=MA_Type.SMA,
    )
    ref["obv"] = talib.OBV(c, v)
    ref[f"mfi_{s.mfi_period}"] = talib.MFI(h, lo, c, v, timeperiod=s.mfi_period)
    ref[f"vwap_{s.vwap_period}"] = talib.VWMA(talib.TYPPRICE(h, lo, c), v, timeperiod=s.vwap_period)
    rv = talib.STDDEV(talib.LN(talib.ROCR(c, timeperiod=1)), timeperiod=s.rv_period, nbdev=1.0)
    ref[f"rv_{s.rv_period}"] = rv
    ref[f"rv_pct_{s.vol_window}"] = talib.PERCENTRANK(rv, timeperiod=s.vol_window)
    return ref


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return load_arrays()


@pytest.fixture(scope="module")
def default_run(arrays) -> tuple[TechnicalAnalysisSettings, list[IndicatorResult | None]]:
    settings = TechnicalAnalysisSettings()
    return settings, _run(settings, arrays)


def test_every_indicator_equals_talib_batch_after_warmup(arrays, default_run) -> None:
    settings, results = default_run
    ref = _batch_reference(settings, arrays)
    first = next(i for i, r in enumerate(results) if r is not None)
    assert all(r is not None for r in results[first:]), "no gap in snapshots once warm"
    assert len(results) - first > 2800
    engine_keys = set(IndicatorEngine(settings).value_keys())
    assert engine_keys == set(ref), "the reference covers every produced value"
    # the first snapshot is the first candle where every batch series has a value: no candle lost
    assert first == max(int(np.argmax(~np.isnan(series))) for series in ref.values())
    for key, series in ref.items():
        got = np.array([r.values.get(key, np.nan) for r in results[first:]])
        want = series[first:]
        assert not np.isnan(want).any(), f"{key}: the batch reference is still warming up at {first}"
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL, err_msg=key)


def test_every_pattern_equals_talib_batch(arrays, default_run) -> None:
    settings, results = default_run
    first = next(i for i, r in enumerate(results) if r is not None)
    fired_total = 0
    for name in settings.patterns:
        want = getattr(talib, name)(arrays["open"], arrays["high"], arrays["low"], arrays["close"])[first:]
        got = np.array([r.patterns.get(pattern_key(name), 0) for r in results[first:]])
        np.testing.assert_array_equal(got, want, err_msg=name)
        fired_total += int(np.count_nonzero(want))
    assert fired_total > 100, "the real data fires patterns, so the comparison is not vacuous"


def test_regime_label_follows_the_documented_rules(default_run) -> None:
    settings, results = default_run
    seen = set()
    for r in results:
        if r is None:
            continue
        adx, pdi, mdi = r.values["adx_14"], r.values["plus_di_14"], r.values["minus_di_14"]
        pct = r.values["rv_pct_100"]
        if pct >= settings.regime_high_vol_pct:
            expected = MarketRegime.HIGH_VOLATILITY
        elif adx >= settings.regime_adx_trend:
            expected = MarketRegime.TRENDING_UP if pdi >= mdi else MarketRegime.TRENDING_DOWN
        else:
            expected = MarketRegime.RANGING
        assert r.regime is expected
        seen.add(r.regime)
    assert seen == {
        MarketRegime.HIGH_VOLATILITY,
        MarketRegime.TRENDING_UP,
        MarketRegime.TRENDING_DOWN,
        MarketRegime.RANGING,
    }


def test_non_default_periods_and_groups_also_match(arrays) -> None:
    settings = TechnicalAnalysisSettings(
        indicators=("sma", "ema", "rsi", "atr"), sma_periods=(7, 200), ema_periods=(9,), rsi_period=21, atr_period=5
    )
    results = _run(settings, arrays)
    first = next(i for i, r in enumerate(results) if r is not None)
    assert first == 199  # SMA(200)'s first value
    c, h, lo = arrays["close"], arrays["high"], arrays["low"]
    refs = {
        "sma_7": talib.SMA(c, 7),
        "sma_200": talib.SMA(c, 200),
        "ema_9": talib.EMA(c, 9),
        "rsi_21": talib.RSI(c, 21),
        "atr_5": talib.ATR(h, lo, c, 5),
    }
    warm = [r for r in results[first:] if r is not None]
    assert len(warm) == len(results) - first
    for key, want in refs.items():
        got = np.array([r.values[key] for r in warm])
        np.testing.assert_allclose(got, want[first:], rtol=0, atol=TOL, err_msg=key)
    assert all(r.regime is MarketRegime.UNKNOWN for r in warm)
    assert set(warm[-1].values) == set(refs)


def test_memory_is_bounded_after_warmup(arrays) -> None:
    engine = IndicatorEngine(TechnicalAnalysisSettings(indicators=("sma",), sma_periods=(10,)))
    c = arrays["close"].tolist()
    for x in c[:50]:
        engine.update(x, x, x, x, 1.0)
    assert engine.warm
    assert engine._history is None  # the warm-up buffer is dropped once every handle is open


def test_bad_settings_are_rejected_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="CDLNOPE"):
        TechnicalAnalysisSettings(patterns=("CDLNOPE",))
    with pytest.raises(ValueError, match="macd_fast"):
        TechnicalAnalysisSettings(macd_fast=30, macd_slow=26)
    with pytest.raises(ValueError, match="indicators"):
        TechnicalAnalysisSettings(indicators=("sma", "bogus"))  # type: ignore[arg-type]


def test_settings_read_comma_separated_lists_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("TRADESWARM_TA_SMA_PERIODS", "10, 30")
    monkeypatch.setenv("TRADESWARM_TA_INDICATORS", "sma,rsi")
    s = TechnicalAnalysisSettings()
    assert s.sma_periods == (10, 30)
    assert s.indicators == ("sma", "rsi")


@pytest.mark.parametrize(
    "group",
    ["sma", "ema", "rsi", "macd", "bbands", "atr", "adx", "stoch", "obv", "mfi", "vwap", "volatility", "patterns"],
)
def test_declared_inputs_are_all_an_indicator_reads(arrays, group) -> None:
    """The agent converts only the candle fields the engine declares; zeroing the others changes nothing."""
    settings = TechnicalAnalysisSettings(indicators=(group,))
    inputs = IndicatorEngine(settings).inputs
    zeroed = {k: (v if k in inputs or k == "ts" else np.zeros_like(v)) for k, v in arrays.items()}
    full, partial = _run(settings, arrays), _run(settings, zeroed)
    assert [r.values if r else None for r in full] == [r.values if r else None for r in partial]
    assert [r.patterns if r else None for r in full] == [r.patterns if r else None for r in partial]
    assert any(r is not None for r in full)
