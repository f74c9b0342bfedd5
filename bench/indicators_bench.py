"""Per-candle cost of the technical analysis engine: incremental TA-Lib stream handles vs
recomputing with TA-Lib's batch functions, measured in the same run on real candles.

    .venv/bin/python bench/indicators_bench.py [--file CSV] [--candles N] [--samples K]

Prints microseconds per candle for:

* incremental, every default indicator (the agent's engine after warm-up);
* incremental, only SMA(10) and SMA(30) (what a sma_cross backtest needs);
* batch recompute of the same default set over the WHOLE series so far, for each new candle
  (sampled at K evenly spaced candles, since it is O(n) per candle);
* batch recompute over a trailing window just long enough for the warm-up (the usual shortcut);
* the technical analysis + strategy agents together on the in-memory bus (sma only, sma_cross),
  i.e. this issue's share of the pipeline's ~10 us per candle budget (bus and envelopes included).

Each figure is the best of ``--repeat`` runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import numpy as np
import talib
from numpy.typing import NDArray
from talib._ta_lib import MA_Type

from agents.technical_analysis.engine import IndicatorEngine
from agents.technical_analysis.settings import TechnicalAnalysisSettings

ROOT = Path(__file__).resolve().parent.parent
Arr = NDArray[np.float64]
DEFAULT_FILE = ROOT / "tests" / "data" / "binance_BTC-USDT_1h_first3000.csv"


def load(path: Path, limit: int) -> dict[str, Arr]:
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, max_rows=limit)
    return {k: np.ascontiguousarray(raw[:, i]) for i, k in enumerate(("ts", "open", "high", "low", "close", "volume"))}


def batch_all(s: TechnicalAnalysisSettings, o: Arr, h: Arr, lo: Arr, c: Arr, v: Arr) -> None:
    """Every default indicator with TA-Lib's batch functions (what the engine computes)."""
    for p in s.sma_periods:
        talib.SMA(c, p)
    for p in s.ema_periods:
        talib.EMA(c, p)
    talib.RSI(c, s.rsi_period)
    talib.MACD(c, s.macd_fast, s.macd_slow, s.macd_signal)
    talib.BBANDS(c, s.bb_period, s.bb_nbdev, s.bb_nbdev, MA_Type.SMA)
    talib.ATR(h, lo, c, s.atr_period)
    talib.ADX(h, lo, c, s.adx_period)
    talib.PLUS_DI(h, lo, c, s.adx_period)
    talib.MINUS_DI(h, lo, c, s.adx_period)
    talib.STOCH(h, lo, c, s.stoch_fastk, s.stoch_slowk, MA_Type.SMA, s.stoch_slowd, MA_Type.SMA)
    talib.OBV(c, v)
    talib.MFI(h, lo, c, v, s.mfi_period)
    talib.VWMA(talib.TYPPRICE(h, lo, c), v, s.vwap_period)
    rv = talib.STDDEV(talib.LN(talib.ROCR(c, 1)), s.rv_period, 1.0)
    talib.PERCENTRANK(rv, s.vol_window)
    for name in s.patterns:
        getattr(talib, name)(o, h, lo, c)


def incremental(settings: TechnicalAnalysisSettings, a: dict[str, Arr]) -> tuple[float, int]:
    engine = IndicatorEngine(settings)
    cols = [a[k].tolist() for k in ("open", "high", "low", "close", "volume")]
    bars = list(zip(*cols, strict=True))
    warm = 0
    while not engine.warm:
        engine.update(*bars[warm])
        warm += 1
    rest = bars[warm:]
    update = engine.update
    t0 = time.perf_counter()
    for bar in rest:
        update(*bar)
    return (time.perf_counter() - t0) / len(rest) * 1e6, warm


def recompute_whole(settings: TechnicalAnalysisSettings, a: dict[str, Arr], start: int, samples: int) -> float:
    n = len(a["close"])
    idx = np.linspace(start, n - 1, num=min(samples, n - start), dtype=int)
    t0 = time.perf_counter()
    for i in idx:
        end = i + 1
        batch_all(settings, a["open"][:end], a["high"][:end], a["low"][:end], a["close"][:end], a["volume"][:end])
    return (time.perf_counter() - t0) / len(idx) * 1e6


def recompute_window(settings: TechnicalAnalysisSettings, a: dict[str, Arr], window: int, samples: int) -> float:
    n = len(a["close"])
    idx = np.linspace(window, n - 1, num=min(samples, n - window), dtype=int)
    t0 = time.perf_counter()
    for i in idx:
        lo_, hi_ = i + 1 - window, i + 1
        batch_all(
            settings,
            a["open"][lo_:hi_],
            a["high"][lo_:hi_],
            a["low"][lo_:hi_],
            a["close"][lo_:hi_],
            a["volume"][lo_:hi_],
        )
    return (time.perf_counter() - t0) / len(idx) * 1e6


async def agents_on_memory_bus(path: Path, limit: int) -> tuple[float, int]:
    from agents.base import AgentContext
    from agents.strategy.agent import StrategyAgent
    from agents.strategy.settings import StrategySettings
    from agents.technical_analysis.agent import TechnicalAnalysisAgent
    from core.clock import SimulatedClock
    from core.logging import configure_logging, get_logger
    from core.messages import Envelope
    from core.ports import QueueSpec
    from core.routing import CONSENSUS, INTENTS
    from core.settings import Settings
    from infrastructure.feeds.files import read_candles_csv
    from infrastructure.messaging.memory import InMemoryBus

    configure_logging("warning")
    candles = read_candles_csv(path, limit=limit)
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(candles[0].open_time)
    core = Settings(exchange="binance", symbols=["BTC/USDT"], timeframes=["1h"])

    def ctx(agent_id: str) -> AgentContext:
        return AgentContext(
            bus=bus, clock=clock, settings=core, agent_id=agent_id, log=get_logger("bench"), instrument=False
        )

    async def sink(envelope: Envelope) -> None:
        return None

    await bus.subscribe(QueueSpec(name="bench.sink", patterns=(INTENTS.all(), CONSENSUS.all())), sink)
    ta = TechnicalAnalysisAgent(
        ctx("ta-bench"), TechnicalAnalysisSettings(indicators=("sma", "atr"), sma_periods=(10, 30))
    )
    st = StrategyAgent(ctx("strategy-bench"), StrategySettings(strategies=("sma_cross",)))
    await st.start()
    await ta.start()
    envelopes = [Envelope.wrap(c, source="replay", clock=clock, ts_event=c.close_time) for c in candles]
    t0 = time.perf_counter()
    for env in envelopes:
        await bus.publish(env)
    elapsed = time.perf_counter() - t0
    await bus.close()
    return elapsed / len(envelopes) * 1e6, st.intents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--candles", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=150, help="candles at which the batch recompute is timed")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is shown")
    args = parser.parse_args()
    r = max(1, args.repeat)
    a = load(args.file, args.candles)
    n = len(a["close"])
    full = TechnicalAnalysisSettings()
    minimal = TechnicalAnalysisSettings(indicators=("sma",), sma_periods=(10, 30))
    # best of `repeat` runs: the machine is shared, the minimum is the least disturbed figure
    inc_full, warm = min(incremental(full, a) for _ in range(r))
    inc_min, _ = min(incremental(minimal, a) for _ in range(r))
    whole = min(recompute_whole(full, a, warm, args.samples) for _ in range(r))
    window = min(recompute_window(full, a, warm, args.samples) for _ in range(r))
    pipeline, intents = min(asyncio.run(agents_on_memory_bus(args.file, args.candles)) for _ in range(r))
    print(
        f"{n} real candles from {args.file.name}; warm-up {warm} candles; "
        f"{len(full.indicators)} indicator groups, {len(full.patterns)} patterns; best of {r} runs"
    )
    print(f"incremental (talib.stream), all default indicators : {inc_full:9.2f} us/candle")
    print(f"incremental (talib.stream), sma 10 + 30 only        : {inc_min:9.2f} us/candle")
    print(
        f"batch recompute of the whole series, per candle     : {whole:9.2f} us/candle "
        f"(mean over {min(args.samples, n - warm)} series lengths {warm}..{n})  ratio x{whole / inc_full:,.0f}"
    )
    ratio = window / inc_full
    print(f"batch recompute of a {warm}-candle window, per candle : {window:9.2f} us/candle  ratio x{ratio:,.1f}")
    print(f"TA + strategy agents on the in-memory bus (sma_cross): {pipeline:9.2f} us/candle ({intents} intents)")


if __name__ == "__main__":
    main()
