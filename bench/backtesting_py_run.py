"""backtesting.py on the bench's candles, run in isolation (``python -S``, see ``backtest_bench.py``).

backtesting.py's package is named ``backtesting``, like tradeswarm's own, so it cannot be imported in
the project's environment: the bench installs it into a directory of its own
(``--install-backtesting-py``) and runs this file with ``python -S`` (no site-packages) and only that
directory on the path. The candles come from a ``.npz`` file the bench writes; the result goes to
stdout as one JSON line.

The strategy is the bench's: SMA 10/30 crossover, long only, all cash, 10 bps commission, orders
filled at the next open (fractional units of 1e-8, like the risk agent's quantity step), and a
stop-loss and a take-profit at the given fractions of the entry price (0: none).
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    deps, data, stops = sys.argv[1], sys.argv[2], float(sys.argv[3])
    take = float(sys.argv[4])
    sys.path.insert(0, deps)
    import warnings

    warnings.filterwarnings("ignore")
    import importlib

    import numpy as np
    import pandas as pd

    # backtesting.py, from ``deps`` (imported by name: the project has a package of the same name)
    library = importlib.import_module("backtesting")
    lib = importlib.import_module("backtesting.lib")
    base, backtest_class, crossover = library.Strategy, lib.FractionalBacktest, lib.crossover

    arrays = np.load(data)
    frame = pd.DataFrame(
        {
            "Open": arrays["open"],
            "High": arrays["high"],
            "Low": arrays["low"],
            "Close": arrays["close"],
            "Volume": arrays["volume"],
        },
        index=pd.to_datetime(arrays["times"], unit="ms"),
    )

    def sma(values: np.ndarray, n: int) -> np.ndarray:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(base):  # type: ignore[misc,valid-type]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self) -> None:
            if crossover(self.fast, self.slow) and not self.position:
                price = self.data.Close[-1]
                if stops > 0:
                    self.buy(sl=price * (1 - stops), tp=price * (1 + take))
                else:
                    self.buy()
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    cpu0 = time.process_time()
    started = time.perf_counter()
    backtest = backtest_class(frame, SmaCross, cash=10_000, commission=0.001, finalize_trades=True,
                                  fractional_unit=1e-8)  # fmt: skip
    stats = backtest.run()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    n = len(frame)
    print(
        json.dumps(
            {
                "candles": n,
                "elapsed": elapsed,
                "cpu": cpu,
                "cps": n / elapsed,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "final": float(stats["Equity Final [$]"]),
                "trades": int(stats["# Trades"]),
            }
        )
    )


if __name__ == "__main__":
    main()
