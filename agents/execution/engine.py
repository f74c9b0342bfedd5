"""The execution engine: outbox, venue calls, reconciliation, fills, positions. No bus code.

Every method returns the payloads the agent must publish, in order. Invariants:

* an order row (``PENDING_NEW``) is persisted before the venue sees the order (outbox);
* an order found ``PENDING_NEW`` again (redelivery, restart) is looked up at the venue by client
  order id before anything is sent; an order in any later state is never sent again;
* a submission that times out is looked up; it is re-sent only after the venue says it has no
  such order (and the venue refuses duplicate client order ids anyway);
* a fill is stored together with the position it produces in one transaction and applied to the
  in-memory portfolio only afterwards; fills are keyed by ``(venue, fill id)``, so a fill reported
  twice is stored and counted once, and the portfolio always equals the sum of stored fills;
* the kill switch is persisted (:class:`TradingControl`) before it acts and restored by
  :meth:`ExecutionEngine.start` before anything else, so a restarted engine is halted again before
  it sees an order; while halted every order is refused and the venue holds nothing that can trade
  (:meth:`VenuePort.halt`: open orders cancelled, protective exits suspended);
* with a store that is a :class:`FillOutbox` (PostgreSQL), a fill is marked published once the bus
  confirmed it; :meth:`ExecutionEngine.start` publishes again the fills a dead process stored but did
  not publish, so every fill reaches the bus;
* an order the venue does not know (it lost it) is reported with a critical alert, and ends
  ``canceled`` (reason ``unknown_at_venue``) when it is cancelled or expires: nothing is left open
  for ever;
* an order for a venue or symbol the stack does not trade is rejected (``symbol_not_traded``);
* a venue that bounds its own book (:class:`PrunableVenue`, the paper venue's retention) prunes it
  only at the end of :meth:`ExecutionEngine.start`, after every order was reconciled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

import structlog

from core.clock import Clock
from core.columns import CandleColumn, Column
from core.domain import OrderStatus, Severity, Side
from core.errors import PermanentError, TemporaryError
from core.messages.base import Payload
from core.messages.control import RiskAlert
from core.messages.market import BookTop, Candle
from core.messages.orders import Fill, OrderRequest, OrderUpdate, PortfolioSnapshot, can_transition
from core.trading.market_rules import BELOW_MIN_NOTIONAL, BELOW_MIN_QUANTITY, conform
from core.trading.portfolio import Portfolio
from core.trading.quiet import mark_row, mark_run
from core.trading.retention import ExpiryQueue
from core.trading.stores import ExecutionStore, FillOutbox, ForgetfulExecutionStore, OrderRecord, TradingControl
from core.trading.venue import (
    DuplicateClientOrderId,
    PrunableVenue,
    VenueFill,
    VenueOrder,
    VenuePort,
    VenueTimeout,
)
from infrastructure.observability import metrics

ZERO = Decimal(0)
BELOW_MINIMUM = (BELOW_MIN_QUANTITY, BELOW_MIN_NOTIONAL)
BPS = Decimal(10_000)
CrashHook = Callable[[str], None]
UNKNOWN_AT_VENUE = "unknown_at_venue"
"""Reason and alert code of an order the venue has no record of."""


def no_crash(point: str) -> None:
    """The default crash hook: does nothing."""


class ExecutionEngine:
    """See the module docstring. Call :meth:`start` (rebuild + reconcile) before anything else."""

    def __init__(
        self,
        venue: VenuePort,
        store: ExecutionStore,
        clock: Clock,
        *,
        account: str = "paper",
        initial_cash: Decimal = Decimal(10_000),
        crash_hook: CrashHook = no_crash,
        retention: timedelta | None = None,
        instrument: bool = True,
        traded: tuple[str, frozenset[str]] | None = None,
    ) -> None:
        self.venue = venue
        self.store = store
        self.outbox: FillOutbox | None = store if isinstance(store, FillOutbox) else None
        self.traded = traded
        """(venue, symbols) the stack trades: orders for anything else are rejected (None: no check)."""
        self.clock = clock
        self.account = account
        self.portfolio = Portfolio(initial_cash, account)
        self.crash = crash_hook
        self.halted = False
        self.control: TradingControl | None = None
        """The kill switch as last stored (``None``: never halted)."""
        self.open: dict[str, OrderRecord] = {}
        self._first_fill_seen: set[str] = set()
        self._per_order: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        """Stored fills per client order id: (quantity, notional, fee) — for aggregate-only venues."""
        self._expiry: ExpiryQueue[str] | None = ExpiryQueue(retention) if retention is not None else None
        """With a retention grace: orders by intent expiry, to forget terminal ones (see :meth:`_retain`)."""
        self._fills_of: dict[str, list[tuple[str, str]]] = {}
        """With a retention grace: ``(venue, fill id)`` of each retained order's fills."""
        self._forgetful = isinstance(store, ForgetfulExecutionStore)
        """Whether the store can forget orders (a runtime Protocol check costs ~10 us: done once)."""
        self.log = structlog.get_logger("execution")
        self.instrument = instrument
        """Export the order metrics (off in backtests: no per-order work only live needs)."""
        self._metric = metrics.Handles(instrument)

    # --- start ---------------------------------------------------------------------------------
    async def start(self) -> list[Payload]:
        """Restore the kill switch, rebuild the portfolio from stored fills, reconcile every open order
        with the venue; when halted, make sure the venue holds nothing that can trade."""
        self.control = await self.store.load_control(self.account)
        self.halted = self.control is not None and self.control.halted
        if self.halted:
            self.log.warning("kill_switch_restored", command_id=str(self.control.command_id if self.control else ""))
        for fill in await self.store.fills(self.account):
            self._count(fill.client_order_id, fill.quantity, fill.price, fill.fee)
            self.portfolio.apply_fill(
                self._fill_key(fill.venue, fill.client_order_id, fill.fill_id),
                fill.venue,
                fill.symbol,
                fill.side,
                fill.quantity,
                fill.price,
                fill.fee,
            )
        events: list[Payload] = []
        if self.outbox is not None:
            events += await self._unpublished()
        for rec in await self.store.open_orders():
            self.open[rec.client_order_id] = rec
        for rec in list(self.open.values()):
            events += await self._reconcile(rec)
        events += await self._record_own_orders()
        if self.halted:
            events += await self._halt_open_orders()
        if isinstance(self.venue, PrunableVenue):
            await self.venue.prune()  # only now: every order the venue saved was reconciled first
        return events

    async def _reconcile(self, rec: OrderRecord) -> list[Payload]:
        vo = await self.venue.lookup(rec.client_order_id, rec.request.symbol)
        if vo is not None:
            return await self._sync(rec, vo)
        if rec.status is OrderStatus.PENDING_NEW:
            if self.clock.now() >= rec.request.expires_at or self.halted:
                return await self._finish(
                    rec, OrderStatus.REJECTED, "expired before it was sent" if not self.halted else "kill_switch"
                )
            return await self._send(rec)
        self.log.error("order_unknown_at_venue", client_order_id=rec.client_order_id, status=rec.status.value)
        return [self._unknown_alert(rec, "at start")]

    async def _record_own_orders(self) -> list[Payload]:
        """Store the orders the venue fired on its own (protective exits) that a previous process
        did not live to store, with their fills: killed between the venue's save and ours."""
        events: list[Payload] = []
        for vo in await self.venue.own_orders():
            if vo.client_order_id in self.open or await self.store.get_order(vo.client_order_id) is not None:
                continue
            self.log.warning("recording_venue_order_missed_by_a_crash", client_order_id=vo.client_order_id)
            events += await self._apply(vo)
        return events

    async def _unpublished(self) -> list[Payload]:
        """The fills a previous process stored but did not see confirmed on the bus, with the positions
        they changed: published again before anything is consumed (consumers dedupe by fill id)."""
        assert self.outbox is not None
        fills = list(await self.outbox.unpublished_fills(self.account))
        if not fills:
            return []
        self.log.warning("republishing_unpublished_fills", fills=len(fills))
        events: list[Payload] = list(fills)
        for venue, symbol in dict.fromkeys((f.venue, f.symbol) for f in fills):
            events.append(self.portfolio.position(venue, symbol).to_update())
        return events

    async def published(self, fills: Sequence[Fill]) -> None:
        """The bus confirmed these fills: the outbox (if any) forgets them."""
        if self.outbox is not None and fills:
            await self.outbox.mark_published(self.account, fills)

    def _unknown_alert(self, rec: OrderRecord, when: str) -> RiskAlert:
        r = rec.request
        return RiskAlert(
            severity=Severity.CRITICAL,
            code=UNKNOWN_AT_VENUE,
            message=(
                f"order {r.client_order_id} ({r.side.value} {r.quantity} {r.symbol}, {rec.status.value} here, venue id "
                f"{rec.venue_order_id}) is unknown at the venue {when}: its fills, if any, cannot be reconciled"
            )[:2000],
            venue=r.venue,
            symbol=r.symbol,
        )

    async def _gone(self, rec: OrderRecord, when: str) -> list[Payload]:
        """An open order the venue could not cancel because it has no record of it: nothing can trade,
        so it ends ``canceled`` (reason ``unknown_at_venue``), with a critical alert."""
        self.log.error("order_unknown_at_venue", client_order_id=rec.client_order_id, status=rec.status.value)
        return [self._unknown_alert(rec, when), *await self._finish(rec, OrderStatus.CANCELED, UNKNOWN_AT_VENUE)]

    # --- new orders ----------------------------------------------------------------------------
    async def handle_order(self, request: OrderRequest) -> list[Payload]:
        """An approved order: persist (outbox), then send; idempotent by client order id."""
        coid = request.client_order_id
        rec = self.open.get(coid) or await self.store.get_order(coid)
        events: list[Payload] = []
        if rec is None:
            now = self.clock.now()
            problem = self._untraded(request)
            if problem is None:
                request, problem = self._reduce_only(request)
            if problem is None:
                request, problem = await self._conform(request)
            rec = OrderRecord(request, OrderStatus.PENDING_NEW, now, now)
            if not await self.store.insert_order(rec):
                existing = await self.store.get_order(coid)
                if existing is None:
                    raise TemporaryError(f"order {coid} neither inserted nor found")
                rec = existing
            else:
                self.open[coid] = rec
                await self._retain(rec)
                events.append(self._update(rec, None))
                self.crash("after_persist")
                if self.halted:
                    return events + await self._finish(rec, OrderStatus.REJECTED, "kill_switch")
                if now >= request.expires_at:
                    return events + await self._finish(rec, OrderStatus.REJECTED, "stale_order")
                if problem is not None:
                    if request.reduce_only and problem.startswith(BELOW_MINIMUM):
                        events.append(self._exit_refused(request, problem))
                    return events + await self._finish(rec, OrderStatus.REJECTED, problem)
                return events + await self._send(rec)
        if rec.status is not OrderStatus.PENDING_NEW:
            return events  # already sent: a redelivery never creates a second order
        self.open[coid] = rec
        return events + await self._reconcile(rec)

    def _exit_refused(self, request: OrderRequest, problem: str) -> RiskAlert:
        """An exit the venue's minimums refuse leaves a position no order can close: a critical alert."""
        self.log.error("exit_refused", client_order_id=request.client_order_id, reason=problem)
        return RiskAlert(
            severity=Severity.CRITICAL,
            code="exit_refused",
            message=(
                f"exit {request.client_order_id} ({request.side.value} {request.quantity} {request.symbol}) refused: "
                f"{problem}; the rest of the position is below the venue's minimum"
            )[:2000],
            venue=request.venue,
            symbol=request.symbol,
        )

    async def _conform(self, request: OrderRequest) -> tuple[OrderRequest, str | None]:
        """The order on the venue's lot step and tick size (quantity down, prices toward safety), or
        the reason it is refused before it reaches the venue (below the minimum quantity or notional;
        :mod:`core.trading.market_rules`)."""
        try:
            rules = await self.venue.market_rules(request.symbol)
        except PermanentError as exc:
            return request, f"no_market_rules: {exc}"[:200]
        checked = conform(request, rules)
        if checked.problem is not None:
            self.log.warning(
                "order_below_venue_minimum",
                client_order_id=request.client_order_id,
                reason=checked.problem,
                detail=checked.detail,
            )
            return request, f"{checked.problem}: {checked.detail}"[:500]
        return checked.request, None

    def _untraded(self, request: OrderRequest) -> str | None:
        traded = self.traded
        if traded is None or (request.venue == traded[0] and request.symbol in traded[1]):
            return None
        self.log.warning("order_for_untraded_symbol", venue=request.venue, symbol=request.symbol)
        return "symbol_not_traded"

    def _reduce_only(self, request: OrderRequest) -> tuple[OrderRequest, str | None]:
        """Hold an exit to what execution's own position allows (execution's book is authoritative).

        Other agents learn the position from fills on another queue, so across processes an exit can
        be decided on a stale view (e.g. after a protective stop already closed the position). A
        reduce-only order never opens or flips a position here: it is rejected when nothing is left
        to reduce (after the other open reduce-only orders) and capped to what is left otherwise.
        """
        if not request.reduce_only:
            return request, None
        held = self.portfolio.position(request.venue, request.symbol).quantity
        if held == 0 or (held > 0) != (request.side is Side.SELL):
            return request, "reduce_only_nothing_to_reduce"
        reducible = abs(held) - sum(
            (
                o.request.quantity - o.filled_quantity
                for o in self.open.values()
                if o.request.reduce_only
                and o.request.venue == request.venue
                and o.request.symbol == request.symbol
                and o.request.side is request.side
                and o.status.is_open
            ),
            Decimal(0),
        )
        if reducible <= 0:
            return request, "reduce_only_nothing_to_reduce"
        if request.quantity > reducible:
            self.log.warning("reduce_only_capped", client_order_id=request.client_order_id, quantity=str(reducible))
            return request.model_copy(update={"quantity": reducible}), None
        return request, None

    async def _send(self, rec: OrderRecord) -> list[Payload]:
        request = rec.request
        found: VenueOrder | None
        started = time.perf_counter()
        try:
            found = await self.venue.submit(request)
            self.crash("after_submit")
        except VenueTimeout:
            found = await self.venue.lookup(request.client_order_id, request.symbol)
            if found is None:
                raise TemporaryError(
                    f"submission of {request.client_order_id} timed out and the venue does not know it yet"
                ) from None
            self.log.info("submit_timeout_found_at_venue", client_order_id=request.client_order_id)
        except DuplicateClientOrderId:
            found = await self.venue.lookup(request.client_order_id, request.symbol)
            if found is None:
                raise
        vo = found
        if self.instrument:
            m = self._metric
            m(metrics.ORDER_LATENCY, request.venue).observe(time.perf_counter() - started)
            m(metrics.ORDERS_SUBMITTED, request.venue, request.symbol, request.side.value).inc()
        return await self._sync(rec, vo)

    # --- venue news ----------------------------------------------------------------------------
    async def on_candle(self, candle: Candle) -> list[Payload]:
        """Mark positions, let a simulated venue fill on this candle, expire stale open orders."""
        self.portfolio.mark(candle.venue, candle.symbol, candle.close)
        events: list[Payload] = []
        for vo in await self.venue.on_candle(candle):
            events += await self._apply(vo)
        if self.open:
            events += await self.expire()
        return events

    async def expire(self) -> list[Payload]:
        """Cancel every open order whose intent expired (at each candle, and on a timer for a live
        venue, where an order rests between candles)."""
        events: list[Payload] = []
        now = self.clock.now()
        for rec in [
            r for r in self.open.values() if r.request.expires_at <= now and r.status is not OrderStatus.PENDING_NEW
        ]:
            cancelled = await self.venue.cancel(rec.client_order_id, rec.request.symbol)
            if cancelled is not None:
                events += await self._sync(rec, cancelled)
            else:
                events += await self._gone(rec, "at its expiry")
        return events

    def quiet_until(self, column: Column, sids: Sequence[int], start: int, stop: int) -> int:
        """The first candle in ``[start, stop)`` of a column on which :meth:`on_candle` could change
        more than marks: an open order (fills, expiry), or a candle the venue could fill or fire on.
        A venue without a twin (a live venue) is woken on every candle."""
        first = column.first_row(sids, start, stop)
        if first >= stop or self.open:
            return first
        quiet_until = getattr(self.venue, "quiet_until", None)
        if quiet_until is None:
            return first
        return int(quiet_until(column, sids, start, stop))

    def skip_quiet(self, column: Column, sids: Sequence[int], start: int, stop: int) -> None:
        """:meth:`on_candle` over quiet candles (see :meth:`quiet_until`): the marks and the venue."""
        assert isinstance(column, CandleColumn)
        if stop - start == 1:
            if int(column.series[start]) in sids:
                mark_row(self.portfolio, column, start)
        else:
            mark_run(self.portfolio, column, sids, start, stop)
        self.venue.skip_quiet(column, sids, start, stop)  # type: ignore[attr-defined]

    async def on_book(self, book: BookTop) -> None:
        """Top of book for the simulated venue's spread."""
        await self.venue.on_book(book)

    async def poll(self) -> list[Payload]:
        """Order changes a live venue reported."""
        return await self.apply_changes(await self.venue.poll())

    async def apply_changes(self, changes: Sequence[VenueOrder]) -> list[Payload]:
        """Bring our records up to orders the venue reported as changed."""
        events: list[Payload] = []
        for vo in changes:
            events += await self._apply(vo)
        return events

    async def _apply(self, vo: VenueOrder) -> list[Payload]:
        rec = self.open.get(vo.client_order_id) or await self.store.get_order(vo.client_order_id)
        events: list[Payload] = []
        if rec is None:
            if vo.request is None:
                self.log.warning("venue_order_unknown", client_order_id=vo.client_order_id)
                return []
            now = self.clock.now()
            rec = OrderRecord(vo.request, OrderStatus.PENDING_NEW, now, now, reason=vo.reason)
            if await self.store.insert_order(rec):
                await self._retain(rec)
                events.append(self._update(rec, None))
            else:
                rec = await self.store.get_order(vo.client_order_id) or rec
        return events + await self._sync(rec, vo)

    async def _sync(self, rec: OrderRecord, vo: VenueOrder) -> list[Payload]:
        """Bring our record up to the venue's state: store new fills, then the new order state."""
        request = rec.request
        events: list[Payload] = []
        venue_fills = vo.fills or self._derived_fills(rec, vo)
        coid = request.client_order_id
        new_fills = [
            f for f in venue_fills if not self.portfolio.has_fill(self._fill_key(request.venue, coid, f.fill_id))
        ]
        if new_fills:
            self.crash("before_fill_store")
            if vo.status is OrderStatus.PARTIALLY_FILLED:
                self.crash("before_partial_fill_store")
        for vf in new_fills:
            fill = Fill(
                fill_id=vf.fill_id,
                client_order_id=request.client_order_id,
                venue_order_id=vo.venue_order_id,
                intent_id=request.intent_id,
                venue=request.venue,
                symbol=request.symbol,
                side=request.side,
                price=vf.price,
                quantity=vf.quantity,
                fee=vf.fee,
                fee_currency=vf.fee_currency,
                liquidity="maker" if vf.liquidity == "maker" else "taker",
                ts=vf.ts,
            )
            key = self._fill_key(fill.venue, coid, fill.fill_id)
            position = self.portfolio.preview_fill(
                fill.venue, fill.symbol, fill.side, fill.quantity, fill.price, fill.fee
            )
            stored = await self.store.record_fill(fill, position, self.account)
            self.portfolio.commit(key, fill.side, fill.quantity, fill.price, fill.fee, position)
            self._count(fill.client_order_id, fill.quantity, fill.price, fill.fee)
            if self._expiry is not None:
                self._fills_of.setdefault(fill.client_order_id, []).append((fill.venue, fill.fill_id))
            if not stored:  # in the store already (another process?): it published it or its outbox will
                self.log.error("fill_already_stored", fill_id=fill.fill_id, client_order_id=fill.client_order_id)
                continue
            events += [fill, position.to_update()]
            self._fill_metrics(rec, fill)
        if new_fills:
            self.crash("after_fill_store")
        status = vo.status
        filled = vo.filled_quantity
        changed = status is not rec.status or filled != rec.filled_quantity or vo.venue_order_id != rec.venue_order_id
        if not changed:
            return events
        if status is not rec.status and not can_transition(rec.status, status):
            self.log.warning(
                "illegal_venue_transition",
                client_order_id=rec.client_order_id,
                current=rec.status.value,
                venue=status.value,
            )
            return events
        new = rec.evolve(
            status=status,
            filled_quantity=filled,
            average_price=vo.average_price,
            venue_order_id=vo.venue_order_id,
            updated_at=self.clock.now(),
            reason=vo.reason or rec.reason,
        )
        await self.store.update_order(new)
        events.append(self._update(new, rec.status if rec.status is not status else None))
        self._track(new)
        return events

    async def _retain(self, rec: OrderRecord) -> None:
        """With a retention grace, track a new order and forget the terminal orders whose intent
        expired more than the grace ago: their record and fills in a forgetful (in-memory) store,
        their per-order sums and the fill ids the portfolio remembers. No venue reports such an order
        again and a redelivered request would be rejected as stale, so no decision changes
        (:mod:`core.trading.retention`). Orders still open are looked at again one grace later."""
        expiry = self._expiry
        if expiry is None:
            return
        expiry.add(rec.client_order_id, rec.request.expires_at)
        now = self.clock.now()
        for coid in expiry.due(now):
            if coid in self.open:
                expiry.add(coid, now)
                continue
            keys = self._fills_of.pop(coid, [])
            self._per_order.pop(coid, None)
            self.portfolio.forget_fills([self._fill_key(venue, coid, fill_id) for venue, fill_id in keys])
            if self._forgetful:
                await self.store.forget_order(coid, keys)  # type: ignore[attr-defined]

    def _count(self, coid: str, quantity: Decimal, price: Decimal, fee: Decimal) -> None:
        qty, notional, fees = self._per_order.get(coid, (ZERO, ZERO, ZERO))
        self._per_order[coid] = (qty + quantity, notional + quantity * price, fees + fee)

    def _derived_fills(self, rec: OrderRecord, vo: VenueOrder) -> tuple[VenueFill, ...]:
        """One fill for the increase of an aggregate-only venue's filled amount (id = cumulative amount)."""
        qty, notional, fees = self._per_order.get(rec.client_order_id, (ZERO, ZERO, ZERO))
        delta = vo.filled_quantity - qty
        if delta <= ZERO or vo.average_price is None:
            return ()
        price = (vo.average_price * vo.filled_quantity - notional) / delta
        if price <= ZERO:
            price = vo.average_price
        fee = max((vo.fee or ZERO) - fees, ZERO)
        fill_id = f"{vo.venue_order_id or rec.client_order_id}-c{vo.filled_quantity.normalize()}"
        # the currency the venue charged (``fee`` is its value in quote), else the quote currency
        currency = (vo.fee_currency or rec.request.symbol.split("/")[-1].split(":")[0])[:16]
        return (VenueFill(fill_id, price, delta, fee, currency, "taker", self.clock.now()),)

    async def _finish(self, rec: OrderRecord, status: OrderStatus, reason: str) -> list[Payload]:
        new = rec.evolve(status=status, reason=reason, updated_at=self.clock.now())
        await self.store.update_order(new)
        self._track(new)
        if status is OrderStatus.REJECTED:
            self._metric(metrics.ORDERS_REJECTED, rec.request.venue, reason[:40]).inc()
        return [self._update(new, rec.status)]

    def _track(self, rec: OrderRecord) -> None:
        if self.instrument:
            self._metric(metrics.ORDER_UPDATES, rec.request.venue, rec.status.value).inc()
        if rec.status.is_terminal:
            self.open.pop(rec.client_order_id, None)
            self._first_fill_seen.discard(rec.client_order_id)
            if rec.status is not OrderStatus.REJECTED and self.instrument:
                self._metric(metrics.EXECUTION_FILL_RATIO, rec.request.venue).observe(
                    float(rec.filled_quantity / rec.request.quantity)
                )
        else:
            self.open[rec.client_order_id] = rec

    def _fill_metrics(self, rec: OrderRecord, fill: Fill) -> None:
        if not self.instrument:
            return
        m = self._metric
        ref = rec.request.reference_price
        adverse = (fill.price - ref) / ref * BPS * (1 if fill.side is Side.BUY else -1)
        m(metrics.SLIPPAGE_BPS, fill.venue, fill.symbol).observe(float(adverse))
        m(metrics.FILLS, fill.venue, fill.symbol, fill.side.value).inc()
        m(metrics.FILLED_NOTIONAL, fill.venue, fill.symbol, fill.side.value).inc(float(fill.price * fill.quantity))
        m(metrics.FEES_PAID, fill.venue, fill.symbol).inc(float(fill.fee))
        if rec.client_order_id not in self._first_fill_seen:
            self._first_fill_seen.add(rec.client_order_id)
            latency = (fill.ts - rec.created_at).total_seconds()
            m(metrics.EXECUTION_FILL_LATENCY, fill.venue).observe(max(latency, 0.0))

    def _update(self, rec: OrderRecord, previous: OrderStatus | None) -> OrderUpdate:
        r = rec.request
        return OrderUpdate(
            client_order_id=r.client_order_id,
            venue_order_id=rec.venue_order_id,
            intent_id=r.intent_id,
            venue=r.venue,
            symbol=r.symbol,
            side=r.side,
            order_type=r.order_type,
            status=rec.status,
            previous_status=previous,
            quantity=r.quantity,
            filled_quantity=rec.filled_quantity,
            average_price=rec.average_price,
            reason=rec.reason[:2000],
        )

    @staticmethod
    def _fill_key(venue: str, client_order_id: str, fill_id: str) -> str:
        """A fill's identity: venues number trades per symbol (Binance), so a fill id alone can repeat
        across orders; with the client order id it cannot."""
        return f"{venue}\x1f{client_order_id}\x1f{fill_id}"

    # --- control -------------------------------------------------------------------------------
    async def halt(self, command_id: UUID | None = None, reason: str = "") -> list[Payload]:
        """Kill switch: persist it, refuse new orders, cancel every open order, and have the venue
        cancel / suspend what it holds itself (protective exits). Idempotent."""
        self.halted = True
        await self._store_control(True, command_id, reason)
        return await self._halt_open_orders()

    async def _halt_open_orders(self) -> list[Payload]:
        events: list[Payload] = []
        for rec in list(self.open.values()):
            if rec.status is OrderStatus.PENDING_NEW:
                events += await self._finish(rec, OrderStatus.REJECTED, "kill_switch")
                continue
            vo = await self.venue.cancel(rec.client_order_id, rec.request.symbol)
            if vo is not None:
                events += await self._sync(rec, vo)
            else:
                events += await self._gone(rec, "when trading was halted")
        for vo in await self.venue.halt():
            events += await self._apply(vo)
        return events

    async def resume(self, command_id: UUID | None = None, reason: str = "") -> list[Payload]:
        """Accept new orders again and re-arm the venue's protective exits of open positions.

        The venue is resumed before the state is stored: a crash in between restarts halted, and the
        restart suspends the venue again."""
        events: list[Payload] = []
        for vo in await self.venue.resume():
            events += await self._apply(vo)
        if self.halted or self.control is not None:
            await self._store_control(False, command_id, reason)
        self.halted = False
        return events

    async def _store_control(self, halted: bool, command_id: UUID | None, reason: str) -> None:
        control = TradingControl(self.account, halted, self.clock.now(), command_id, reason[:500])
        await self.store.save_control(control)
        self.control = control

    async def snapshot(self, now: datetime | None = None) -> PortfolioSnapshot:
        """The account now; also stored."""
        snap = self.portfolio.snapshot(now or self.clock.now())
        await self.store.save_snapshot(snap)
        return snap
