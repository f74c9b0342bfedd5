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

import structlog

from agents.base import Agent, AgentContext
from agents.compliance.agent import ComplianceAgent
from agents.execution.agent import ExecutionAgent, paper_venue
from agents.risk.agent import RiskAgent
from agents.strategy.agent import StrategyAgent
from agents.technical_analysis.agent import TechnicalAnalysisAgent
from backtesting.config import AgentSettings, BacktestConfig, agent_settings
from backtesting.data import SeriesSource, check_single_venue, merge
from backtesting.metrics import Metrics, buy_and_hold_curve, compute_metrics
from backtesting.outcomes import Outcomes, effective_limits, state_durations
from backtesting.recorder import FeedEvent, OrderRecord, Recorder
from backtesting.trades import FillRecord, RoundTrip, RoundTripBuilder
from core.clock import SimulatedClock
from core.domain import Mode
from core.messages import Candle, Envelope
from core.routing import routing_key
from core.settings import Settings
from core.trading.stores import InMemoryExecutionStore
from infrastructure.messaging.memory import InMemoryBus

FEED_ID = "backtest-feed"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ProgressCallback = Callable[[int], None]


@dataclass(slots=True)
class BacktestResult:
    """Everything a report needs from one run."""

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
            "metrics": m,
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
                 on_event: Callable[[FeedEvent], None] | None = None) -> None:  # fmt: skip
        self.bus = InMemoryBus()
        self.clock = SimulatedClock()
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
        self.agents: list[Agent] = [self.recorder, self.execution, self.compliance, self.risk, self.strategy, self.ta]

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

    async def dead_letter_count(self) -> int:
        """Messages some agent could not handle (should be zero)."""
        return self.bus.stats.dead_lettered


class Replay:
    """Feeds candles into a started :class:`Swarm` one at a time and samples the account at each
    new bar close time (once every symbol has printed). Shared by backtests and ``tradeswarm run``."""

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
        self.count += 1

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
        return self.swarm.recorder.equity(self.closes_now)

    def finish(self) -> None:
        """Take the last sample."""
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
        )


class BacktestEngine:
    """Runs one backtest over ``sources`` with ``config`` (see the module docstring)."""

    def __init__(self, config: BacktestConfig, sources: Sequence[SeriesSource], *, use_env: bool = False) -> None:
        self.config = config
        self.sources = list(sources)
        self.venue = check_single_venue(self.sources)
        self.symbols = sorted({s.key.symbol for s in self.sources})
        self.timeframes = sorted({s.key.timeframe for s in self.sources})
        self.settings = agent_settings(config, self.venue, self.symbols, timeframes=self.timeframes, use_env=use_env)

    def swarm(self, **kw: Any) -> Swarm:
        """A swarm configured for this backtest's data."""
        return Swarm(self.settings, self.venue, self.symbols, self.timeframes, self.config.initial_cash, **kw)

    @property
    def series(self) -> list[str]:
        """``venue:symbol:timeframe`` of every source."""
        return [f"{s.key.venue}:{s.key.symbol}:{s.key.timeframe}" for s in self.sources]

    async def run(self, progress: ProgressCallback | None = None, progress_every: int = 1000) -> BacktestResult:
        """Replay every candle through the swarm; returns the result with its metrics."""
        swarm = self.swarm()
        await swarm.start()
        replay = Replay(swarm, self.symbols)
        feed = replay.feed
        started = time.perf_counter()
        for candle in merge(self.sources):
            await feed(candle)
            if progress is not None and replay.count % progress_every == 0:
                progress(replay.count)
        replay.finish()
        elapsed = time.perf_counter() - started
        if progress is not None:
            progress(replay.count)
        dead = await swarm.dead_letter_count()
        await swarm.stop()
        return replay.result(self.config, self.series, elapsed, dead)
