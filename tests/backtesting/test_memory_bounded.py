"""A backtest's per-order state stays bounded: execution's store and bookkeeping, the paper venue's
book, risk's decision cache and compliance's dedupe window keep about one simulated day of orders
(``RETENTION_GRACE_S``), however many the run places; the trades are those of a run that keeps all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backtesting.config import BacktestConfig, reference_config
from backtesting.data import merge
from backtesting.engine import BacktestEngine, Replay
from backtesting.synthetic import gbm_source
from backtesting.trades import FillRecord

CANDLES = 8000  # 1m GBM candles (~5.5 days): ~290 orders, ~60 per simulated day
BOUND = 100


@dataclass
class Run:
    orders: int
    fills: list[FillRecord]
    sizes: dict[str, int]


async def _run(config: BacktestConfig) -> Run:
    engine = BacktestEngine(config, [gbm_source(CANDLES, seed=11)])
    swarm = engine.swarm()
    await swarm.start()
    replay = Replay(swarm, engine.symbols)
    for candle in merge(engine.sources):
        await replay.feed(candle)
    ex = swarm.execution.engine
    store: Any = ex.store
    venue: Any = ex.venue
    sizes = {
        "execution store orders": len(store.orders),
        "execution store fills": len(store.fill_log),
        "execution per-order sums": len(ex._per_order),
        "execution fill ids": len(ex.portfolio._seen_fills),
        "paper venue book": len(venue._orders),
        "risk decisions": len(swarm.risk.engine._decided),
        "risk fill ids": len(swarm.risk.engine.portfolio._seen_fills),
        "compliance dedupe": len(swarm.compliance.gate._seen),
    }
    await swarm.stop()
    return Run(len(swarm.recorder.orders), list(swarm.recorder.fills), sizes)


async def test_per_order_state_is_bounded_and_trades_are_unchanged() -> None:
    bounded = await _run(reference_config(fee_bps=10))
    assert bounded.orders > 2 * BOUND, "the run must trade much more than the bound"
    for name, size in bounded.sizes.items():
        assert size <= BOUND, f"{name}: {size} entries after {bounded.orders} orders"

    keep_all = {"retention_grace_s": None}
    ref = reference_config(fee_bps=10)
    unbounded = await _run(
        ref.model_copy(
            update={
                "risk": {**ref.risk, **keep_all},
                "compliance": {**ref.compliance, **keep_all},
                "execution": {**ref.execution, **keep_all},
            }
        )
    )
    assert unbounded.sizes["execution store orders"] == unbounded.orders  # without retention it grows
    assert unbounded.sizes["paper venue book"] == unbounded.orders
    assert bounded.fills == unbounded.fills
