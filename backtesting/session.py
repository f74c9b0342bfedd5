"""The embedded paper-trading session (``tradeswarm run`` / ``make run``).

Every trading agent runs in this one process on the in-memory bus with the paper venue. Market
data comes from the sample files shipped in ``data/samples`` replayed at an accelerated pace
(default), or from a public exchange through the gateway (``live``: closed candles as they close).
A rich live view shows prices, signals, decisions, positions and equity; the session report
(the backtest report files) is written at the end. The clock is the market's: it moves to each
candle's close time, exactly as in a backtest, so the replay and the live feed behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from backtesting.config import BacktestConfig
from backtesting.dashboard import DashboardOptions, EmbeddedDashboard
from backtesting.data import SeriesSource, merge
from backtesting.engine import BacktestEngine, BacktestResult, DeskRun, Replay, Swarm
from backtesting.outcomes import reason_rows
from backtesting.recorder import FeedEvent
from core.messages import Candle

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def sample_files(directory: Path | None = None) -> list[Path]:
    """The shipped sample candle files."""
    folder = directory or SAMPLES
    return sorted(folder.glob("*.csv"))


@dataclass(slots=True)
class ViewState:
    """What the live view shows."""

    prices: dict[str, tuple[Decimal, Decimal]]
    """symbol -> (last close, first close)."""
    candles: int
    total: int | None
    source: str


class LiveView:
    """Renders the session with rich (prices, signals, decisions, positions, equity)."""

    def __init__(self, swarm: Swarm, replay: Replay, state: ViewState) -> None:
        self.swarm = swarm
        self.replay = replay
        self.state = state

    def render(self) -> Any:
        """The current screen."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        prices = Table(title="Prices", expand=True)
        for col in ("symbol", "last", "change"):
            prices.add_column(col, justify="right" if col != "symbol" else "left")
        for symbol, (last, first) in sorted(self.state.prices.items()):
            change = (last / first - 1) * 100 if first else Decimal(0)
            style = "green" if change >= 0 else "red"
            prices.add_row(symbol, f"{last:,.2f}", f"[{style}]{change:+.2f}%[/]")
        rec = self.swarm.recorder
        positions = Table(title="Positions", expand=True)
        for col in ("symbol", "quantity", "value"):
            positions.add_column(col, justify="right" if col != "symbol" else "left")
        for symbol, qty in sorted(rec.positions.items()):
            if qty:
                last = self.state.prices.get(symbol, (Decimal(0), Decimal(0)))[0]
                positions.add_row(symbol, f"{qty:.6f}", f"{qty * last:,.2f}")
        equity = self.replay.current_equity() if self.replay.closes_now else rec.cash
        initial = self.swarm.settings.execution.initial_cash
        pnl = (equity / initial - 1) * 100
        total = f"/{self.state.total:,}" if self.state.total else ""
        head = (
            f"[bold]tradeswarm[/] paper session · {self.state.source} · candles {self.state.candles:,}{total} · "
            f"equity [bold]{equity:,.2f}[/] ({pnl:+.2f}%) · orders {len(rec.orders)} · fills {len(rec.fills)} · "
            f"fees {rec.fees:,.2f}"
        )
        counts = " · ".join(f"{k} {v}" for k, v in sorted(rec.counts.items()) if k != "portfolio_snapshot")
        limited = " · ".join(f"{stage} {reason} {n}" for stage, reason, n in reason_rows(rec.outcomes.as_dict()))
        signals = [e for e in rec.events if e.kind == "consensus_decision"][-6:]
        decisions = [e for e in rec.events if e.kind != "consensus_decision"][-10:]
        sig = Table(title="Signals (consensus)", expand=True, show_header=False)
        sig.add_column("time", style="dim", no_wrap=True)
        sig.add_column("signal")
        for e in signals:
            sig.add_row(e.ts, e.text)
        dec = Table(title="Decisions, orders and fills", expand=True, show_header=False)
        dec.add_column("time", style="dim", no_wrap=True)
        dec.add_column("kind", style="cyan", no_wrap=True)
        dec.add_column("event")
        for e in decisions:
            dec.add_row(e.ts, e.kind, e.text)
        desk = self.swarm.desk
        desk_part: list[Any] = []
        if desk is not None:
            from backtesting.desk_cards import desk_panel

            desk_part = [desk_panel(desk.last, desk.decisions, advisory=not desk.desk_settings.trade)]
        return Group(
            Panel(head),
            prices,
            positions,
            sig,
            *desk_part,
            dec,
            Panel(counts or "no decisions yet", title="Messages"),
            Panel(limited or "none yet", title="Rejections, adjustments and alerts"),
        )


@dataclass(slots=True)
class SessionOptions:
    """How the session runs."""

    speed: float = 400.0
    """Candles per second of the accelerated replay (0 = as fast as possible)."""
    max_candles: int | None = None
    view: bool = True
    refresh_per_second: float = 8.0
    ui: DashboardOptions | None = None
    """Serve the web dashboard (``--ui``); the session then runs until Ctrl-C, after the replay too."""


async def _paced(candles: Iterator[Candle], speed: float) -> AsyncIterator[Candle]:
    interval = 1.0 / speed if speed > 0 else 0.0
    started = time.perf_counter()
    for n, candle in enumerate(candles):
        if interval:
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        elif n % 500 == 0:
            await asyncio.sleep(0)
        yield candle


async def run_session(
    config: BacktestConfig,
    sources: Sequence[SeriesSource],
    options: SessionOptions,
    *,
    live_feed: AsyncIterator[Candle] | None = None,
    console: Any = None,
    desk: DeskRun | None = None,
) -> BacktestResult:
    """Run the swarm over ``sources`` (or ``live_feed``) with the live view; returns the result."""
    engine = BacktestEngine(config, sources, use_env=True, desk=desk)
    events: list[FeedEvent] = []
    swarm = engine.swarm(observe_flow=True, on_event=events.append)
    await swarm.start()
    dashboard: EmbeddedDashboard | None = None
    if options.ui is not None:
        dashboard = EmbeddedDashboard(swarm, options.ui, options.ui.data_dir or SAMPLES)
        await dashboard.start()
        _say(console, f"dashboard: {dashboard.url}  (API token: {dashboard.token})")
    replay = Replay(swarm, engine.symbols)
    total: int | None = None
    label = "live data" if live_feed is not None else "sample replay"
    state = ViewState(prices={}, candles=0, total=total, source=label)
    view = LiveView(swarm, replay, state)
    feed: AsyncIterator[Candle] = live_feed if live_feed is not None else _paced(merge(engine.sources), options.speed)
    started = time.perf_counter()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def candles() -> AsyncIterator[Candle]:
        """The feed until it ends or Ctrl-C / SIGTERM asks to stop (the report is still written)."""
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                nxt = asyncio.ensure_future(anext(feed))
                await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    nxt.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await nxt
                    return
                try:
                    candle = nxt.result()
                except StopAsyncIteration:
                    return
                yield candle
        finally:
            stopper.cancel()

    async def consume() -> None:
        async for candle in candles():
            await replay.feed(candle)
            first = state.prices.get(candle.symbol, (candle.close, candle.close))[1]
            state.prices[candle.symbol] = (candle.close, first)
            state.candles = replay.count
            if options.max_candles is not None and replay.count >= options.max_candles:
                break

    if options.view:
        from rich.live import Live

        with Live(console=console, refresh_per_second=options.refresh_per_second, get_renderable=view.render):
            await consume()
    else:
        await consume()
    if dashboard is not None:
        if not stop.is_set():
            _say(console, f"replay finished; the dashboard stays at {dashboard.url} until Ctrl-C")
            await stop.wait()
        await dashboard.stop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    replay.finish()
    elapsed = time.perf_counter() - started
    dead = await swarm.dead_letter_count()
    await swarm.stop()
    return replay.result(config, engine.series, elapsed, dead)


def _say(console: Any, text: str) -> None:
    """One line to the session's console (or stdout), flushed: scripts and tests read the address."""
    if console is not None:
        console.print(text, soft_wrap=True, highlight=False)
    else:
        print(text, flush=True)


async def gateway_feed(gateway: Any, symbols: Sequence[str], timeframe: str) -> AsyncIterator[Candle]:
    """Closed candles of every symbol from the exchange gateway, merged as they arrive."""
    queue: asyncio.Queue[Candle | Exception] = asyncio.Queue()

    async def pump(symbol: str) -> None:
        try:
            async for candle in gateway.stream_candles(symbol, timeframe):
                await queue.put(candle)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the stream is reported to the consumer
            await queue.put(exc)

    tasks = [asyncio.create_task(pump(s), name=f"stream-{s}") for s in symbols]
    try:
        while True:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
