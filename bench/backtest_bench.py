"""Backtest throughput: the full agent pipeline vs backtrader on the same seeded GBM candles.

    .venv/bin/python bench/backtest_bench.py                 # 1,000,000 candles (several minutes)
    .venv/bin/python bench/backtest_bench.py --candles 20000 # a quick look
    .venv/bin/python bench/backtest_bench.py --candles 20000 --profile   # where the time goes
    .venv/bin/python bench/backtest_bench.py --candles 200000 --harness  # the engine without agents

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


def _harness(n: int, seed: int, queue: Any) -> None:
    """The engine without agents: what a candle costs before any agent does anything."""
    from backtesting.config import reference_config
    from backtesting.data import merge
    from backtesting.engine import BacktestEngine, Replay
    from backtesting.synthetic import gbm_source
    from core.messages import Envelope
    from core.ports import QueueSpec
    from core.routing import CANDLES

    source = gbm_source(n, seed=seed)
    started = time.perf_counter()
    generated = sum(1 for _ in merge([source]))
    generation = time.perf_counter() - started

    async def feed_only() -> tuple[float, int]:
        engine = BacktestEngine(reference_config(fee_bps=10), [source])
        swarm = engine.swarm()
        delivered = 0

        async def no_op(envelope: Envelope) -> None:
            nonlocal delivered
            delivered += 1

        await swarm.bus.start()
        await swarm.recorder.start()  # the equity sample reads the (idle) account
        await swarm.bus.subscribe(QueueSpec("bench.candles", (CANDLES.all(),)), no_op)
        replay = Replay(swarm, engine.symbols)
        began = time.perf_counter()
        for candle in merge(engine.sources):
            await replay.feed(candle)
        replay.finish()
        elapsed = time.perf_counter() - began
        await swarm.bus.close()
        return elapsed, delivered

    elapsed, delivered = asyncio.run(feed_only())
    queue.put({"generation": generation, "generated": generated, "feed": elapsed, "delivered": delivered})


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
    parser.add_argument(
        "--harness",
        action="store_true",
        help="Also time the engine without agents (candle generation; feed to a no-op subscriber): the ceiling "
        "of a pipeline that publishes one message per candle.",
    )
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
    if args.harness:
        h = _child(_harness, n, args.seed)
        gen_cps = h["generated"] / h["generation"]
        feed_cps = h["delivered"] / h["feed"]
        print("  engine without agents (the ceiling of one message per candle):")
        print(f"    candle generation only      : {gen_cps:>10,.0f} candles/s  {1e6 / gen_cps:6.1f} us/candle")
        print(
            f"    feed to a no-op subscriber  : {feed_cps:>10,.0f} candles/s  {1e6 / feed_cps:6.1f} us/candle  "
            "(generation, clock, candle envelope, bus delivery, equity sample)"
        )
        print(f"    agents' share of a candle   : {1e6 / ours['cps'] - 1e6 / feed_cps:6.1f} us/candle")
    if args.profile:
        _profile(min(n, 50_000), args.seed)


if __name__ == "__main__":
    main()
