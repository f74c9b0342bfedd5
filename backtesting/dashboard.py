"""The web dashboard of the embedded session (``tradeswarm run --ui``).

The same API and dashboard the orchestrator serves in the stack, over the in-memory swarm: the
orchestrator agent joins the swarm's bus (its own wall clock, memory intent store), every trading
agent sends heartbeats, a :class:`MemoryReadModel` keeps what the order path would have stored in
PostgreSQL (fills, orders, positions, portfolio snapshots, intents, decisions), and backtest jobs
run on the sample files. Controls (HALT, PAUSE...) travel on the bus to the very agents that trade.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar

import structlog
from pydantic import SecretStr

from agents.base import Agent, AgentContext, Subscription
from agents.orchestrator.agent import OrchestratorAgent
from agents.orchestrator.settings import OrchestratorSettings
from backtesting.engine import Swarm, _QuietLogger
from core import routing
from core.clock import WallClock
from core.desk.store import InMemoryDeskStore
from core.errors import ConfigurationError, UnroutableMessage
from core.messages import (
    Candle,
    ComplianceDecision,
    Envelope,
    Fill,
    Heartbeat,
    OrderUpdate,
    Payload,
    PortfolioSnapshot,
    RiskDecision,
    TradeIntent,
)
from infrastructure.api.app import create_app
from infrastructure.api.backtests import engine_runner
from infrastructure.api.desk import DeskApi
from infrastructure.api.jobs import BacktestJobs
from infrastructure.api.queues import memory_queue_depths
from infrastructure.api.schemas import (
    DecisionView,
    EquityPoint,
    OrderView,
    Page,
    PortfolioView,
    PositionView,
    SignalView,
    SnapshotView,
    TradeView,
)
from infrastructure.api.server import ApiServer
from infrastructure.messaging.memory import InMemoryBus

T = TypeVar("T")
KEEP = 20_000
"""Rows of each kind the read model keeps (oldest dropped)."""


def _page(rows: list[T], limit: int, offset: int) -> Page[T]:
    newest_first = rows[::-1]
    return Page[T](items=newest_first[offset : offset + limit], total=len(rows), limit=limit, offset=offset)


@dataclass(slots=True)
class _Position:
    """A position kept from fills: quantity, average entry (average cost), realised PnL, fees."""

    venue: str
    quantity: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    updated_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def apply(self, fill: Fill) -> None:
        """Add a fill: an increase moves the average entry, a reduction realises PnL."""
        signed = fill.quantity if fill.side.value == "buy" else -fill.quantity
        qty = self.quantity
        if qty == 0 or (qty > 0) == (signed > 0):
            total = qty + signed
            self.average_price = (self.average_price * abs(qty) + fill.price * abs(signed)) / abs(total)
            self.quantity = total
        else:
            closed = min(abs(signed), abs(qty))
            direction = Decimal(1) if qty > 0 else Decimal(-1)
            self.realized_pnl += (fill.price - self.average_price) * closed * direction
            self.quantity = qty + signed
            if self.quantity == 0:
                self.average_price = Decimal(0)
            elif (self.quantity > 0) != (qty > 0):  # flipped: the rest opens at this price
                self.average_price = fill.price
        self.fees += fill.fee
        self.updated_at = fill.ts


class MemoryReadModel(Agent):
    """:class:`~infrastructure.api.ports.TradingReadModel` kept in memory from the bus."""

    kind = "read_model"

    def __init__(self, ctx: AgentContext) -> None:
        super().__init__(ctx)
        self.fills: deque[TradeView] = deque(maxlen=KEEP)
        self.order_book: OrderedDict[str, OrderView] = OrderedDict()
        self.snapshot: PortfolioSnapshot | None = None
        self.book: dict[str, _Position] = {}
        """symbol -> its position from the fills (the snapshots come once a day in a replay)."""
        self.marks: dict[str, Decimal] = {}
        self.marked_at: datetime | None = None
        self.equity: deque[EquityPoint] = deque(maxlen=KEEP)
        self.intents: deque[SignalView] = deque(maxlen=KEEP)
        self.decided: deque[DecisionView] = deque(maxlen=KEEP)

    def subscriptions(self) -> list[Subscription]:
        """Fills, orders, portfolio snapshots, intents and the risk and compliance decisions."""
        return [
            Subscription(
                "store",
                (
                    routing.FILLS.all(),
                    routing.ORDER_UPDATES.all(),
                    routing.PORTFOLIO.all(),
                    routing.INTENTS.all(),
                    routing.RISK_APPROVED.all(),
                    routing.RISK_REJECTED.all(),
                    routing.COMPLIANCE_DECISIONS.all(),
                    routing.CANDLES.all(),
                ),
                {
                    Fill: self.on_fill,
                    OrderUpdate: self.on_order,
                    PortfolioSnapshot: self.on_snapshot,
                    Candle: self.on_candle,
                    TradeIntent: self.on_intent,
                    RiskDecision: self.on_decision,
                    ComplianceDecision: self.on_decision,
                },
            )
        ]

    async def on_fill(self, fill: Fill, envelope: Envelope) -> None:
        """Keep a fill; update its symbol's position."""
        self.book.setdefault(fill.symbol, _Position(fill.venue)).apply(fill)
        self.fills.append(
            TradeView(
                fill_id=fill.fill_id, ts=fill.ts, account=self._account(), venue=fill.venue, symbol=fill.symbol,
                side=fill.side.value, price=fill.price, quantity=fill.quantity, fee=fill.fee,
                fee_currency=fill.fee_currency, liquidity=fill.liquidity, client_order_id=fill.client_order_id,
                venue_order_id=fill.venue_order_id, intent_id=fill.intent_id,
            )
        )  # fmt: skip

    async def on_order(self, update: OrderUpdate, envelope: Envelope) -> None:
        """Keep an order's latest state."""
        previous = self.order_book.pop(update.client_order_id, None)
        self.order_book[update.client_order_id] = OrderView(
            client_order_id=update.client_order_id, intent_id=update.intent_id, account=self._account(),
            venue=update.venue, symbol=update.symbol, side=update.side.value, order_type=update.order_type.value,
            quantity=update.quantity, limit_price=None, status=update.status.value,
            filled_quantity=update.filled_quantity, average_price=update.average_price,
            venue_order_id=update.venue_order_id, reason=update.reason,
            created_at=previous.created_at if previous is not None else envelope.ts_event,
            updated_at=envelope.ts_event,
        )  # fmt: skip
        while len(self.order_book) > KEEP:
            self.order_book.popitem(last=False)

    async def on_snapshot(self, snapshot: PortfolioSnapshot, envelope: Envelope) -> None:
        """Keep the latest snapshot and the equity curve."""
        self.snapshot = snapshot
        if self.equity and self.equity[-1].ts == snapshot.ts:
            self.equity.pop()
        self.equity.append(EquityPoint(ts=snapshot.ts, equity=snapshot.equity))

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        """The last close marks the positions."""
        self.marks[candle.symbol] = candle.close
        self.marked_at = candle.close_time

    async def on_intent(self, intent: TradeIntent, envelope: Envelope) -> None:
        """Keep a trade intent."""
        self.intents.append(
            SignalView(intent_id=intent.intent_id, ts=intent.decided_at, venue=intent.venue, symbol=intent.symbol,
                       payload=intent.model_dump(mode="json"))
        )  # fmt: skip

    async def on_decision(self, decision: RiskDecision | ComplianceDecision, envelope: Envelope) -> None:
        """Keep a risk or compliance decision with its rationale."""
        stage: Literal["risk", "compliance"] = "risk" if isinstance(decision, RiskDecision) else "compliance"
        rationale = decision.reason + (f": {decision.detail}" if decision.detail else "")
        self.decided.append(
            DecisionView(intent_id=decision.intent_id, stage=stage, ts=envelope.ts_event,
                         verdict=decision.verdict.value, rationale=rationale, payload=decision.model_dump(mode="json"))
        )  # fmt: skip

    def _account(self) -> str:
        return self.snapshot.account if self.snapshot is not None else "paper"

    # -- TradingReadModel ---------------------------------------------------------------------

    async def portfolio(self, account: str | None) -> PortfolioView | None:
        """The latest snapshot brought up to date: the fills since it move the cash, the last closes
        mark the positions (a replay publishes one snapshot a day)."""
        s = self.snapshot
        if s is None or account not in (None, s.account):
            return None
        cash = s.cash
        for fill in reversed(self.fills):
            if fill.ts <= s.ts:
                break
            notional = fill.price * fill.quantity
            cash += (-notional if fill.side == "buy" else notional) - fill.fee
        held = [(symbol, p) for symbol, p in self.book.items() if p.quantity != 0]
        marks = {symbol: self.marks.get(symbol, p.average_price) for symbol, p in held}
        exposure = [p.quantity * marks[symbol] for symbol, p in held]
        equity = cash + sum(exposure, Decimal(0))
        peak = max(s.peak_equity, equity)
        return PortfolioView(
            account=s.account, ts=max(s.ts, self.marked_at or s.ts), cash=cash, equity=equity, peak_equity=peak,
            gross_exposure=sum((abs(e) for e in exposure), Decimal(0)), net_exposure=sum(exposure, Decimal(0)),
            realized_pnl=sum((p.realized_pnl for p in self.book.values()), Decimal(0)),
            unrealized_pnl=sum(((marks[symbol] - p.average_price) * p.quantity for symbol, p in held), Decimal(0)),
            fees=sum((p.fees for p in self.book.values()), Decimal(0)),
            drawdown=float(1 - equity / peak) if peak > 0 else 0.0, open_positions=len(held),
            trading_state=s.trading_state.value,
        )  # fmt: skip

    async def positions(self, account: str | None, include_flat: bool) -> list[PositionView]:
        """Every symbol's position from the fills, marked at its last close."""
        if account not in (None, self._account()):
            return []
        return [
            PositionView(account=self._account(), venue=p.venue, symbol=symbol, quantity=p.quantity,
                         average_price=p.average_price, realized_pnl=p.realized_pnl, fees=p.fees,
                         mark_price=self.marks.get(symbol), updated_at=p.updated_at)
            for symbol, p in sorted(self.book.items())
            if include_flat or p.quantity != 0
        ]  # fmt: skip

    async def equity_curve(self, account: str | None, limit: int) -> list[EquityPoint]:
        """The equity of the latest ``limit`` snapshots (sampled evenly when there are more)."""
        points = list(self.equity)
        if len(points) <= limit:
            return points
        step = len(points) / limit
        return [points[int(i * step)] for i in range(limit - 1)] + [points[-1]]

    async def orders(self, *, status: str | None, symbol: str | None, limit: int, offset: int) -> Page[OrderView]:
        """Orders, newest first."""
        rows = [o for o in self.order_book.values() if status in (None, o.status) and symbol in (None, o.symbol)]
        return _page(rows, limit, offset)

    async def trades(self, *, symbol: str | None, limit: int, offset: int) -> Page[TradeView]:
        """Fills, newest first."""
        return _page([f for f in self.fills if symbol in (None, f.symbol)], limit, offset)

    async def signals(self, *, symbol: str | None, limit: int, offset: int) -> Page[SignalView]:
        """Trade intents, newest first."""
        return _page([i for i in self.intents if symbol in (None, i.symbol)], limit, offset)

    async def decisions(self, *, stage: str | None, limit: int, offset: int) -> Page[DecisionView]:
        """Risk and compliance decisions, newest first."""
        return _page([d for d in self.decided if stage in (None, d.stage)], limit, offset)


class Heartbeats:
    """Sends a heartbeat for every agent of the swarm, as the process host does in the stack."""

    def __init__(self, agents: list[Agent], interval_s: float) -> None:
        self.agents = agents
        self.interval_s = interval_s
        self.started_at = datetime.now(UTC)
        self.host = socket.gethostname()[:255]
        self._task: asyncio.Task[None] | None = None

    def heartbeat(self, agent: Agent) -> Heartbeat:
        """The heartbeat of one agent now."""
        return Heartbeat(
            agent_id=agent.ctx.agent_id, agent_kind=agent.kind, version=Agent.version, host=self.host,
            pid=os.getpid(), started_at=self.started_at, processed=agent.counters.processed,
            failed=agent.counters.failed, dead_lettered=agent.counters.rejected, ready=agent.started,
            paused=agent.paused, halted=agent.halted,
        )  # fmt: skip

    async def beat(self) -> None:
        """One heartbeat from each agent."""
        for agent in self.agents:
            with contextlib.suppress(UnroutableMessage):
                await agent.publish(self.heartbeat(agent))

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        """Start beating."""
        self._task = asyncio.create_task(self._run(), name="heartbeats")

    async def stop(self) -> None:
        """Stop beating."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@dataclass(slots=True)
class DashboardOptions:
    """Where the embedded dashboard listens."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path | None = None
    """Candle files for the dashboard's backtests (default: the shipped samples)."""


class EmbeddedDashboard:
    """The orchestrator, the read model, heartbeats, backtest jobs and the API over a running swarm."""

    def __init__(self, swarm: Swarm, options: DashboardOptions, data_dir: Path) -> None:
        self.swarm = swarm
        self.options = options
        settings = swarm.strategy.ctx.settings
        token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
        self.token = token or secrets.token_urlsafe(18)
        """The API token (TRADESWARM_API_TOKEN, or a random one printed at start)."""
        log = _QuietLogger(structlog.get_logger("tradeswarm.dashboard"))  # warnings and errors: the view stays clean

        def ctx(kind: str, clock: object) -> AgentContext:
            return AgentContext(bus=swarm.bus, clock=clock, settings=settings,  # type: ignore[arg-type]
                                agent_id=f"run-{kind.replace('_', '-')}", log=log, instrument=False)  # fmt: skip

        wall = WallClock()
        self.orchestrator = OrchestratorAgent(
            ctx("orchestrator", wall),
            OrchestratorSettings(api_enabled=True, state_store="memory", backtest_data_dir=data_dir),
        )
        self.read_model = MemoryReadModel(ctx("read_model", swarm.clock))
        trading = [swarm.execution, swarm.compliance, swarm.risk, swarm.strategy, swarm.ta]
        self.heartbeats = Heartbeats(trading, settings.heartbeat_interval_s)
        self.jobs = BacktestJobs(engine_runner(data_dir), now=wall.now)
        bus = swarm.bus
        assert isinstance(bus, InMemoryBus)
        # the AI desk on demand (POST /analyze) over the orchestrator's latest candles, with the swarm's
        # own desk decisions (advise or trade mode) in the same store
        from backtesting.desk_api import DeskAnalyzerService

        store = swarm.desk.store if swarm.desk is not None else InMemoryDeskStore()
        orchestrator = self.orchestrator

        async def publish(payload: Payload) -> None:
            with contextlib.suppress(UnroutableMessage):
                await orchestrator.publish(payload)

        def latest(symbol: str, limit: int) -> list[SnapshotView]:
            return orchestrator.market_latest(symbol, None, None, limit)

        self.analyzer = DeskAnalyzerService(data_dir, store, publish, latest)
        app = create_app(
            self.orchestrator, self.read_model, self.jobs, api_token=SecretStr(self.token),
            events=self.orchestrator.events, queues=memory_queue_depths(bus),
            links={"rabbitmq": "", "grafana": ""}, desk=DeskApi(store, self.analyzer),
        )  # fmt: skip
        self.server = ApiServer(app, options.host, options.port)
        self.port = options.port

    @property
    def url(self) -> str:
        """Where the dashboard is served."""
        host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Join the swarm's bus, start heartbeats and the API server."""
        await self.orchestrator.start()
        await self.read_model.start()
        await self.heartbeats.start()
        try:
            self.port = await self.server.start()
        except OSError as exc:
            await self.stop()
            raise ConfigurationError(
                f"cannot serve the dashboard on {self.options.host}:{self.options.port} ({exc.strerror or exc}): "
                "choose another --port"
            ) from None

    async def stop(self) -> None:
        """Close the event streams, stop the server, the jobs, heartbeats and the orchestrator."""
        self.orchestrator.events.close()
        await self.server.stop()
        await self.jobs.close()
        await self.analyzer.close()
        await self.heartbeats.stop()
        await self.read_model.stop()
        await self.orchestrator.stop()
