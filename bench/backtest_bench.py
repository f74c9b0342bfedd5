"""Backtest throughput: the full agent pipeline vs backtrader on the same seeded GBM candles.

    .venv/bin/python bench/backtest_bench.py                 # 1,000,000 candles (several minutes)
    .venv/bin/python bench/backtest_bench.py --candles 20000 # a quick look
    .venv/bin/python bench/backtest_bench.py --candles 20000 --profile   # where the time goes

Both engines run sma_cross(10/30) with 100% fixed-fraction sizing, 10 bps fees, fills at the next
open (the reference configuration of the agreement test) on the same seeded GBM series
(``backtesting.synthetic``). Each run happens in its own child process, so its peak RSS
(``resource.getrusage``) is its own; ours also runs at 1/10 and 1/4 of the size to show how memory
grows with the number of candles. Prints candles/second, the ratio to backtrader and the final
equities (which should agree).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ours(n: int, seed: int, queue: Any) -> None:
    from backtesting.config import reference_config
    from backtesting.engine import BacktestEngine
    from backtesting.synthetic import gbm_source

    engine = BacktestEngine(reference_config(fee_bps=10), [gbm_source(n, seed=seed)])
    started = time.perf_counter()
    result = asyncio.run(engine.run())
    elapsed = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "candles": result.candles,
            "elapsed": elapsed,
            "cps": result.candles / elapsed,
            "rss_mb": rss_mb,
            "final": float(result.final_equity),
            "trades": len(result.trips),
        }
    )


def _backtrader(n: int, seed: int, queue: Any) -> None:
    from tests.backtesting.bt_reference import gbm_frame, run_reference

    frame = gbm_frame(n, seed=seed)
    started = time.perf_counter()
    fills, final = run_reference(frame, fee_bps=10)
    elapsed = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "candles": n,
            "elapsed": elapsed,
            "cps": n / elapsed,
            "rss_mb": rss_mb,
            "final": final,
            "trades": len(fills) // 2,
        }
    )


def _child(target: Any, n: int, seed: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(n, seed, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return dict(out)


def _profile(n: int, seed: int) -> None:
    import cProfile
    import pstats

    from backtesting.config import reference_config
    from backtesting.engine import BacktestEngine
    from backtesting.synthetic import gbm_source

    engine = BacktestEngine(reference_config(fee_bps=10), [gbm_source(n, seed=seed)])
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(engine.run())
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"\ncProfile of {n:,} candles (cumulative time of the per-candle handlers):")
    wanted = ("on_candle", "on_snapshot", "feed", "_sample", "wrap", "dispatch", "_drain", "candles")
    rows = []
    for (filename, line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name in wanted and (
            "agents" in filename or "backtesting" in filename or "messaging" in filename or "messages" in filename
        ):
            rows.append((ct, f"{Path(filename).parent.name}/{Path(filename).name}:{line} {name}"))
    for ct, label in sorted(rows, reverse=True)[:16]:
        print(f"  {ct:8.3f} s  {ct / n * 1e6:7.1f} us/candle  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-backtrader", action="store_true", help="Skip the backtrader baseline.")
    parser.add_argument("--no-scaling", action="store_true", help="Skip the memory runs at 1/10 and 1/4 size.")
    parser.add_argument("--profile", action="store_true", help="Also print a cProfile breakdown (slower).")
    args = parser.parse_args()
    n = args.candles
    print(f"tradeswarm backtest bench: {n:,} GBM candles (seed {args.seed}), sma_cross 10/30, 100% sizing, 10 bps")
    ours = _child(_ours, n, args.seed)
    print(
        f"  tradeswarm agents : {ours['cps']:>10,.0f} candles/s  {ours['elapsed']:8.2f} s  "
        f"peak RSS {ours['rss_mb']:7.1f} MB  trades {ours['trades']}  final equity {ours['final']:.6f}"
    )
    if not args.no_backtrader:
        bt = _child(_backtrader, n, args.seed)
        print(
            f"  backtrader        : {bt['cps']:>10,.0f} candles/s  {bt['elapsed']:8.2f} s  "
            f"peak RSS {bt['rss_mb']:7.1f} MB  trades {bt['trades']}  final equity {bt['final']:.6f}"
        )
        print(
            f"  ratio (tradeswarm / backtrader): {ours['cps'] / bt['cps']:.2f}x   "
            f"final equity rel. difference {abs(ours['final'] - bt['final']) / bt['final']:.2e}"
        )
    if not args.no_scaling and n >= 1000:
        print("  memory vs candles (tradeswarm, separate processes):")
        for size in (n // 10, n // 4):
            r = _child(_ours, size, args.seed)
            print(f"    {size:>10,} candles: peak RSS {r['rss_mb']:7.1f} MB")
        print(f"    {n:>10,} candles: peak RSS {ours['rss_mb']:7.1f} MB")
    if args.profile:
        _profile(min(n, 50_000), args.seed)


if __name__ == "__main__":
    main()
