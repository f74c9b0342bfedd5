"""The technical analysis agent: closed candles in, one :class:`IndicatorSnapshot` per candle out.

State is kept per (venue, symbol, timeframe) series of the configured symbols and timeframes.
Before consuming, each series of the configured exchange is warmed up from a
:class:`~core.ports.HistoryProvider` (the tick store; a replay in tests and backtests), so
snapshots flow from the first live candle. A repeated or older candle (a redelivery, a replay
overlap) is ignored: the handler is idempotent and an indicator never sees the same candle twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import numpy as np
from numpy.typing import NDArray

from agents.base import Agent, AgentContext, Subscription
from agents.base.partitions import symbol_partitions
from agents.technical_analysis.columns import SnapshotColumn, snapshot_table
from agents.technical_analysis.engine import IndicatorEngine, IndicatorResult
from agents.technical_analysis.history import TickStoreHistory
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from agents.technical_analysis.snapshot import build_snapshot
from core.clock import ms_from_utc
from core.columns import REGIME_CODE, CandleColumn, Column, utc_from_ms
from core.domain import MarketRegime, timeframe_to_timedelta
from core.errors import UnroutableMessage
from core.messages import Candle, Envelope, IndicatorSnapshot
from core.ports import HistoryProvider
from core.routing import CANDLES, partition_of
from core.wake import Derive
from infrastructure.observability import metrics

SeriesKey = tuple[str, str, str]


@dataclass(slots=True)
class Series:
    """One series' engine and the open time of the last candle it used."""

    engine: IndicatorEngine
    step: timedelta | None
    last_open_time: datetime | None = None
    published: int = 0
    gaps: int = 0
    warmup_candles: int = 0
    unpublished: IndicatorSnapshot | None = None
    """The last candle's snapshot while its publish has not succeeded (re-sent on redelivery)."""
    needs: tuple[bool, bool, bool, bool] = field(init=False)

    def __post_init__(self) -> None:
        inputs = self.engine.inputs
        self.needs = ("open" in inputs, "high" in inputs, "low" in inputs, "volume" in inputs)


class TechnicalAnalysisAgent(Agent):
    """Turns closed candles into indicator snapshots (see the module docstring)."""

    kind = "technical_analysis"

    def __init__(
        self,
        ctx: AgentContext,
        settings: TechnicalAnalysisSettings | None = None,
        history: HistoryProvider | None = None,
    ) -> None:
        super().__init__(ctx)
        self.ta_settings = settings or TechnicalAnalysisSettings()
        self.history = history
        self.series: dict[SeriesKey, Series] = {}

    def subscriptions(self) -> list[Subscription]:
        """The candles of the configured symbols and timeframes, from any venue (the exchange, or
        the replay / synthetic source of a backtest); series are kept per venue.

        Single-active-consumer, and with ``rabbitmq_partitions`` = N > 1 one queue per symbol
        partition (``technical_analysis.candles.p<i>``), so replicas keep each symbol in order.
        """
        s = self.ctx.settings
        return [
            Subscription(
                purpose="candles",
                patterns=tuple(
                    CANDLES.pattern(symbol=symbol, timeframe=tf) for symbol in symbols for tf in s.timeframes
                ),
                handlers={Candle: self.on_candle},
                partition=partition,
                single_active_consumer=True,
                wake=Derive(self.derive_snapshots),
            )
            for partition, symbols in symbol_partitions(s.symbols, s.rabbitmq_partitions)
        ]

    def derive_snapshots(self, column: Column, sids: Sequence[int]) -> SnapshotColumn | None:
        """The snapshots :meth:`on_candle` publishes for every candle of ``column`` (of the series
        ``sids``), computed in one pass over the arrays: the agent's wake condition (:mod:`core.wake`).

        The same state moves as with one candle at a time: each series' engine is fed the new candles
        (:meth:`IndicatorEngine.update_many`), repeated or older candles are skipped and gaps are
        counted and logged, and every snapshot is counted as published."""
        if not isinstance(column, CandleColumn):
            return None
        n = column.n
        present = np.zeros(n, dtype=bool)
        values: dict[str, NDArray[np.float64]] = {}
        patterns: dict[str, NDArray[np.int64]] = {}
        regime = np.full(n, REGIME_CODE[MarketRegime.UNKNOWN], dtype=np.int8)
        for s in sids:
            rows = column.rows(s)
            if not rows.shape[0]:
                continue
            info = column.table[s]
            first = int(rows[0])
            series = self._series_of(info.venue, info.symbol, info.timeframe, partial(column.candle, first))
            if series is None:
                continue
            open_ms = column.open_ms[rows]
            last = series.last_open_time
            start = np.int64(ms_from_utc(last)) if last is not None else np.iinfo(np.int64).min
            before = np.empty_like(open_ms)
            before[0] = start
            np.maximum.accumulate(open_ms[:-1], out=before[1:])
            np.maximum(before[1:], start, out=before[1:])
            new = open_ms > before
            for j in np.flatnonzero(~new).tolist():
                self._skip("duplicate" if open_ms[j] == before[j] else "out_of_order", column.candle(int(rows[j])))
            step = series.step
            if step is not None:
                step_ms = step.days * 86_400_000 + step.seconds * 1000 + step.microseconds // 1000
                gap = new & (before > np.iinfo(np.int64).min) & (open_ms - before > step_ms)
                for j in np.flatnonzero(gap).tolist():
                    series.gaps += 1
                    self.log.warning(
                        "gap in candles",
                        symbol=info.symbol,
                        timeframe=info.timeframe,
                        previous=utc_from_ms(int(before[j])).isoformat(),
                        current=utc_from_ms(int(open_ms[j])).isoformat(),
                    )
            fresh = rows[new]
            if not fresh.shape[0]:
                continue
            series.last_open_time = utc_from_ms(int(column.open_ms[fresh[-1]]))
            need_o, need_h, need_l, need_v = series.needs
            zeros = np.zeros(fresh.shape[0])
            result = series.engine.update_many(
                column.open[fresh] if need_o else zeros,
                column.high[fresh] if need_h else zeros,
                column.low[fresh] if need_l else zeros,
                column.close[fresh],
                column.volume[fresh] if need_v else zeros,
            )
            made = fresh[result.produced]
            present[made] = True
            series.published += int(made.shape[0])
            for key, array in result.values.items():
                values.setdefault(key, np.full(n, np.nan))[fresh] = array
            for key, fired in result.patterns.items():
                patterns.setdefault(key, np.zeros(n, dtype=np.int64))[fresh] = fired
            regime[fresh] = result.regime
        return SnapshotColumn(column, snapshot_table(column), present, values, patterns, regime,
                              source=self.ctx.agent_id)  # fmt: skip

    async def on_start(self) -> None:
        """Warm every configured series up from history (when a provider is configured).

        With symbol partitions the warm-up waits for the partitions this replica is given
        (:meth:`on_partitions_changed`): it may never own most symbols.
        """
        if self.ctx.settings.rabbitmq_partitions > 1:
            self.log.info("symbol partitions: series warm up when their partition is assigned")
            return
        await self._warm_up_symbols(self.ctx.settings.symbols)

    async def on_partitions_changed(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        """Drop the series of lost partitions; warm those of gained partitions up from history again
        (a series handed over by another replica restarts from the history provider, as at start)."""
        s = self.ctx.settings
        moved = {sym for sym in s.symbols if partition_of(sym, s.rabbitmq_partitions) in gained | lost}
        for key in [k for k in self.series if k[1] in moved]:
            del self.series[key]
        warm = [sym for sym in s.symbols if partition_of(sym, s.rabbitmq_partitions) in gained]
        if warm:
            await self._warm_up_symbols(warm)

    async def _warm_up_symbols(self, symbols: Sequence[str]) -> None:
        if self.history is None or self.ta_settings.history_candles == 0:
            self.log.info("no history provider: indicators warm up from the live feed")
            return
        s = self.ctx.settings
        now = self.ctx.clock.now()
        timeout = self.ta_settings.history_timeout_s
        for symbol in symbols:
            for tf in s.timeframes:
                try:
                    candles = await asyncio.wait_for(
                        self.history.recent_candles(s.exchange, symbol, tf, self.ta_settings.history_candles, end=now),
                        timeout,
                    )
                except Exception as exc:  # noqa: BLE001 - history is an optimisation: fall back to the live feed
                    self.log.warning(
                        "history unavailable: warming up from the live feed",
                        symbol=symbol,
                        timeframe=tf,
                        error=str(exc) or type(exc).__name__,
                    )
                    continue
                used = sum(1 for candle in candles if self.warm_up(candle))
                series = self.series.get((s.exchange, symbol, tf))
                self.log.info(
                    "series warmed up from history",
                    symbol=symbol,
                    timeframe=tf,
                    candles=used,
                    warm=bool(series and series.engine.warm),
                )

    async def on_stop(self) -> None:
        """Close the history provider when it holds a connection."""
        close = getattr(self.history, "close", None)
        if close is not None:
            try:
                await close()
            except Exception as exc:  # noqa: BLE001 - shutting down: log and go on
                self.log.warning("history provider did not close cleanly", error=str(exc))

    def warm_up(self, candle: Candle) -> bool:
        """Feed one historical candle without publishing; False when it was skipped."""
        series = self._series_for(candle)
        if series is None or not self._is_new(series, candle):
            return False
        self._feed(series, candle)
        series.warmup_candles += 1
        return True

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        """Update the series' indicators and publish the snapshot once warm.

        The indicators move on before the publish; if the publish fails (the handler raises and
        the candle is redelivered), the redelivery re-sends the snapshot already computed instead
        of feeding the candle twice.
        """
        series = self._series_for(candle)
        if series is None:
            return
        pending = series.unpublished
        if pending is not None and candle.open_time == series.last_open_time:
            snapshot = pending
        elif not self._is_new(series, candle):
            return
        else:
            result = self._feed(series, candle)
            if result is None:
                return
            snapshot = build_snapshot(candle, result.values, result.patterns, result.regime)
            series.unpublished = snapshot
        try:
            await self.publish(snapshot, cause=envelope, ts_event=candle.close_time)
        except UnroutableMessage:
            # a stream nobody consumes yet (no strategy agent bound): nothing to retry or keep
            self.log.debug("snapshot unroutable: no consumer is bound", symbol=candle.symbol)
        else:
            series.published += 1
        series.unpublished = None

    def _feed(self, series: Series, candle: Candle) -> IndicatorResult | None:
        series.last_open_time = candle.open_time
        # Decimal -> float costs ~0.3 us a field: convert only what some indicator reads
        need_o, need_h, need_l, need_v = series.needs
        return series.engine.update(
            float(candle.open) if need_o else 0.0,
            float(candle.high) if need_h else 0.0,
            float(candle.low) if need_l else 0.0,
            float(candle.close),
            float(candle.volume) if need_v else 0.0,
        )

    def _series_for(self, candle: Candle) -> Series | None:
        return self._series_of(candle.venue, candle.symbol, candle.timeframe, lambda: candle)

    def _series_of(self, venue: str, symbol: str, timeframe: str, candle: Callable[[], Candle]) -> Series | None:
        key = (venue, symbol, timeframe)
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= self.ta_settings.max_series:
                self._skip("max_series", candle())
                return None
            try:
                step: timedelta | None = timeframe_to_timedelta(timeframe)
            except ValueError:  # calendar months have no fixed length: no gap detection
                step = None
            series = Series(IndicatorEngine(self.ta_settings), step)
            self.series[key] = series
        return series

    def _is_new(self, series: Series, candle: Candle) -> bool:
        last = series.last_open_time
        if last is None:
            return True
        if candle.open_time <= last:
            self._skip("duplicate" if candle.open_time == last else "out_of_order", candle)
            return False
        step = series.step
        if step is not None and candle.open_time - last > step:
            series.gaps += 1
            self.log.warning(
                "gap in candles",
                symbol=candle.symbol,
                timeframe=candle.timeframe,
                previous=last.isoformat(),
                current=candle.open_time.isoformat(),
            )
        return True

    def _skip(self, reason: str, candle: Candle) -> None:
        if self.ctx.instrument:
            metrics.CANDLES_SKIPPED.labels(reason).inc()
        self.log.debug("candle skipped", reason=reason, symbol=candle.symbol, open_time=candle.open_time.isoformat())


async def build(ctx: AgentContext) -> TechnicalAnalysisAgent:
    """The agent with its settings from the environment, warmed up from the tick store (InfluxDB)
    unless ``TRADESWARM_TA_HISTORY_SOURCE=none``."""
    settings = TechnicalAnalysisSettings()
    history: TickStoreHistory | None = None
    if settings.history_source == "store" and settings.history_candles > 0:
        from infrastructure.database.influx import tick_store_from_settings

        s = ctx.settings
        store = tick_store_from_settings(
            s.influx_api,
            s.influx_url,
            token=s.influx_token.get_secret_value(),
            org=s.influx_org,
            bucket=s.influx_bucket,
        )
        history = TickStoreHistory(store)
    return TechnicalAnalysisAgent(ctx, settings, history)
