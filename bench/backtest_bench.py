"""Backtest throughput: the full agent pipeline against backtrader and backtesting.py, same candles.

    .venv/bin/python bench/backtest_bench.py                       # 1,000,000 candles (a few minutes)
    .venv/bin/python bench/backtest_bench.py --candles 100000      # a quick look
    .venv/bin/python bench/backtest_bench.py --breakdown           # us per candle by component
    .venv/bin/python bench/backtest_bench.py --awake               # also all-awake (every delivery made)
    .venv/bin/python bench/backtest_bench.py --install-backtesting-py   # once: backtesting.py for the bench

Our headline run is the full pipeline (technical analysis, strategy, risk, compliance, execution
with the paper venue) on sma_cross(10/30) with 100% fixed-fraction sizing, 10 bps fees, fills at the
next open and protective stops ON (stop-loss 0.5%, take-profit 1% of the entry), on a seeded GBM
series (``backtesting.synthetic``). The same engine runs the reference configuration without stops
(the backtrader agreement test's), whose final equity is compared with backtrader's. backtrader runs
that reference strategy; backtesting.py (when installed) runs the same SMA cross with the same stops.

Every run is its own child process, so its peak RSS (``ru_maxrss``) is its own. The machine is shared:
wall-clock figures move with other work, so each run also reports its CPU time and candles per CPU
second, and ratios are taken between runs of the same invocation (``--repeat`` runs ours again).
Memory: ours also runs at 1/10 and 1/4 of the size (RSS must not grow beyond the equity curve and
the trade list).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BTPY_DIR = ROOT / "bench" / ".deps" / "backtesting-py"
STOP_LOSS = Decimal("0.005")
TAKE_PROFIT = Decimal("0.01")


def _config(stops: bool) -> Any:
    from backtesting.config import reference_config

    config = reference_config(fee_bps=10)
    if stops:
        config = config.model_copy(update={"risk": {"stop_loss_pct": STOP_LOSS, "take_profit_pct": TAKE_PROFIT}})
    return config


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ours(n: int, seed: int, stops: bool, wake: bool, breakdown: bool, queue: Any) -> None:
    from backtesting.breakdown import Breakdown
    from backtesting.engine import BacktestEngine
    from backtesting.synthetic import gbm_source

    timer = Breakdown() if breakdown else None
    engine = BacktestEngine(_config(stops), [gbm_source(n, seed=seed)], wake=wake, timer=timer)
    cpu = _cpu()
    started = time.perf_counter()
    result = asyncio.run(engine.run())
    elapsed = time.perf_counter() - started
    cpu = _cpu() - cpu
    swarm = engine.last_swarm
    assert swarm is not None
    stats = swarm.bus.stats
    out: dict[str, Any] = {
        "candles": result.candles,
        "elapsed": elapsed,
        "cpu": cpu,
        "cps": result.candles / elapsed,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final": float(result.final_equity),
        "trades": len(result.trips),
        "orders": len(result.orders),
        "delivered": stats.delivered,
        "skipped": stats.skipped,
    }
    if timer is not None:
        out["breakdown"] = timer.rows(result.candles, engine.cpu_s)
        out["feed_cpu"] = engine.cpu_s
    queue.put(out)


def _backtrader(n: int, seed: int, queue: Any) -> None:
    from tests.backtesting.bt_reference import gbm_frame, run_reference

    frame = gbm_frame(n, seed=seed)
    cpu = _cpu()
    started = time.perf_counter()
    fills, final = run_reference(frame, fee_bps=10)
    elapsed = time.perf_counter() - started
    queue.put(
        {
            "candles": n,
            "elapsed": elapsed,
            "cpu": _cpu() - cpu,
            "cps": n / elapsed,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "final": final,
            "trades": len(fills) // 2,
        }
    )


def _backtesting_py(n: int, seed: int) -> dict[str, Any] | None:
    """backtesting.py in an isolated interpreter (its package name clashes with ours), or None."""
    if not (BTPY_DIR / "backtesting").is_dir():
        return None
    import numpy as np

    from backtesting.synthetic import gbm_arrays

    times, o, h, low, c, v = gbm_arrays(n, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "gbm.npz"
        np.savez(data, times=times, open=o, high=h, low=low, close=c, volume=v)
        del times, o, h, low, c, v
        done = subprocess.run(
            [
                sys.executable,
                "-S",
                str(ROOT / "bench" / "backtesting_py_run.py"),
                str(BTPY_DIR),
                str(data),
                str(STOP_LOSS),
                str(TAKE_PROFIT),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        print(f"  backtesting.py failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _harness(n: int, seed: int, queue: Any) -> None:
    """The engine without agents: what publishing one message per candle costs (all-awake)."""
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
        engine = BacktestEngine(_config(False), [source])
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


def _child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return dict(out)


def _profile(n: int, seed: int) -> None:
    import cProfile
    import pstats

    from backtesting.engine import BacktestEngine
    from backtesting.synthetic import gbm_source

    engine = BacktestEngine(_config(True), [gbm_source(n, seed=seed)])
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(engine.run())
    profiler.disable()
    print(f"\ncProfile of {n:,} candles (functions by own time):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def _line(label: str, r: dict[str, Any]) -> str:
    cpu_cps = r["candles"] / r["cpu"] if r.get("cpu") else 0.0
    return (
        f"  {label:<30}: {r['cps']:>9,.0f} candles/s wall {r['elapsed']:7.2f} s | "
        f"{cpu_cps:>9,.0f} candles/s CPU {r['cpu']:7.2f} s | peak RSS {r['rss_mb']:6.1f} MB | "
        f"trades {r['trades']:>6} | final equity {r['final']:.6f}"
    )


def _install_backtesting_py() -> None:
    BTPY_DIR.mkdir(parents=True, exist_ok=True)
    print(f"installing backtesting.py into {BTPY_DIR} (isolated: its package name clashes with ours)")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(BTPY_DIR), "backtesting"], check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2, help="Runs of our headline configuration (best is kept).")
    parser.add_argument("--no-backtrader", action="store_true", help="Skip the backtrader baseline.")
    parser.add_argument("--no-backtesting-py", action="store_true", help="Skip backtesting.py even when installed.")
    parser.add_argument("--no-reference", action="store_true", help="Skip our run without stops (agreement).")
    parser.add_argument("--no-scaling", action="store_true", help="Skip the memory runs at 1/10 and 1/4 size.")
    parser.add_argument("--awake", action="store_true", help="Also run all-awake (every candle built and delivered).")
    parser.add_argument("--breakdown", action="store_true", help="Print us per candle by component (thread CPU).")
    parser.add_argument("--profile", action="store_true", help="Also print a cProfile (at most 50,000 candles).")
    parser.add_argument("--harness", action="store_true", help="Also time the engine without agents (all-awake).")
    parser.add_argument("--install-backtesting-py", action="store_true", help=f"pip install it into {BTPY_DIR}.")
    args = parser.parse_args()
    if args.install_backtesting_py:
        _install_backtesting_py()
    n = args.candles
    print(
        f"tradeswarm backtest bench: {n:,} GBM candles (seed {args.seed}), sma_cross 10/30, 100% sizing, "
        f"10 bps fees, stop-loss {STOP_LOSS:%} / take-profit {TAKE_PROFIT:%}  (load average {os.getloadavg()[0]:.1f})"
    )
    runs = [_child(_ours, n, args.seed, True, True, False) for _ in range(max(1, args.repeat))]
    for k, r in enumerate(runs):
        print(_line(f"tradeswarm, stops (run {k + 1})", r))
    ours = max(runs, key=lambda r: r["cps"])
    print(
        f"    deliveries made {ours['delivered']:,} / skipped by wake conditions {ours['skipped']:,}; "
        f"orders {ours['orders']:,}"
    )
    if args.awake:
        awake = _child(_ours, n, args.seed, True, False, False)
        print(_line("tradeswarm all-awake, stops", awake))
        print(
            f"    wake conditions: {ours['cps'] / awake['cps']:.2f}x wall, "
            f"{awake['cpu'] / ours['cpu']:.2f}x CPU faster than all-awake; same final equity: "
            f"{ours['final'] == awake['final']}"
        )
    ref = None
    if not args.no_reference:
        ref = _child(_ours, n, args.seed, False, True, False)
        print(_line("tradeswarm, no stops (reference)", ref))
    if not args.no_backtrader:
        bt = _child(_backtrader, n, args.seed)
        print(_line("backtrader (reference, no stops)", bt))
        print(
            f"    ratio tradeswarm(stops) / backtrader: {ours['cps'] / bt['cps']:.2f}x wall, "
            f"{bt['cpu'] / ours['cpu']:.2f}x CPU"
        )
        if ref is not None:
            gap = abs(ref["final"] - bt["final"]) / bt["final"]
            print(f"    final equity, reference vs backtrader: rel. difference {gap:.2e}")
    if not args.no_backtesting_py:
        btpy = _backtesting_py(n, args.seed)
        if btpy is None:
            print(f"  backtesting.py: not installed (run once with --install-backtesting-py; goes to {BTPY_DIR})")
        else:
            print(_line("backtesting.py, stops", btpy))
            print(
                f"    ratio tradeswarm(stops) / backtesting.py: {ours['cps'] / btpy['cps']:.2f}x wall, "
                f"{btpy['cpu'] / ours['cpu']:.2f}x CPU"
            )
    if not args.no_scaling and n >= 1000:
        print("  memory vs candles (tradeswarm, stops, separate processes):")
        for size in (n // 10, n // 4):
            r = _child(_ours, size, args.seed, True, True, False)
            print(f"    {size:>10,} candles: peak RSS {r['rss_mb']:7.1f} MB  ({r['trades']} trades)")
        print(f"    {n:>10,} candles: peak RSS {ours['rss_mb']:7.1f} MB  ({ours['trades']} trades)")
    if args.breakdown:
        r = _child(_ours, n, args.seed, True, True, True)
        per = r["feed_cpu"] / r["candles"] * 1e6
        orders = max(r["orders"], 1)
        print(f"  breakdown (thread CPU, with timing overhead): {per:.2f} us per candle, {r['orders']:,} orders")
        order_path = 0.0
        for label, seconds, us, calls in r["breakdown"]:
            print(f"    {us:7.2f} us/candle  {seconds:8.3f} s  {calls:>9,} calls  {label}")
            if not label.endswith(")") and not label.startswith(("replay", "feed", "kernel", "technical")):
                order_path += seconds
        print(
            f"    handler time (every delivery made: the order path and woken candles) per order: "
            f"{order_path / orders * 1e6:.0f} us"
        )
    if args.harness:
        h = _child(_harness, n, args.seed)
        gen_cps = h["generated"] / h["generation"]
        feed_cps = h["delivered"] / h["feed"]
        print("  engine without agents, all-awake (one built candle and one delivery per candle):")
        print(f"    candle generation only      : {gen_cps:>10,.0f} candles/s  {1e6 / gen_cps:6.1f} us/candle")
        print(f"    feed to a no-op subscriber  : {feed_cps:>10,.0f} candles/s  {1e6 / feed_cps:6.1f} us/candle")
    if args.profile:
        _profile(min(n, 50_000), args.seed)


if __name__ == "__main__":
    main()
