"""The backtest engine: history -> in-memory bus -> the real agents, under a simulated clock.

For every candle, in close-time order (:func:`backtesting.data.merge`), the engine moves the
:class:`~core.clock.SimulatedClock` to the candle's close time and publishes it; the in-memory bus
delivers it and everything it causes (snapshot, votes, intent, risk and compliance decisions,
order, fills...) before the publish returns. So each candle's consequences are complete before
the next candle, and the run is deterministic.

The agents are the production classes (technical analysis, strategy, risk, compliance, execution
with the paper venue), built with settings from :func:`backtesting.config.agent_settings`. They are
started venue-side first (execution, compliance, risk, strategy, then technical analysis), so the
bus hands each candle to execution before the analysis of it starts: fills at a candle's open are
known before the decision at its close, as they would be in real time.

No lookahead: an order decided on a candle reaches the paper venue at that candle's close time and
fills on the next candle of its symbol at the earliest (at its open, plus slippage).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from agents.base import Agent, AgentContext
from agents.compliance.agent import ComplianceAgent
from agents.desk.agent import DeskAgent
from agents.desk.pipeline import Desk
from agents.desk.settings import DeskSettings
from agents.execution.agent import ExecutionAgent, paper_venue
from agents.risk.agent import RiskAgent
from agents.strategy.agent import StrategyAgent
from agents.technical_analysis.agent import TechnicalAnalysisAgent
from backtesting.columns import column_blocks
from backtesting.config import AgentSettings, BacktestConfig, agent_settings
from backtesting.data import SeriesSource, check_single_venue
from backtesting.metrics import Metrics, buy_and_hold_curve, compute_metrics
from backtesting.outcomes import Outcomes, effective_limits, state_durations
from backtesting.recorder import FeedEvent, OrderRecord, Recorder
from backtesting.trades import FillRecord, RoundTrip, RoundTripBuilder
from core.clock import SimulatedClock
from core.columns import CandleColumn, utc_from_ms
from core.desk.store import InMemoryDeskStore
from core.domain import Mode
from core.ids import CounterIds
from core.messages import Candle, Envelope
from core.messages.desk import DeskDecision
from core.routing import routing_key
from core.settings import Settings
from core.trading.stores import InMemoryExecutionStore
from infrastructure.messaging.memory import InMemoryBus, Timer

FEED_ID = "backtest-feed"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class DeskRun:
    """A backtest of the AI desk: the pipeline (its model and inputs), when it decides, and how often
    at most (``max_decisions``; None = no cap). The desk replaces the strategy agent."""

    desk: Desk
    settings: DeskSettings
    max_decisions: int | None = None
    replace_strategies: bool = True
    """False: the strategies run too (the desk advises, or trades beside them with ``settings.trade``)."""


@dataclass(slots=True, repr=False)
class BacktestResult:
    """Everything a report needs from one run.

    Its repr is short on purpose: ``asyncio.run`` formats the repr of the task that returned it when
    it restores the SIGINT handler (Python 3.11), and a dataclass repr of a million-sample equity
    curve costs seconds and tens of MB.
    """

    config: BacktestConfig
    symbols: list[str]
    series: list[str]
    times_ms: array[int]
    equity: array[float]
    in_market: array[int]
    closes: dict[str, array[float]]
    fills: list[FillRecord]
    orders: list[OrderRecord]
    trips: list[RoundTrip]
    open_trips: list[RoundTrip]
    fees: Decimal
    traded_notional: Decimal
    final_equity: Decimal
    candles: int
    elapsed_s: float
    dead_letters: int
    outcomes: Outcomes = field(default_factory=Outcomes)
    """Rejections, adjustments and alerts by reason, and the trading-state changes."""
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The effective limits and costs of the run (:func:`backtesting.outcomes.effective_limits`)."""
    min_cash: Decimal | None = None
    """The lowest cash after any fill."""
    desk_decisions: list[DeskDecision] = field(default_factory=list)
    """The AI desk's decisions with their role reports (a desk backtest only), oldest first."""
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = compute_metrics(
            self.times_ms,
            self.equity,
            in_market=self.in_market,
            trade_pnls=[float(t.pnl) for t in self.trips],
            fees=float(self.fees),
            traded_notional=float(self.traded_notional),
            benchmark=self.benchmark(),
        )

    def __repr__(self) -> str:
        return (
            f"BacktestResult(candles={self.candles}, trades={len(self.trips)}, "
            f"final_equity={self.final_equity}, series={self.series})"
        )

    def benchmark(self) -> Any:
        """Buy-and-hold equity of the same symbols (equal split, from the first close)."""
        return buy_and_hold_curve([self.closes[s] for s in self.symbols], float(self.config.initial_cash))

    @property
    def bars_per_second(self) -> float:
        """Candles through the pipeline per second of wall time."""
        return self.candles / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def trading_states(self) -> dict[str, dict[str, float]]:
        """Seconds and share of the run (first to last sample) spent in each risk trading state."""
        if not self.times_ms:
            return state_durations((), 0, 0)
        return state_durations(self.outcomes.state_changes, self.times_ms[0], self.times_ms[-1])

    def summary(self) -> dict[str, Any]:
        """The JSON summary (``summary.json`` and ``--json``)."""
        m = self.metrics.as_dict()
        return {
            **self.outcomes.as_dict(),
            "trading_states": self.trading_states(),
            "limits": self.limits,
            "cash_min": float(self.min_cash) if self.min_cash is not None else None,
            "undefined_metrics": dict(self.metrics.undefined),
            "bars": self.candles,
            "samples": len(self.times_ms),
            "trades": len(self.trips),
            "open_trades": len(self.open_trips),
            "orders": len(self.orders),
            "fills": len(self.fills),
            "final_equity": float(self.final_equity),
            "total_return": m["total_return"],
            "max_drawdown": m["max_drawdown"],
            "sharpe": m["sharpe"],
            "elapsed_s": round(self.elapsed_s, 6),
            "bars_per_second": round(self.bars_per_second, 1),
            "dead_letters": self.dead_letters,
            "series": self.series,
            "strategies": list(self.config.strategies),
            "params": self.config.params,
            "intrabar": self.config.intrabar,
            "metrics": m,
            **({"desk": desk_summary(self.desk_decisions)} if self.desk_decisions else {}),
        }


def desk_summary(decisions: Sequence[DeskDecision]) -> dict[str, Any]:
    """Counts by verdict and action, tokens and cost of a run's desk decisions."""
    verdicts: dict[str, int] = {}
    actions: dict[str, int] = {}
    for d in decisions:
        verdicts[d.verdict] = verdicts.get(d.verdict, 0) + 1
        actions[d.action] = actions.get(d.action, 0) + 1
    return {
        "decisions": len(decisions),
        "provider": decisions[0].provider if decisions else None,
        "verdicts": verdicts,
        "actions": actions,
        "intents": sum(1 for d in decisions if d.intent_id is not None),
        "tokens_in": sum(d.tokens_in for d in decisions),
        "tokens_out": sum(d.tokens_out for d in decisions),
        "cost_usd": float(sum((d.cost_usd for d in decisions), Decimal(0))),
    }


def _ms(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class _QuietLogger:
    """A structlog-compatible logger that keeps warnings and errors only (backtests are hot loops)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def bind(self, **kw: Any) -> _QuietLogger:
        return _QuietLogger(self._inner.bind(**kw))

    def debug(self, *a: Any, **kw: Any) -> None:
        return None

    info = debug

    def warning(self, *a: Any, **kw: Any) -> None:
        self._inner.warning(*a, **kw)

    def error(self, *a: Any, **kw: Any) -> None:
        self._inner.error(*a, **kw)

    def exception(self, *a: Any, **kw: Any) -> None:
        self._inner.exception(*a, **kw)


class Swarm:
    """Every trading agent on one in-memory bus with a simulated clock (the backtest and ``run``)."""

    def __init__(self, settings: AgentSettings, venue: str, symbols: list[str], timeframes: list[str],
                 initial_cash: Decimal, *, observe_flow: bool = False, quiet: bool = True,
                 on_event: Callable[[FeedEvent], None] | None = None, wake: bool = True,
                 timer: Timer | None = None, desk: DeskRun | None = None) -> None:  # fmt: skip
        self.bus = InMemoryBus(wake=wake, timer=timer)
        self.clock = SimulatedClock(ids=CounterIds())
        self.settings = settings
        core = Settings.model_validate(
            {"mode": Mode.BACKTEST, "exchange": venue, "symbols": symbols, "timeframes": timeframes}
        )
        base_log = structlog.get_logger("tradeswarm.backtest")
        log = _QuietLogger(base_log) if quiet else base_log

        def ctx(kind: str) -> AgentContext:
            return AgentContext(bus=self.bus, clock=self.clock, settings=core, agent_id=f"bt-{kind.replace('_', '-')}",
                                log=log, instrument=False)  # fmt: skip

        self.recorder = Recorder(ctx("recorder"), initial_cash, observe_flow=observe_flow, on_event=on_event)
        ex = settings.execution
        self.execution = ExecutionAgent(ctx("execution"), paper_venue(ex, self.clock), InMemoryExecutionStore(), ex)
        self.compliance = ComplianceAgent(ctx("compliance"), settings.compliance)
        self.risk = RiskAgent(ctx("risk"), settings.risk)
        self.strategy = StrategyAgent(ctx("strategy"), settings.strategy)
        self.ta = TechnicalAnalysisAgent(ctx("technical_analysis"), settings.ta)
        self.desk: DeskAgent | None = None
        deciders: list[Agent] = [self.strategy]
        if desk is not None:  # the AI desk decides instead of the strategies (docs/agents/desk.md)
            self.desk = DeskAgent(ctx("desk"), desk.desk, desk.settings, InMemoryDeskStore())
            self.desk.max_decisions = desk.max_decisions
            deciders = [self.desk] if desk.replace_strategies else [self.strategy, self.desk]
        self.agents: list[Agent] = [self.recorder, self.execution, self.compliance, self.risk, *deciders, self.ta]

    async def start(self) -> None:
        """Start the bus and every agent (venue side first; see the module docstring)."""
        await self.bus.start()
        for agent in self.agents:
            await agent.start()

    async def stop(self) -> None:
        """Drain and close the bus, then stop the agents."""
        await self.bus.close()
        for agent in reversed(self.agents):
            await agent.stop()

    def desk_decisions(self) -> list[DeskDecision]:
        """The desk's decisions so far, oldest first (empty without a desk)."""
        if self.desk is None:
            return []
        store = self.desk.store
        return store.all() if isinstance(store, InMemoryDeskStore) else []

    async def dead_letter_count(self) -> int:
        """Messages some agent could not handle (should be zero)."""
        return self.bus.stats.dead_lettered


class Replay:
    """Feeds candles into a started :class:`Swarm` and samples the account at each new bar close
    time (once every symbol has printed). Shared by backtests and ``tradeswarm run``.

    :meth:`feed` publishes one candle; :meth:`feed_column` publishes a column of candles through
    :meth:`InMemoryBus.publish_column`, with this replay as the column's observer: the clock moves to
    each delivered row's close time, and the samples of quiet rows (nothing changed anywhere) are
    taken in bulk from the arrays, with the same values the row-by-row feed gives.
    """

    def __init__(self, swarm: Swarm, symbols: list[str]) -> None:
        self.swarm = swarm
        self.symbols = symbols
        self.closes_now: dict[str, Decimal] = {}
        self.times: array[int] = array("q")
        self.equity: array[float] = array("d")
        self.in_market: array[int] = array("b")
        self.closes: dict[str, array[float]] = {s: array("d") for s in symbols}
        self.count = 0
        self._keys: dict[tuple[str, str], str] = {}
        self._current_ms: int | None = None
        self._publish = swarm.bus.publish
        self._wrap = Envelope.wrap
        self._advance = swarm.clock.advance_to
        self._advance_ms = swarm.clock.advance_to_ms
        self._column: CandleColumn | None = None
        self._symbol_of: list[int] = []
        """Per series of the column's table: the index of its symbol in :attr:`symbols`."""
        self._last_float: dict[str, float] = {}
        self._pending_rows: dict[str, int] = {}
        """Symbols whose last close is a row of the current column not yet turned into a Decimal."""
        self.progress: ProgressCallback | None = None
        self.progress_every = 1000
        self._next_progress = 0

    async def feed(self, candle: Candle) -> None:
        """Move the clock to the candle's close, publish it (its consequences complete on return)."""
        close_time = candle.close_time
        ms = _ms(close_time)
        if ms != self._current_ms:
            if self._current_ms is not None and len(self.closes_now) == len(self.symbols):
                self._sample(self._current_ms)
            self._current_ms = ms
        self._advance(close_time)
        series = (candle.symbol, candle.timeframe)
        key = self._keys.get(series)
        if key is None:
            key = self._keys[series] = routing_key(candle)
        clock = self.swarm.clock
        await self._publish(self._wrap(candle, source=FEED_ID, clock=clock, ts_event=close_time), key)
        self.closes_now[candle.symbol] = candle.close
        self._last_float[candle.symbol] = float(candle.close)
        self.count += 1

    async def feed_column(self, column: CandleColumn) -> None:
        """Publish every candle of ``column`` (its wake conditions honoured by the bus)."""
        self._column = column
        index = {symbol: k for k, symbol in enumerate(self.symbols)}
        self._symbol_of = [index[info.symbol] for info in column.table]
        bus = self.swarm.bus
        assert isinstance(bus, InMemoryBus)
        timer = bus.timer
        await bus.publish_column(column, self if timer is None else _TimedObserver(self, timer))
        self._materialise_closes()
        self._column = None

    # -- ColumnObserver -------------------------------------------------------------------------

    def before(self, i: int) -> None:
        """Row ``i`` is about to be delivered: sample the previous bar if this starts a new one and
        move the clock to the row's close."""
        column = self._column
        assert column is not None
        ms = int(column.close_ms[i])
        if ms != self._current_ms:
            if self._current_ms is not None and len(self._last_float) == len(self.symbols):
                self._materialise_closes()
                self._sample(self._current_ms)
            self._current_ms = ms
        self._advance_ms(utc_from_ms(ms), ms)

    def after(self, i: int) -> None:
        """Row ``i`` was delivered: it is its symbol's last close now."""
        column = self._column
        assert column is not None
        symbol = self.symbols[self._symbol_of[int(column.series[i])]]
        self.closes_now[symbol] = column.close_decimal(i)
        self._last_float[symbol] = float(column.close[i])
        self._pending_rows.pop(symbol, None)
        self.count += 1
        self._tick()

    def quiet(self, start: int, stop: int) -> None:
        """Rows ``[start, stop)`` changed no agent's state: take their samples from the arrays."""
        column = self._column
        assert column is not None
        if column.single_series and len(self.symbols) == 1:
            self._quiet_one_series(column, start, stop)
            return
        cm = column.close_ms[start:stop]
        sym = np.asarray(self._symbol_of, dtype=np.intp)[column.series[start:stop]]
        n = stop - start
        prev = np.empty(n, dtype=np.int64)
        prev[0] = self._current_ms if self._current_ms is not None else -1
        prev[1:] = cm[:-1]
        change = cm != prev
        if self._current_ms is None:
            change[0] = False
        ks = np.flatnonzero(change)
        if ks.shape[0]:
            self._samples_in_run(column, start, ks, prev, sym)
        # the closes after the run
        for k, symbol in enumerate(self.symbols):
            rows = np.flatnonzero(sym == k)
            if rows.shape[0]:
                last = start + int(rows[-1])
                self._pending_rows[symbol] = last
                self._last_float[symbol] = float(column.close[last])
        self._current_ms = int(cm[-1])
        last_ms = int(cm[-1])
        self._advance_ms(utc_from_ms(last_ms), last_ms)
        self.count += n
        self._tick()

    def _quiet_one_series(self, column: CandleColumn, start: int, stop: int) -> None:
        """:meth:`quiet` for one series: close times strictly increase, so every row but a first one
        starts a new bar, whose sample sees the previous row's close."""
        symbol = self.symbols[0]
        close_ms = column.close_ms
        close = column.close
        first = start if self._current_ms is not None else start + 1  # a sample before each of these rows
        if symbol not in self._last_float:
            first = max(first, start + 1)  # no close of the symbol seen before the run: nothing to sample
        if first < stop:
            m = stop - first
            if first > start:
                _extend(self.times, close_ms[first - 1 : stop - 1])
            else:
                assert self._current_ms is not None
                self.times.append(self._current_ms)
                _extend(self.times, close_ms[start : stop - 1])
            if first > start:
                closes = close[first - 1 : stop - 1]
            else:
                closes = np.concatenate(([self._last_float[symbol]], close[start : stop - 1]))
            _extend(self.closes[symbol], closes)
            recorder = self.swarm.recorder
            if recorder.in_market():
                self._materialise_closes()
                # Recorder.equity with the one symbol held: cash + quantity * close, the same Decimals
                cash = recorder.cash
                qty = recorder.positions[symbol]
                exact_close = column.close_uncached
                values = [] if first > start else [float(cash + qty * self.closes_now[symbol])]
                values += [float(cash + qty * exact_close(i)) for i in range(max(first, start + 1) - 1, stop - 1)]
                self.equity.extend(values)
                self.in_market.extend(b"\x01" * m)
            else:
                self.equity.extend([recorder.cash_float()] * m)
                self.in_market.extend(b"\x00" * m)
        last = stop - 1
        self._pending_rows[symbol] = last
        self._last_float[symbol] = float(close[last])
        last_ms = int(close_ms[last])
        self._current_ms = last_ms
        self._advance_ms(utc_from_ms(last_ms), last_ms)
        self.count += stop - start
        self._tick()

    # -- samples --------------------------------------------------------------------------------

    def _samples_in_run(self, column: CandleColumn, start: int, ks: Any, prev: Any, sym: Any) -> None:
        """The samples taken before rows ``start + ks`` (each a new close time) of a quiet run."""
        nsym = len(self.symbols)
        rows_before = ks - 1  # the last row (relative) whose close the sample sees
        if nsym == 1:
            symbol = self.symbols[0]
            seen = symbol in self._last_float
            sel = ks if seen else ks[ks > 0]
            if not sel.shape[0]:
                return
            lasts = [sel - 1]
            closes_f = [
                np.where(
                    lasts[0] >= 0, column.close[start + np.maximum(lasts[0], 0)], self._last_float.get(symbol, 0.0)
                )
            ]
        else:
            lasts = []
            for k in range(nsym):
                idx = np.where(sym == k, np.arange(sym.shape[0]), -1)
                idx = np.maximum.accumulate(idx)
                before = np.full(ks.shape[0], -1, dtype=np.intp)
                valid = rows_before >= 0
                before[valid] = idx[rows_before[valid]]
                lasts.append(before)
            ready = np.ones(ks.shape[0], dtype=bool)
            for k, symbol in enumerate(self.symbols):
                if symbol not in self._last_float:
                    ready &= lasts[k] >= 0
            if not ready.any():
                return
            picked = np.flatnonzero(ready)
            sel = ks[picked]
            lasts = [last[picked] for last in lasts]
            closes_f = [
                np.where(
                    lasts[k] >= 0, column.close[start + np.maximum(lasts[k], 0)], self._last_float.get(symbol, 0.0)
                )
                for k, symbol in enumerate(self.symbols)
            ]
        _extend(self.times, prev[sel])
        for k, symbol in enumerate(self.symbols):
            _extend(self.closes[symbol], closes_f[k])
        m = int(sel.shape[0])
        recorder = self.swarm.recorder
        if recorder.in_market():
            self._materialise_closes()
            closes = dict(self.closes_now)
            equity = self.equity
            held = [(k, s) for k, s in enumerate(self.symbols) if recorder.positions.get(s)]
            close_decimal = column.close_decimal
            for j in range(m):
                for k, symbol in held:
                    row = int(lasts[k][j])
                    if row >= 0:
                        closes[symbol] = close_decimal(start + row)
                equity.append(float(recorder.equity(closes)))
            self.in_market.extend(b"\x01" * m)
        else:
            self.equity.extend([recorder.cash_float()] * m)
            self.in_market.extend(b"\x00" * m)

    def _materialise_closes(self) -> None:
        """Turn the rows remembered as each symbol's last close into Decimals."""
        pending = self._pending_rows
        if not pending:
            return
        column = self._column
        if column is not None:
            for symbol, row in pending.items():
                self.closes_now[symbol] = column.close_decimal(row)
        pending.clear()

    def _tick(self) -> None:
        if self.progress is not None and self.count >= self._next_progress:
            self._next_progress = self.count + self.progress_every
            self.progress(self.count)

    def _sample(self, ms: int) -> None:
        recorder = self.swarm.recorder
        closes_now = self.closes_now
        self.times.append(ms)
        if recorder.in_market():
            self.equity.append(float(recorder.equity(closes_now)))
            self.in_market.append(1)
        else:
            self.equity.append(recorder.cash_float())
            self.in_market.append(0)
        for s in self.symbols:
            self.closes[s].append(float(closes_now[s]))

    def current_equity(self) -> Decimal:
        """The account value at the last closes."""
        self._materialise_closes()
        return self.swarm.recorder.equity(self.closes_now)

    def finish(self) -> None:
        """Take the last sample."""
        self._materialise_closes()
        ready = self._current_ms is not None and len(self.closes_now) == len(self.symbols)
        if ready and self._current_ms is not None and (not self.times or self.times[-1] != self._current_ms):
            self._sample(self._current_ms)

    def result(self, config: BacktestConfig, series: list[str], elapsed: float, dead_letters: int) -> BacktestResult:
        """The run's result (call after :meth:`finish`)."""
        recorder = self.swarm.recorder
        builder = RoundTripBuilder()
        for fill in recorder.fills:
            builder.add(fill)
        return BacktestResult(
            config=config,
            symbols=self.symbols,
            series=series,
            times_ms=self.times,
            equity=self.equity,
            in_market=self.in_market,
            closes=self.closes,
            fills=recorder.fills,
            orders=recorder.orders,
            trips=builder.trips,
            open_trips=builder.open_trips(self.closes_now),
            fees=recorder.fees,
            traded_notional=recorder.traded_notional,
            final_equity=self.current_equity() if self.closes_now else config.initial_cash,
            candles=self.count,
            elapsed_s=elapsed,
            dead_letters=dead_letters,
            outcomes=recorder.outcomes,
            limits=effective_limits(self.swarm.settings),
            min_cash=recorder.min_cash,
            desk_decisions=self.swarm.desk_decisions(),
        )


def _extend(out: array[Any], values: NDArray[Any]) -> None:
    """Append a numpy array to an ``array`` of the same machine type (int64 ``q``, float64 ``d``):
    one copy of the bytes instead of a Python object per value."""
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64 if out.typecode == "q" else np.float64).tobytes())


class _TimedObserver:
    """A replay's column books, timed (the breakdown mode)."""

    def __init__(self, replay: Replay, timer: Timer) -> None:
        self.replay = replay
        self.timer = timer

    def before(self, i: int) -> None:
        started = self.timer.clock()
        self.replay.before(i)
        self.timer.add("replay: clock and equity samples", self.timer.clock() - started)

    def after(self, i: int) -> None:
        started = self.timer.clock()
        self.replay.after(i)
        self.timer.add("replay: clock and equity samples", self.timer.clock() - started)

    def quiet(self, start: int, stop: int) -> None:
        started = self.timer.clock()
        self.replay.quiet(start, stop)
        self.timer.add("replay: clock and equity samples", self.timer.clock() - started)


class BacktestEngine:
    """Runs one backtest over ``sources`` with ``config`` (see the module docstring).

    ``wake=False`` runs all-awake: every candle is built and every delivery made. The default honours
    the agents' wake conditions (:mod:`core.wake`), which the tests prove give the same run bit for
    bit. ``timer`` collects the time per component (the bench's breakdown).
    """

    def __init__(self, config: BacktestConfig, sources: Sequence[SeriesSource], *, use_env: bool = False,
                 wake: bool = True, timer: Timer | None = None, desk: DeskRun | None = None) -> None:  # fmt: skip
        self.config = config
        self.desk = desk
        self.sources = list(sources)
        self.venue = check_single_venue(self.sources)
        self.symbols = sorted({s.key.symbol for s in self.sources})
        self.timeframes = sorted({s.key.timeframe for s in self.sources})
        self.settings = agent_settings(config, self.venue, self.symbols, timeframes=self.timeframes, use_env=use_env)
        self.wake = wake
        self.timer = timer
        self.last_swarm: Swarm | None = None
        """The swarm of the last :meth:`run` (tests look at the agents' state after a run)."""
        self.cpu_s = 0.0
        """CPU time of the last run's replay (the bench reports it beside the wall time)."""

    def swarm(self, **kw: Any) -> Swarm:
        """A swarm configured for this backtest's data."""
        kw.setdefault("wake", self.wake)
        kw.setdefault("timer", self.timer)
        kw.setdefault("desk", self.desk)
        return Swarm(self.settings, self.venue, self.symbols, self.timeframes, self.config.initial_cash, **kw)

    @property
    def series(self) -> list[str]:
        """``venue:symbol:timeframe`` of every source."""
        return [f"{s.key.venue}:{s.key.symbol}:{s.key.timeframe}" for s in self.sources]

    async def run(self, progress: ProgressCallback | None = None, progress_every: int = 1000) -> BacktestResult:
        """Replay every candle through the swarm; returns the result with its metrics."""
        swarm = self.swarm()
        self.last_swarm = swarm
        await swarm.start()
        replay = Replay(swarm, self.symbols)
        replay.progress = progress
        replay.progress_every = progress_every
        started = time.perf_counter()
        timer = self.timer
        blocks = column_blocks(self.sources, source_id=FEED_ID, clock=swarm.clock)
        cpu_started = time.thread_time()
        while True:
            began = timer.clock() if timer is not None else 0.0
            column = next(blocks, None)
            if timer is not None:
                timer.add("feed: reading the data (arrays)", timer.clock() - began)
            if column is None:
                break
            await replay.feed_column(column)
        await swarm.bus.flush_held()
        replay.finish()
        elapsed = time.perf_counter() - started
        self.cpu_s = time.thread_time() - cpu_started
        if progress is not None:
            progress(replay.count)
        dead = await swarm.dead_letter_count()
        await swarm.stop()
        return replay.result(self.config, self.series, elapsed, dead)
