"""The backtest runner of the API: :class:`backtesting.engine.BacktestEngine` over a candle file.

The job machinery (:mod:`infrastructure.api.jobs`) takes any
:data:`~infrastructure.api.ports.BacktestRunner`; this one reads the candles of the requested
series from ``data_dir`` (files named ``<venue>_<BASE>-<QUOTE>_<tf>.csv``: the API never opens a
path a client chose) and runs the same agents a backtest runs, in a worker thread with its own
event loop so the orchestrator keeps consuming heartbeats meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.clock import utc_from_ms
from core.errors import ConfigurationError
from core.messages import Candle
from core.routing import escape
from infrastructure.api.jobs import JOB_PROGRESS, JOB_TOTAL
from infrastructure.api.ports import BacktestRunner
from infrastructure.api.schemas import BacktestRequest, BacktestResult, CandleBar, EquityPoint

MAX_CURVE_POINTS = 2000
"""The equity curve returned by the API is sampled down to at most this many points."""
MAX_BARS = 5000
"""Candles returned with a result: beyond this, consecutive candles are merged into larger bars."""


def candle_bars(candles: Iterable[Candle], max_bars: int = MAX_BARS) -> list[CandleBar]:
    """The candles as chart bars, merged ``k`` at a time (open of the first, extremes, close of the last)
    when there are more than ``max_bars`` of them."""
    rows = list(candles)
    k = max(1, -(-len(rows) // max_bars))
    bars: list[CandleBar] = []
    for i in range(0, len(rows), k):
        group = rows[i : i + k]
        first, last = group[0], group[-1]
        bars.append(
            CandleBar(symbol=first.symbol, open_time=first.open_time, open=float(first.open),
                      high=float(max(c.high for c in group)), low=float(min(c.low for c in group)),
                      close=float(last.close))
        )  # fmt: skip
    return bars


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _scalar(value: object) -> float | int | str | None:
    if value is None or isinstance(value, int | float | str):
        return value
    return str(value)


LIMIT_KEYS = (
    "rejections", "adjustments", "approved", "alerts", "consensus", "reviews", "trading_states", "limits", "cash_min",
    "undefined_metrics",
)  # fmt: skip
"""The summary keys that say what the limits did (``BacktestResult.limits``)."""


def series_path(data_dir: Path, request: BacktestRequest) -> Path:
    """The candle file of the requested series (CSV, then Parquet)."""
    stem = f"{request.venue}_{escape(request.symbol)}_{request.timeframe}"
    for suffix in (".csv", ".parquet"):
        path = data_dir / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise ConfigurationError(f"no candle file {stem}.csv in the backtest data folder")


def desk_run_of(params: object) -> Any:
    """The desk of an API backtest: ``params["desk"]`` = ``{"every": N, "max_decisions": M,
    "llm_provider": "rules"|"replay"|"openai", "blind": bool}`` (every key optional)."""
    if not isinstance(params, dict) or set(params) - {"every", "max_decisions", "llm_provider", "blind"}:
        raise ConfigurationError("params.desk takes every, max_decisions, llm_provider and blind")
    from backtesting.desk_api import desk_run

    return desk_run(
        int(params.get("every", 24)),
        int(params["max_decisions"]) if params.get("max_decisions") is not None else None,
        str(params.get("llm_provider", "rules")),
        bool(params.get("blind", False)),
    )


def engine_runner(data_dir: Path, max_candles: int = 500_000) -> BacktestRunner:
    """A runner that backtests ``request`` on the file of its series in ``data_dir``.

    ``request.params`` are :class:`backtesting.config.BacktestConfig` fields (strategies, params,
    sizing, fee_bps...), validated by it.
    """

    async def run(request: BacktestRequest) -> BacktestResult:
        from backtesting.config import BacktestConfig
        from backtesting.data import file_source
        from backtesting.engine import BacktestEngine

        path = series_path(data_dir, request)
        params = dict(request.params)
        desk_params = params.pop("desk", None)
        config = BacktestConfig.model_validate({**params, "initial_cash": request.initial_cash})
        source = file_source(path, request.start, request.end, limit=max_candles)
        desk = desk_run_of(desk_params) if desk_params is not None else None
        engine = BacktestEngine(config, [source], desk=desk)
        progress, total = JOB_PROGRESS.get(), JOB_TOTAL.get()
        if total is not None and source.blocks is not None:
            blocks = source.blocks
            total(await asyncio.to_thread(lambda: sum(len(b) for b in blocks())))
        result = await asyncio.to_thread(lambda: asyncio.run(engine.run(progress, progress_every=500)))
        summary = {k: _scalar(v) for k, v in result.summary().items() if not isinstance(v, dict | list)}
        summary.update({f"metric_{k}": _scalar(v) for k, v in result.metrics.as_dict().items()})
        n = len(result.times_ms)
        step = max(1, -(-n // MAX_CURVE_POINTS))
        indices = list(range(0, n, step)) + ([n - 1] if n and (n - 1) % step else [])
        curve = [
            EquityPoint(ts=utc_from_ms(result.times_ms[i]), equity=Decimal(str(result.equity[i]))) for i in indices
        ]
        trades: list[dict[str, Any]] = [
            {k: _json_value(v) for k, v in asdict(trip).items()} for trip in [*result.trips, *result.open_trips]
        ]
        full = result.summary()
        limits = {key: full[key] for key in LIMIT_KEYS}
        desk_view = None
        if desk is not None:
            from infrastructure.api.desk import desk_view as view_of

            desk_view = {
                **full.get("desk", {"decisions": 0}),
                "items": [view_of(d).model_dump(mode="json", by_alias=True) for d in result.desk_decisions],
            }
        bars = await asyncio.to_thread(lambda: candle_bars(source.candles()))
        return BacktestResult(
            summary=summary, equity_curve=curve, trades=trades, limits=limits, desk=desk_view, candles=bars
        )

    return run
