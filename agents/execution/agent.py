"""The execution agent: the only agent that places orders.

Queues: ``execution.orders`` (approved ``OrderRequest`` s) and ``execution.market`` (candles and
top of book: the paper venue fills on them; marks for the positions). Before consuming anything,
:meth:`on_start` rebuilds the portfolio from the stored fills and reconciles every open order with
the venue. Publishes order updates, fills, position updates and periodic portfolio snapshots.
HALT (kill switch) refuses new orders, cancels open ones and suspends the venue's protective exits
until RESUME (which re-arms the exits of positions still open). The kill switch is stored with the
orders and restored by :meth:`on_start` before anything is consumed, so it survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.base import Agent, AgentContext, CommandFailed, Subscription
from agents.execution.engine import CrashHook, ExecutionEngine, no_crash
from agents.execution.settings import ExecutionSettings
from core.clock import Clock
from core.columns import EPOCH, CandleColumn, Column
from core.domain import CommandKind, Mode, Severity
from core.errors import ConfigurationError, UnroutableMessage
from core.messages import (
    BookTop,
    Candle,
    Command,
    Envelope,
    Fill,
    OrderRequest,
    Payload,
    PositionsSettled,
    RiskAlert,
)
from core.routing import BOOK, CANDLES, ORDERS_APPROVED
from core.trading.fillmodel import FillModel
from core.trading.market_rules import MarketRules
from core.trading.retention import grace_of
from core.trading.stores import ExecutionStore, InMemoryExecutionStore
from core.trading.venue import VenuePort
from core.wake import WakeOn
from infrastructure.messaging.sender import require_sender, trusted_order_senders

if TYPE_CHECKING:
    from infrastructure.venues.paper import PaperVenue
    from infrastructure.venues.paper_book import PaperBook


def crash_hook(points: Sequence[str], state: Path | None = None) -> CrashHook:
    """A hook that SIGKILLs this process at any of ``points`` (crash-safety tests only).

    With a ``state`` file each point kills one process only: the point is appended to the file
    (synced) before the kill, and points already listed there are passed, so a supervised agent goes
    through every point once, one restart each.
    """
    wanted = frozenset(points)

    def hook(point: str) -> None:
        if point not in wanted:
            return
        if state is not None:
            done = set(state.read_text().split()) if state.exists() else set()
            if point in done:
                return
            with state.open("a") as fh:
                fh.write(point + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    return hook


class ExecutionAgent(Agent):
    """See the module docstring."""

    kind = "execution"

    def __init__(
        self,
        ctx: AgentContext,
        venue: VenuePort,
        store: ExecutionStore | None = None,
        settings: ExecutionSettings | None = None,
    ) -> None:
        super().__init__(ctx)
        self.exec_settings = settings or ExecutionSettings()
        s = self.exec_settings
        self.engine = ExecutionEngine(
            venue,
            store or InMemoryExecutionStore(),
            ctx.clock,
            account=s.account,
            initial_cash=s.initial_cash,
            crash_hook=crash_hook(s.crash_at, s.crash_state) if s.crash_at else no_crash,
            retention=grace_of(s.retention_grace_s),
            instrument=ctx.instrument,
            traded=(ctx.settings.exchange, frozenset(ctx.settings.symbols)),
        )
        self._last_snapshot: datetime | None = None
        self.trusted_senders = trusted_order_senders(ctx.settings.rabbitmq_url.get_secret_value())
        """Broker users whose approved orders are executed (the broker-verified AMQP user_id)."""
        self._lock = asyncio.Lock()
        self._snapshot_every = timedelta(seconds=s.snapshot_interval_s)
        """Each queue has its own consumer task: engine calls are serialised so that a fill computed
        from the in-memory position is stored before the next one is computed."""
        self._unrouted_types: set[str] = set()
        """Message types already reported as having no consumer (reported once each)."""
        self._poller: asyncio.Task[None] | None = None
        self._expirer: asyncio.Task[None] | None = None
        """Live venue: cancels an order the moment its intent expires, not at the next candle."""
        self.intended_mode: Callable[[], Awaitable[str | None]] | None = None
        """Reads the orchestrator's saved trading intent (``active``/``paused``/``halted``), if any."""
        self.resources: list[Any] = []
        """Things with an async ``close()`` (the database pool), closed in :meth:`on_stop`."""

    def subscriptions(self) -> Sequence[Subscription]:
        """Approved orders and market data."""
        return [
            Subscription("orders", (ORDERS_APPROVED.all(),), {OrderRequest: self.on_order}),
            Subscription(
                "market",
                (CANDLES.all(), BOOK.all()),
                {Candle: self.on_candle, BookTop: self.on_book},
                wake=WakeOn(self._next_candle, self._skip_candles),
            ),
        ]

    def _next_candle(self, column: Column, sids: Sequence[int], start: int, stop: int) -> int:
        """The first candle in ``[start, stop)`` of a column :meth:`on_candle` must see: an open order,
        a candle the venue could fill or fire on, or a portfolio snapshot due (:mod:`core.wake`)."""
        if self.ctx.instrument or not isinstance(column, CandleColumn):
            return column.first_row(sids, start, stop)
        last = self._last_snapshot
        if last is None:
            return column.first_row(sids, start, stop)
        every_us = _micros(self._snapshot_every)
        due_ms = -(-(_micros(last - EPOCH) + every_us) // 1000)  # close_ms * 1000 - last >= every
        i = int(column.close_ms.searchsorted(due_ms, side="left"))
        if i < stop:
            stop = column.first_row(sids, max(i, start), stop)
        return self.engine.quiet_until(column, sids, start, stop)

    def _skip_candles(self, column: Column, sids: Sequence[int], start: int, stop: int) -> None:
        """Apply quiet candles: marks, the venue's last closes, protections (see :meth:`_next_candle`)."""
        self.engine.skip_quiet(column, sids, start, stop)

    async def on_start(self) -> None:
        """Rebuild and reconcile before consuming; start polling a live venue."""
        events = await self.engine.start()
        self.halted = self.engine.halted
        await self._publish_all(events, None)
        self.log.info(
            "reconciled with the venue", open_orders=len(self.engine.open), events=len(events), halted=self.halted
        )
        if self.exec_settings.venue == "live":
            self._poller = asyncio.create_task(self._poll_loop(), name="venue-poll")
            self._expirer = asyncio.create_task(self._expiry_loop(), name="order-expiry")

    async def on_stop(self) -> None:
        """Stop polling and close the venue."""
        for task in (self._poller, self._expirer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.engine.venue.close()
        for resource in self.resources:
            await resource.close()

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                if self.engine.open:
                    async with self._lock:
                        events = await self.engine.expire()
                    await self._publish_all(events, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("order expiry failed")

    async def _poll_loop(self) -> None:
        while True:
            try:
                changes = await self.engine.venue.poll()
                async with self._lock:
                    events = await self.engine.apply_changes(changes)
                await self._publish_all(events, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("venue poll failed")
                await asyncio.sleep(1.0)

    async def _publish_all(self, events: Sequence[Payload], cause: Envelope | None) -> None:
        """Publish state changes; they are already persisted, so one nobody listens to is logged, not raised.
        Published fills are then marked so in the store's outbox (a restart publishes the others again)."""
        fills: list[Fill] = []
        try:
            for payload in events:
                await self._publish_one(payload, cause)
                if type(payload) is Fill:
                    fills.append(payload)
        finally:
            if fills:
                await self.engine.published(fills)

    async def _publish_one(self, payload: Payload, cause: Envelope | None) -> None:
        try:
            await self.publish(payload, cause=cause)
        except UnroutableMessage:
            if payload.TYPE in self._unrouted_types:
                self.log.debug("no consumer bound for an execution event", message_type=payload.TYPE)
            else:  # once per type: a stack without a portfolio consumer would log every snapshot
                self._unrouted_types.add(payload.TYPE)
                self.log.warning(
                    "no consumer bound for an execution event (further ones of this type at debug level)",
                    message_type=payload.TYPE,
                )

    async def on_order(self, order: OrderRequest, envelope: Envelope) -> None:
        """Place an approved order (idempotent by client order id).

        Only an order the broker verified as sent by compliance is executed: any other sender
        (whatever the envelope's ``source`` claims) is dead-lettered with the reason.
        """
        require_sender(self.trusted_senders, "approved order")
        async with self._lock:
            events = await self.engine.handle_order(order)
        await self._publish_all(events, envelope)

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        """Let the venue fill on this candle; publish what changed, then (``settle_marks``) the mark
        that this candle is settled (:class:`PositionsSettled`: the strategy's barrier), and a
        snapshot when one is due."""
        async with self._lock:
            events = await self.engine.on_candle(candle)
        if events:  # most candles change nothing
            await self._publish_all(events, envelope)
        if self.exec_settings.settle_marks:
            settled = PositionsSettled(venue=candle.venue, symbol=candle.symbol, as_of=candle.close_time)
            await self._publish_one(settled, envelope)
        now = self.ctx.clock.now()
        due = self._last_snapshot is None or now - self._last_snapshot >= self._snapshot_every
        if due:
            self._last_snapshot = now
            async with self._lock:
                snapshot = await self.engine.snapshot(now)
            await self._publish_all([snapshot], envelope)

    async def on_book(self, book: BookTop, envelope: Envelope) -> None:
        """Spread for the paper venue."""
        async with self._lock:
            await self.engine.on_book(book)

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        """HALT: persist the kill switch, refuse new orders, cancel open ones and suspend the venue's
        protective exits — acknowledged only once all of that is done; RESUME: accept again and
        re-arm the protective exits of positions still open."""
        if command.kind is CommandKind.HALT:
            async with self._lock:
                self.halted = True
                events = await self.engine.halt(command.command_id, command.reason or "halt")
            await self._publish_all(events, envelope)
            return "halted: open orders and protective exits cancelled at the venue, new orders refused"
        if command.kind is CommandKind.RESUME:
            await self._require_swarm_resumed(command)
            async with self._lock:
                events = await self.engine.resume(command.command_id, command.reason or "resume")
                self.halted = False
            await self._publish_all(events, envelope)
            return "resumed: protective exits of open positions re-armed"
        return None

    async def _require_swarm_resumed(self, command: Command) -> None:
        """Refuse a RESUME while the orchestrator's saved intent (``trading_intent``) says HALTED.

        The orchestrator saves the intent before it publishes a swarm-wide RESUME, so a legitimate one
        always finds it ACTIVE; a RESUME that contradicts it (sent to execution alone behind the
        orchestrator's back, or an old one replayed) would re-arm the venue's protective exits until the
        orchestrator halts execution again: it is refused (acknowledged ``ok=False``) with a critical
        alert. Without a saved intent (no PostgreSQL, a fresh database) nothing is checked."""
        if self.intended_mode is None:
            return
        mode = await self.intended_mode()
        if mode != "halted":
            return
        reason = (
            f"RESUME {command.command_id} refused: the swarm's intended trading state is halted "
            "(resume the swarm through the orchestrator)"
        )
        alert = RiskAlert(severity=Severity.CRITICAL, code="resume_refused", message=reason)
        with contextlib.suppress(UnroutableMessage):
            await self.publish(alert)
        raise CommandFailed(reason)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def paper_venue(
    settings: ExecutionSettings, clock: Clock, book: PaperBook | None = None, id_prefix: str = "P"
) -> PaperVenue:
    """The paper venue configured by ``settings`` (its book in ``book`` or the journal file, if any)."""
    from infrastructure.venues.paper import PaperVenue

    model = FillModel(
        maker_fee_bps=settings.maker_fee_bps,
        taker_fee_bps=settings.taker_fee_bps,
        slippage_bps=settings.slippage_bps,
        spread_bps=settings.spread_bps,
        participation=settings.participation,
    )
    return PaperVenue(
        clock,
        model,
        name=settings.paper_venue_name,
        latency=timedelta(milliseconds=settings.latency_ms),
        journal_path=settings.paper_journal if book is None else None,
        retention=settings.paper_retention(),
        cash=settings.initial_cash,
        credit=settings.paper_credit,
        book=book,
        id_prefix=id_prefix,
        rules=MarketRules(
            amount_step=settings.paper_amount_step,
            price_step=settings.paper_price_step,
            min_quantity=settings.paper_min_quantity,
            min_notional=settings.paper_min_notional,
        ),
        intrabar=settings.intrabar,
    )


async def build(ctx: AgentContext) -> Agent:
    """The execution agent from the environment: paper venue (default) or the live gateway."""
    settings = ExecutionSettings()
    venue: VenuePort
    if settings.venue == "live":
        if ctx.settings.mode is not Mode.LIVE:
            raise ConfigurationError(
                "TRADESWARM_EXECUTION_VENUE=live needs TRADESWARM_MODE=live (with keys and confirmation)"
            )
        from infrastructure.venues.live import live_venue

        venue = await live_venue(
            ctx.settings,
            submit_timeout_s=settings.submit_timeout_s,
            allow_unverified_key_permissions=settings.allow_unverified_key_permissions,
        )
    store: ExecutionStore
    resources: list[Any] = []
    db: Any = None
    if settings.store == "postgres" or (settings.venue == "paper" and settings.resolved_paper_state() == "postgres"):
        from infrastructure.database.timescale import Database, apply_migrations

        db = Database(ctx.settings.postgres_dsn.get_secret_value())
        await db.connect()
        await apply_migrations(db)
        resources.append(db)
    if settings.store == "postgres":
        from infrastructure.database.timescale import PostgresExecutionStore

        store = PostgresExecutionStore(db, settings.account)
    else:
        store = InMemoryExecutionStore()
    if settings.venue == "paper":
        venue = await _persistent_paper_venue(settings, ctx.clock, db)
    agent = ExecutionAgent(ctx, venue, store, settings)
    agent.resources.extend(resources)
    if db is not None:
        from infrastructure.database.timescale.control_store import PostgresIntentStore

        intents = PostgresIntentStore(db)

        async def intended_mode() -> str | None:
            row = await intents.load()
            return None if row is None else str(row["mode"])

        agent.intended_mode = intended_mode
    return agent


async def _persistent_paper_venue(settings: ExecutionSettings, clock: Clock, db: Any) -> PaperVenue:
    """The paper venue of an agent process, its book restored (see ``ExecutionSettings.paper_state``).

    A venue whose book is new gets a random id prefix: its venue order ids and fill ids cannot repeat
    those of an earlier venue whose book was lost (memory) or reset."""
    book: PaperBook | None = None
    where = settings.resolved_paper_state()
    if where == "postgres":
        from infrastructure.database.timescale.paper_book import PostgresPaperBook

        book = PostgresPaperBook(db, settings.paper_venue_name)
    elif where == "file":
        from infrastructure.venues.paper_book import JsonPaperBook

        if settings.paper_journal is None:
            raise ConfigurationError("TRADESWARM_EXECUTION_PAPER_STATE=file needs TRADESWARM_EXECUTION_PAPER_JOURNAL")
        book = JsonPaperBook(settings.paper_journal)
    venue = paper_venue(settings, clock, book, id_prefix=f"P{secrets.token_hex(3)}-")
    await venue.restore()
    return venue
