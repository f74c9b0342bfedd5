"""A seeded geometric-Brownian-motion candle series (benchmarks and long-run tests). Pure numpy.

Closes follow ``S_t = S_{t-1} * exp((mu - sigma^2 / 2) dt + sigma sqrt(dt) Z)``; each candle opens at
the previous close; high and low extend the body by a random fraction; prices are rounded to cents
(high up, low down, so the candle stays consistent). Every random array has its own generator
(spawned from the seed), so generating in chunks gives the same numbers as generating at once:
:func:`gbm_source` streams with bounded memory, :func:`gbm_arrays` returns everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from backtesting.data import SeriesSource, utc_ms
from core.gateway import CandleKey
from core.trusted import trusted_candle

F64 = NDArray[np.float64]
Arrays = tuple[NDArray[np.int64], F64, F64, F64, F64, F64]


def gbm_chunks(
    n: int,
    *,
    seed: int = 7,
    start_ms: int = 1_700_000_000_000,
    step_ms: int = 60_000,
    s0: float = 30_000.0,
    mu: float = 0.0,
    sigma: float = 0.8,
    chunk: int = 65_536,
) -> Iterator[Arrays]:
    """``(open_ms, open, high, low, close, volume)`` arrays of at most ``chunk`` candles each."""
    if n < 0:
        raise ValueError("n must be >= 0")
    gens = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(4)]
    dt = step_ms / (365 * 86_400_000)
    drift = (mu - sigma * sigma / 2) * dt
    vol = sigma * np.sqrt(dt)
    last = round(s0, 2)
    done = 0
    while done < n:
        m = min(chunk, n - done)
        steps = drift + vol * gens[0].standard_normal(m)
        closes = np.round(last * np.exp(np.cumsum(steps)), 2)
        closes = np.maximum(closes, 0.01)
        opens = np.empty(m)
        opens[0] = last
        opens[1:] = closes[:-1]
        body_hi = np.maximum(opens, closes)
        body_lo = np.minimum(opens, closes)
        highs = np.ceil(body_hi * (1 + np.abs(gens[1].standard_normal(m)) * vol * 0.5) * 100) / 100
        lows = np.floor(body_lo * (1 - np.abs(gens[2].standard_normal(m)) * vol * 0.5) * 100) / 100
        lows = np.maximum(lows, 0.01)
        volume = np.round(gens[3].gamma(2.0, 50.0, m), 4)
        times = start_ms + step_ms * np.arange(done, done + m, dtype=np.int64)
        yield times, opens, highs, lows, closes, volume
        last = float(closes[-1])
        done += m


def gbm_arrays(n: int, **kw: int | float) -> Arrays:
    """The whole series as arrays (for reference engines that need a frame)."""
    parts = list(gbm_chunks(n, **kw))  # type: ignore[arg-type]
    if not parts:
        empty = np.zeros(0)
        return np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(6))  # type: ignore[return-value]


def gbm_source(n: int, *, venue: str = "synthetic", symbol: str = "BTC/USDT", timeframe: str = "1m",
               seed: int = 7, start_ms: int = 1_700_000_000_000) -> SeriesSource:  # fmt: skip
    """A lazily generated GBM series as a backtest source (bounded memory)."""
    key = CandleKey(venue=venue, symbol=symbol, timeframe=timeframe)
    step_ms = int(timedelta(minutes=1).total_seconds() * 1000) if timeframe == "1m" else None
    if step_ms is None:
        from core.candles import timeframe_ms

        step_ms = timeframe_ms(timeframe)
    step = timedelta(milliseconds=step_ms)

    def candles() -> Iterator[object]:
        seq = 0
        open_time = utc_ms(start_ms)
        for _, o, h, low, c, v in gbm_chunks(n, seed=seed, start_ms=start_ms, step_ms=step_ms):
            # Python floats format much faster than numpy scalars; times advance by one step
            for oo, hh, ll, cc, vv in zip(o.tolist(), h.tolist(), low.tolist(), c.tolist(), v.tolist(), strict=True):
                seq += 1
                close_time = open_time + step
                yield trusted_candle(
                    venue, symbol, timeframe, open_time, close_time,
                    Decimal(f"{oo:.2f}"), Decimal(f"{hh:.2f}"), Decimal(f"{ll:.2f}"), Decimal(f"{cc:.2f}"),
                    Decimal(f"{vv:.4f}"), seq,
                )  # fmt: skip
                open_time = close_time

    def blocks() -> Iterator[object]:
        from backtesting.columns import SeriesBlock

        seq = 0
        for times, o, h, low, c, v in gbm_chunks(n, seed=seed, start_ms=start_ms, step_ms=step_ms):
            m = times.shape[0]
            # the floats are exactly float() of the Decimals built from them: prices are integers of
            # cents divided by 100 (and volumes of 1e-4) by numpy, the closest doubles to those decimals
            ol, hl, ll, cl, vl = o.tolist(), h.tolist(), low.tolist(), c.tolist(), v.tolist()

            def exact(i: int, ol: list[float] = ol, hl: list[float] = hl, ll: list[float] = ll,
                      cl: list[float] = cl, vl: list[float] = vl) -> tuple[Decimal, ...]:  # fmt: skip
                return (
                    Decimal(f"{ol[i]:.2f}"), Decimal(f"{hl[i]:.2f}"), Decimal(f"{ll[i]:.2f}"),
                    Decimal(f"{cl[i]:.2f}"), Decimal(f"{vl[i]:.4f}"),
                )  # fmt: skip

            def exact_close(i: int, cl: list[float] = cl) -> Decimal:
                return Decimal(f"{cl[i]:.2f}")

            yield SeriesBlock(
                times,
                times + step_ms,
                o,
                h,
                low,
                c,
                v,
                np.arange(seq + 1, seq + m + 1, dtype=np.int64),
                exact,  # type: ignore[arg-type]
                None,
                exact_close,
            )
            seq += m

    return SeriesSource(key, f"gbm(n={n}, seed={seed})", candles, blocks)  # type: ignore[arg-type]
