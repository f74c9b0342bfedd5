"""Optimisation throughput: ``tradeswarm optimize`` trials per minute on the backtest bench's candles.

    .venv/bin/python bench/optimize_bench.py                  # 1,000,000 candles, 4 trials, 2 processes
    .venv/bin/python bench/optimize_bench.py --candles 200000 --trials 6 --jobs 1

Writes the bench's seeded GBM series (``backtesting.synthetic``) as a candle CSV once (kept under
``bench/.deps``), then runs the optimiser (TPE over sma_cross fast/slow, the bench's configuration
with protective stops) exactly as the CLI does and prints its speed line: trials per minute overall
and per worker process (one process per core), and the median CPU per trial (trials per CPU-minute).
Where workers are forked, the parent parses the file once before starting them (its ~1 s counts in
the wall time, not in any trial); elsewhere each worker's first trial also pays for reading it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_DIR = ROOT / "bench" / ".deps"


def write_csv(n: int, seed: int) -> Path:
    """The GBM series as ``synthetic_BTC-USDT_1m_<n>_<seed>.csv`` (written once)."""
    from backtesting.synthetic import gbm_chunks

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"synthetic_BTC-USDT_1m_n{n}-s{seed}.csv"
    if path.is_file():
        return path
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        for times, o, h, low, c, v in gbm_chunks(n, seed=seed):
            out.writelines(
                f"{t},{oo:.2f},{hh:.2f},{ll:.2f},{cc:.2f},{vv:.4f}\n"
                for t, oo, hh, ll, cc, vv in zip(
                    times.tolist(), o.tolist(), h.tolist(), low.tolist(), c.tolist(), v.tolist(), strict=True
                )
            )
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from backtest_bench import _config  # the bench's configuration (stops on)

    from backtesting import optimize as opt

    started = time.perf_counter()
    path = write_csv(args.candles, args.seed)
    print(f"data: {path.name} ({path.stat().st_size / 1e6:.0f} MB, ready in {time.perf_counter() - started:.1f} s)")
    dims = opt.parse_space(["sma_cross.fast=5:15", "sma_cross.slow=20:60:10"])
    print(f"optimising {args.trials} trials (tpe) in {args.jobs} process(es), load average {os.getloadavg()[0]:.1f}")
    study = opt.optimise([str(path)], _config(True), dims, sampler="tpe", trials=args.trials, n_jobs=args.jobs,
                         on_trial=lambda t: print(f"  trial {t.number}: {t.params} in {t.metrics['trial_s']:.1f} s, "
                                                  f"{t.metrics['trial_cpu_s']:.1f} s CPU "
                                                  f"({t.metrics['bars_per_second']:,.0f} candles/s)"))  # fmt: skip
    print(study.speed_line())


if __name__ == "__main__":
    main()
