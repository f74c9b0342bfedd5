"""The backtrader reference of the agreement test and of the benchmark (backtrader is test-only).

Same assumptions as ``backtesting.config.reference_config``: sma_cross(fast/slow) with backtrader's
``CrossOver``; 100% fixed-fraction sizing at the decision candle's close (quantity rounded down to
1e-8, computed in Decimal like the risk agent); market orders filled at the next candle's open;
fees of N bps on notional on both sides; no slippage.

With 100% sizing at the close, the fill at the next open costs slightly more than the cash when the
price gapped up: a spot account refuses (backtrader: ``Margin``; the paper venue fills only what the
cash pays). So both get the same credit line: ``CREDIT`` extra cash that is never traded (backtrader's
sizing and reported value subtract it; ``reference_config`` gives the paper account
``paper_credit`` = ``REFERENCE_CREDIT``), which keeps their accounting identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

import backtrader as bt
import numpy as np
import pandas as pd

from backtesting.config import REFERENCE_CREDIT

STEP = Decimal("0.00000001")
CREDIT = float(REFERENCE_CREDIT)


@dataclass(frozen=True)
class BtFill:
    time: datetime
    side: str
    price: float
    size: float
    fee: float


class SmaCrossRef(bt.Strategy):  # type: ignore[misc]
    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow)
        self.fills: list[BtFill] = []

    def next(self) -> None:
        if not self.position:
            if self.cross[0] > 0:
                value = Decimal(repr(self.broker.getvalue() - CREDIT))
                close = Decimal(repr(float(self.data.close[0])))
                size = (value / close / STEP).to_integral_value(rounding=ROUND_DOWN) * STEP
                if size > 0:
                    self.buy(size=float(size))
        elif self.cross[0] < 0:
            self.close()

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            when = bt.num2date(order.executed.dt).replace(tzinfo=UTC)
            self.fills.append(
                BtFill(
                    when,
                    "buy" if order.isbuy() else "sell",
                    float(order.executed.price),
                    abs(float(order.executed.size)),
                    float(order.executed.comm),
                )
            )


def frame_from_csv(path: str) -> pd.DataFrame:
    """A backtrader-ready frame (index = candle open time, UTC naive) from a candle CSV."""
    df = pd.read_csv(path)
    df.index = pd.to_datetime(df["timestamp"], unit="ms")
    return df[["open", "high", "low", "close", "volume"]].astype(float)


def gbm_frame(n: int, seed: int = 7, start_ms: int = 1_700_000_000_000, step_ms: int = 60_000) -> pd.DataFrame:
    """A frame of the benchmark's GBM candles (same numbers as ``backtesting.synthetic``)."""
    from backtesting.synthetic import gbm_arrays

    t, o, h, low, c, v = gbm_arrays(n, seed=seed, start_ms=start_ms, step_ms=step_ms)
    df = pd.DataFrame({"open": o, "high": h, "low": low, "close": c, "volume": v}, index=pd.to_datetime(t, unit="ms"))
    return df.astype(np.float64)


def run_reference(
    df: pd.DataFrame, *, fee_bps: float, cash: float = 10_000.0, fast: int = 10, slow: int = 30
) -> tuple[list[BtFill], float]:
    """Run backtrader; returns the executed fills and the final account value."""
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(SmaCrossRef, fast=fast, slow=slow)
    cerebro.broker.setcash(cash + CREDIT)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.addcommissioninfo(
        bt.CommInfoBase(commission=fee_bps / 10_000, commtype=bt.CommInfoBase.COMM_PERC, percabs=True, stocklike=True)
    )
    strategy = cerebro.run()[0]
    return strategy.fills, float(cerebro.broker.getvalue()) - CREDIT
