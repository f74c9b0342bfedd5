"""The paper venue: a simulated exchange that fills orders against the NEXT market data.

Fill prices, fees, slippage and partial fills come from :class:`core.trading.fillmodel.FillModel`.
An order fills on the first candle that was still open when the order arrived (acceptance time
plus ``latency``) and that opens at or after the close of every candle the venue had already seen —
at its open price in candle mode. The decision candle had closed before its order existed, so no
order ever fills on it; with a simulated clock at the decision candle's close, the fill is the next
candle's open. An order fills at an instant (the candle's open in candle mode) only before its
intent's ``expires_at``: when the first candle it could fill on opens at or after it (a gap in the
data), the order ends ``expired`` (reason ``intent_expired``) unfilled, the rule execution applies
before sending and at each candle, so a stale intent never fills. Entries carrying stop-loss /
take-profit / trailing levels get a protective exit that the venue fires itself, as a reduce-only
market order. The intrabar policy (``intrabar``) says from which candle: ``worst`` (the default,
conservative) checks the levels from the entry fill's own candle on — in candle mode the fill is the
candle's open, so all of its range came after the entry; a stop touched inside the entry candle is
hit, and when a candle touches both the stop and the take-profit the stop wins — ``next_bar`` (the
optimistic old behaviour) from the candle after the entry fill.

:meth:`PaperVenue.halt` (the kill switch) cancels every open order and suspends those protective
exits: while halted none fires and no new order is accepted. :meth:`PaperVenue.resume` re-arms the
exits of positions still open: they fire from the next candle on (a level crossed during the halt
fires at that candle's open).

With a ``cash`` balance (what :func:`agents.execution.agent.paper_venue` always sets) the venue is a
spot account: it tracks its quote balance from its fills, and a buy fills only for what the balance
(plus ``credit``, a credit line; 0 = no margin) pays at the fill price, fee included. The rest of
such an order is cancelled with reason ``insufficient_balance``: cash never goes below ``-credit``.

With a ``retention`` grace the book forgets terminal orders whose intent expired more than the grace
ago (:mod:`core.trading.retention`), looked at when an order is submitted and by :meth:`PaperVenue.prune`;
open orders and the protective exit a live protection would create are kept (so that exit is still
fired at most once). Backtests set one simulated day; the execution agent's paper venue defaults to
seven days (``TRADESWARM_EXECUTION_PAPER_ORDER_RETENTION_DAYS``), so a long paper run's book — in
memory and in its saved book — is bounded by the trading rate, not by the length of the run. Orders
reloaded from a saved book are considered only from the first :meth:`PaperVenue.prune`, which the
execution engine calls at the end of its start, once it has reconciled every order with the venue:
crash recovery sees the whole book as it was saved.

The venue plays an exchange, which outlives the process that talks to it: with a ``book``
(:mod:`infrastructure.venues.paper_book`: PostgreSQL tables, what the execution agent uses by default
with its PostgreSQL store, or a JSON file ``journal_path``) every change is saved before the method
that made it returns, and :meth:`PaperVenue.restore` reloads it, so a killed and restarted execution
agent finds its orders and their fills at the venue by client order id, exactly as at a live venue.
Venue order ids (``<prefix><sequence>``) and fill ids (``<venue order id>-<n>``) never repeat: the
sequence is saved with the book, and a venue given a fresh book gets a fresh random prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from core.clock import Clock
from core.columns import Column
from core.domain import OrderStatus, OrderType, Side
from core.ids import client_order_id, content_id
from core.messages.market import BookTop, Candle
from core.messages.orders import OrderRequest
from core.trading.fillmodel import Bar, FillModel, FillQuote, half_spread_bps
from core.trading.market_rules import MarketRules, conform, round_to_step
from core.trading.protective import ProtectiveLevels
from core.trading.retention import ExpiryQueue
from core.trading.venue import DuplicateClientOrderId, VenueFill, VenueOrder
from infrastructure.venues import paper_twin
from infrastructure.venues.paper_book import JsonPaperBook, PaperBook, PaperState

ZERO = Decimal(0)
QUANTITY_STEP = Decimal("1e-8")
"""The lot step when the venue's rules name none: every fill is a multiple of the lot step (a buy the
balance cannot pay in full, a fill capped by ``participation``), so a position never keeps dust below
it that no order could close."""
INSUFFICIENT_BALANCE = "insufficient_balance"
Intrabar = Literal["worst", "next_bar"]
"""From which candle protective exits are checked (see the module docstring)."""
EXPIRED = "intent_expired"
"""Reason of an order that reached the candle it could fill on after its intent expired."""


@dataclass(slots=True)
class _Order:
    request: OrderRequest
    venue_order_id: str
    eligible_from: datetime
    min_open: datetime | None = None
    status: OrderStatus = OrderStatus.ACCEPTED
    fills: list[VenueFill] = field(default_factory=list)
    reason: str = ""
    own: bool = False

    @property
    def filled(self) -> Decimal:
        return sum((f.quantity for f in self.fills), ZERO)

    def view(self) -> VenueOrder:
        filled = self.filled
        avg = sum((f.price * f.quantity for f in self.fills), ZERO) / filled if filled else None
        return VenueOrder(
            client_order_id=self.request.client_order_id,
            venue_order_id=self.venue_order_id,
            symbol=self.request.symbol,
            status=self.status,
            quantity=self.request.quantity,
            filled_quantity=filled,
            average_price=avg,
            fills=tuple(self.fills),
            reason=self.reason,
            request=self.request if self.own else None,
        )


@dataclass(slots=True)
class _Protection:
    parent: str
    intent_id: str
    venue: str
    symbol: str
    quantity: Decimal
    levels: ProtectiveLevels
    active_from: datetime


class PaperVenue:
    """A :class:`~core.trading.venue.VenuePort` that simulates fills (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        model: FillModel | None = None,
        *,
        name: str = "paper",
        latency: timedelta = timedelta(0),
        journal_path: Path | None = None,
        retention: timedelta | None = None,
        cash: Decimal | None = None,
        credit: Decimal = ZERO,
        book: PaperBook | None = None,
        id_prefix: str = "P",
        rules: MarketRules | None = None,
        intrabar: Intrabar = "worst",
    ) -> None:
        if credit < ZERO:
            raise ValueError("credit must not be negative")
        self.intrabar: Intrabar = intrabar
        self._arm_delay = timedelta(0) if intrabar == "worst" else timedelta(microseconds=1)
        """How long after its entry fill a protective exit is armed: at once (checked on the fill's own
        candle, the worst case) or just after (from the next candle on)."""
        self.name = name
        self.cash = cash
        """The quote balance (``None``: not tracked, every buy fills in full)."""
        self.credit = credit
        self.clock = clock
        self.model = model or FillModel()
        self.latency = latency
        self.journal_path = journal_path
        self.book: PaperBook | None = book if book is not None else (
            JsonPaperBook(journal_path) if journal_path is not None else None
        )  # fmt: skip
        self.rules = rules or MarketRules()
        """The market rules of every symbol (lot step, tick size, minimums): an order off them is
        rejected like a real venue would; execution conforms orders to them before sending."""
        self.lot_step = self.rules.amount_step or QUANTITY_STEP
        self.id_prefix = id_prefix
        """Venue order ids are ``<id_prefix><sequence>`` (a restored book brings its own prefix)."""
        self._orders: dict[str, _Order] = {}
        self._open: dict[str, list[str]] = {}
        self._protections: list[_Protection] = []
        self._net: dict[str, Decimal] = {}
        self._last_close: dict[str, datetime] = {}
        self._half_spread: dict[str, Decimal] = {}
        self._seq = 0
        self._expiry: ExpiryQueue[str] | None = ExpiryQueue(retention) if retention is not None else None
        self.halted = False
        """Kill switch (:meth:`halt`): protective exits suspended, new orders rejected."""
        self._dirty: set[str] = set()
        """Client order ids changed since the book was last saved."""
        self._forgotten: set[str] = set()
        """Client order ids forgotten (retention) since the book was last saved: the book drops them."""
        self._restored: list[str] = []
        """Orders reloaded from the book, not yet tracked by retention (see :meth:`prune`)."""
        if isinstance(self.book, JsonPaperBook):
            self._load(self.book.load_now())

    async def restore(self) -> None:
        """Reload the book's state (call once, before the first order): what a restarted process does."""
        if self.book is not None:
            self._load(await self.book.load())

    async def prune(self) -> int:
        """With a retention grace, forget the terminal orders whose intent expired more than the grace
        ago, in memory and in the book (saved at once); return how many were forgotten.

        The first call also hands the orders reloaded by :meth:`restore` to retention: call it once the
        host has reconciled with the venue (``ExecutionEngine.start`` does), so a restarted process
        finds every saved order first. Later, retention looks at the book whenever an order is
        submitted; calling this again is harmless."""
        expiry = self._expiry
        if expiry is None:
            return 0
        for coid in self._restored:
            rec = self._orders.get(coid)
            if rec is not None:
                expiry.add(coid, rec.request.expires_at)
        self._restored.clear()
        forgotten = self._forget_due(self.clock.now())
        if forgotten:
            await self._save()
        return forgotten

    # --- VenuePort -----------------------------------------------------------------------------
    async def submit(self, order: OrderRequest) -> VenueOrder:
        """Accept an order; it fills on later market data."""
        if order.client_order_id in self._orders:
            raise DuplicateClientOrderId(order.client_order_id)
        if order.order_type is OrderType.STOP_MARKET:
            return await self._reject(order, "paper venue takes market and limit orders")
        if self.halted:
            return await self._reject(order, "venue_halted")
        checked = conform(order, self.rules)
        if checked.problem is not None or checked.request is not order:
            return await self._reject(order, checked.problem or "off the market's lot step or tick size")
        now = self.clock.now()
        rec = _Order(order, self._next_id(), now + self.latency, self._last_close.get(order.symbol))
        self._orders[order.client_order_id] = rec
        self._open.setdefault(order.symbol, []).append(order.client_order_id)
        self._retain(order, now)
        await self._save(order.client_order_id)
        return rec.view()

    async def _reject(self, order: OrderRequest, reason: str) -> VenueOrder:
        now = self.clock.now()
        rec = _Order(order, self._next_id(), now, status=OrderStatus.REJECTED, reason=reason)
        self._orders[order.client_order_id] = rec
        self._retain(order, now)
        await self._save(order.client_order_id)
        return rec.view()

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self.id_prefix}{self._seq}"

    async def lookup(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The order's state, or ``None``."""
        rec = self._orders.get(client_order_id)
        return rec.view() if rec is not None else None

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """Cancel an open order."""
        rec = self._orders.get(client_order_id)
        if rec is None:
            return None
        if rec.status.is_open:
            rec.status = OrderStatus.CANCELED
            self._drop_open(rec)
            await self._save(client_order_id)
        return rec.view()

    async def market_rules(self, symbol: str) -> MarketRules:
        """The configured rules (the same for every symbol)."""
        return self.rules

    async def on_book(self, book: BookTop) -> None:
        """Remember the half-spread for slippage."""
        self._half_spread[book.symbol] = half_spread_bps(book.bid, book.ask)

    async def poll(self) -> Sequence[VenueOrder]:
        """Nothing to poll: changes come from :meth:`on_candle`."""
        return ()

    async def own_orders(self) -> Sequence[VenueOrder]:
        """The protective exits this venue fired and still holds (see the port)."""
        return [rec.view() for rec in self._orders.values() if rec.own]

    async def close(self) -> None:
        """Nothing to release."""

    async def halt(self) -> Sequence[VenueOrder]:
        """Kill switch: cancel every open order and suspend the protective exits (see the module
        docstring). The exits are kept, not dropped, so :meth:`resume` can re-arm them."""
        self.halted = True
        changed: list[VenueOrder] = []
        for coids in self._open.values():
            for coid in list(coids):
                rec = self._orders[coid]
                rec.status = OrderStatus.CANCELED
                rec.reason = "kill_switch"
                self._dirty.add(coid)
                changed.append(rec.view())
            coids.clear()
        await self._save()
        return changed

    async def resume(self) -> Sequence[VenueOrder]:
        """Lift the kill switch: accept orders again and re-arm the protective exits of positions
        still open, active from now (their levels are checked from the next candle on)."""
        if self.halted:
            self.halted = False
            now = self.clock.now()
            for prot in self._protections:
                prot.active_from = max(prot.active_from, now)
            await self._save()
        return ()

    def quiet_until(self, column: Column, sids: Sequence[int], start: int, stop: int) -> int:
        """The first candle of a column on which this venue could fill or fire (:mod:`paper_twin`)."""
        return paper_twin.next_wake(self, column, sids, start, stop)

    def skip_quiet(self, column: Column, sids: Sequence[int], start: int, stop: int) -> None:
        """Apply quiet candles of a column exactly as :meth:`on_candle` would (:mod:`paper_twin`)."""
        paper_twin.skip(self, column, sids, start, stop)

    @property
    def protections(self) -> int:
        """How many protective exits the venue holds (armed or suspended)."""
        return len(self._protections)

    async def on_candle(self, candle: Candle) -> Sequence[VenueOrder]:
        """Fill eligible orders at this candle, then fire protective exits. Replays are ignored."""
        symbol = candle.symbol
        last = self._last_close.get(symbol)
        if last is not None and candle.close_time <= last:
            return ()
        if not self._open.get(symbol) and not self._protections:
            # nothing to fill: the fast path of backtests. Not saved: after a restart a redelivered
            # candle changes nothing (orders placed since are not eligible on it), and a new order's
            # earliest candle comes from its acceptance time anyway
            self._last_close[symbol] = candle.close_time
            return ()
        bar = Bar(candle.open, candle.high, candle.low, candle.close, candle.volume)
        changed: list[VenueOrder] = []
        capacity = self.model.capacity(bar)
        if capacity is not None:
            capacity = round_to_step(capacity, self.lot_step)  # fills stay on the lot grid: no dust
        for coid in list(self._open.get(symbol, ())):
            rec = self._orders[coid]
            if candle.close_time <= rec.eligible_from or (rec.min_open is not None and candle.open_time < rec.min_open):
                continue  # closed before the order arrived, or the decision candle / an older one
            if candle.open_time >= rec.request.expires_at:
                # the first candle it could fill on opens after its intent expired (a gap in the data,
                # a late order): a stale intent never fills, whatever the execution agent saw
                rec.status = OrderStatus.EXPIRED
                rec.reason = f"{EXPIRED}: intent expired at {rec.request.expires_at.isoformat()}"
                self._drop_open(rec)
                self._dirty.add(coid)
                changed.append(rec.view())
                continue
            remaining = rec.request.quantity - rec.filled
            if capacity is not None:
                remaining = min(remaining, capacity)
            quote = self.model.quote(
                rec.request.side,
                rec.request.order_type,
                remaining,
                bar,
                rec.request.limit_price,
                self._half_spread.get(symbol),
            )
            if quote is None:
                continue
            short_of_cash = False
            if self.cash is not None and rec.request.side is Side.BUY:
                affordable = self._affordable(quote, self.cash + self.credit)
                short_of_cash = affordable is not quote
                quote = affordable
            if quote is not None:
                if capacity is not None:
                    capacity -= quote.quantity
                self._add_fill(rec, quote.price, quote.quantity, quote.fee, quote.liquidity, candle.open_time)
            if short_of_cash:
                rec.status = OrderStatus.CANCELED
                rec.reason = INSUFFICIENT_BALANCE
                self._drop_open(rec)
                self._dirty.add(coid)
            changed.append(rec.view())
        if not self.halted:
            changed.extend(self._protect(candle, bar))
        self._last_close[symbol] = candle.close_time
        if changed or self._dirty:
            await self._save()
        return changed

    # --- internals -----------------------------------------------------------------------------
    def _affordable(self, quote: FillQuote, budget: Decimal) -> FillQuote | None:
        """``quote`` when ``budget`` pays it (fee included), else the largest quantity it pays at the
        same price (``None`` when that is nothing)."""
        cost = quote.price * quote.quantity + quote.fee
        if cost <= budget:
            return quote
        rate = quote.fee / (quote.price * quote.quantity)
        quantity = round_to_step(budget / (quote.price * (1 + rate)), self.lot_step)
        if quantity <= ZERO:
            return None
        fee = self.model.fee(quote.price, quantity, quote.liquidity)
        return FillQuote(quote.price, quantity, fee, quote.liquidity)

    def _add_fill(self, rec: _Order, price: Decimal, qty: Decimal, fee: Decimal, liquidity: str, ts: datetime) -> None:
        n = len(rec.fills) + 1
        rec.fills.append(VenueFill(f"{rec.venue_order_id}-{n}", price, qty, fee, "", liquidity, ts))
        self._dirty.add(rec.request.client_order_id)
        side = rec.request.side
        symbol = rec.request.symbol
        self._net[symbol] = self._net.get(symbol, ZERO) + (qty if side is Side.BUY else -qty)
        if self.cash is not None:
            self.cash += -(price * qty + fee) if side is Side.BUY else price * qty - fee
        if rec.filled >= rec.request.quantity:
            rec.status = OrderStatus.FILLED
            self._drop_open(rec)
        else:
            rec.status = OrderStatus.PARTIALLY_FILLED
        req = rec.request
        if not req.reduce_only and (req.stop_loss or req.take_profit or req.trailing_stop_pct):
            self._protections.append(
                _Protection(
                    parent=req.client_order_id,
                    intent_id=str(req.intent_id),
                    venue=req.venue,
                    symbol=symbol,
                    quantity=qty,
                    levels=ProtectiveLevels(
                        long=side is Side.BUY,
                        stop_loss=req.stop_loss,
                        take_profit=req.take_profit,
                        trailing_pct=Decimal(str(req.trailing_stop_pct)) if req.trailing_stop_pct else None,
                        best_price=price if req.trailing_stop_pct else None,
                    ),
                    active_from=ts + self._arm_delay,
                )
            )

    def _retain(self, order: OrderRequest, now: datetime) -> None:
        """With a retention grace, track a new order and forget the terminal orders whose intent expired
        more than the grace ago, except the protective exit a protection still held would create
        (it is found by client order id so that it fires at most once)."""
        expiry = self._expiry
        if expiry is None:
            return
        expiry.add(order.client_order_id, order.expires_at)
        self._forget_due(now)

    def _forget_due(self, now: datetime) -> int:
        """Forget the due terminal orders (see :meth:`_retain`); return how many."""
        expiry = self._expiry
        if expiry is None:
            return 0
        due = expiry.due(now)
        if not due:
            return 0
        pending_exits = {client_order_id(content_id("protective", p.intent_id, p.parent)) for p in self._protections}
        forgotten = 0
        for coid in due:
            rec = self._orders.get(coid)
            if rec is None:
                continue
            if rec.status.is_open or coid in pending_exits:
                expiry.add(coid, now)
            else:
                del self._orders[coid]
                forgotten += 1
                if self.book is not None:
                    self._forgotten.add(coid)
        return forgotten

    def _drop_open(self, rec: _Order) -> None:
        lst = self._open.get(rec.request.symbol)
        if lst and rec.request.client_order_id in lst:
            lst.remove(rec.request.client_order_id)

    def _protect(self, candle: Candle, bar: Bar) -> list[VenueOrder]:
        changed: list[VenueOrder] = []
        keep: list[_Protection] = []
        for prot in self._protections:
            if prot.symbol != candle.symbol:
                keep.append(prot)
                continue
            net = self._net.get(prot.symbol, ZERO)
            held = net if prot.levels.long else -net
            if held <= ZERO:
                continue  # the position it protected is gone (exited by an order): drop it (OCO)
            if candle.open_time < prot.active_from:
                keep.append(prot)
                continue
            trigger = prot.levels.check(bar)
            if trigger is None:
                prot.levels = prot.levels.after(bar)
                keep.append(prot)
                continue
            qty = min(prot.quantity, held)
            side = Side.SELL if prot.levels.long else Side.BUY
            child_intent = content_id("protective", prot.intent_id, prot.parent)
            request = OrderRequest(
                client_order_id=client_order_id(child_intent),
                intent_id=child_intent,
                venue=prot.venue,
                symbol=prot.symbol,
                side=side,
                order_type=OrderType.MARKET,
                quantity=qty,
                reference_price=trigger.price,
                reduce_only=True,
                expires_at=candle.close_time + timedelta(days=1),
            )
            if request.client_order_id in self._orders:
                continue
            rec = _Order(request, self._next_id(), candle.open_time, own=True, reason=trigger.reason)
            self._orders[request.client_order_id] = rec
            if self._expiry is not None:
                self._expiry.add(request.client_order_id, request.expires_at)
            price = self.model.taker_price(side, trigger.price, self._half_spread.get(prot.symbol))
            self._add_fill(rec, price, qty, self.model.fee(price, qty, "taker"), "taker", candle.open_time)
            changed.append(rec.view())
        self._protections = keep
        return changed

    # --- book ----------------------------------------------------------------------------------
    def state(self) -> PaperState:
        """The venue's state apart from its orders (what the book saves besides them)."""
        return PaperState(
            id_prefix=self.id_prefix,
            seq=self._seq,
            halted=self.halted,
            net={k: str(v) for k, v in self._net.items()},
            last_close={k: v.isoformat() for k, v in self._last_close.items()},
            protections=[_prot_to_json(p) for p in self._protections],
            cash=None if self.cash is None else str(self.cash),
        )

    async def _save(self, *changed: str) -> None:
        """Save the orders changed since the last save and the venue's state (a no-op without a book)."""
        dirty = self._dirty
        dirty.update(changed)
        book = self.book
        if book is None:
            dirty.clear()
            return
        orders = self._orders
        rows = {coid: _order_to_json(orders[coid]) for coid in dirty if coid in orders}
        removed = frozenset(c for c in self._forgotten if c not in orders)
        await book.save(self.state(), rows, lambda: {c: _order_to_json(o) for c, o in orders.items()}, removed)
        dirty.clear()
        self._forgotten.clear()

    def _load(self, loaded: tuple[PaperState, list[dict[str, Any]]] | None) -> None:
        if loaded is None:
            return
        state, orders = loaded
        self.id_prefix = state.id_prefix
        self._seq = state.seq
        self._orders.clear()
        self._open.clear()
        self._restored.clear()
        for raw in orders:
            rec = _order_from_json(raw)
            self._orders[rec.request.client_order_id] = rec
            self._restored.append(rec.request.client_order_id)
            if rec.status.is_open:
                self._open.setdefault(rec.request.symbol, []).append(rec.request.client_order_id)
        self._protections = [_prot_from_json(p) for p in state.protections]
        self._net = {k: Decimal(v) for k, v in state.net.items()}
        self._last_close = {k: datetime.fromisoformat(v) for k, v in state.last_close.items()}
        self.halted = state.halted
        if state.cash is not None:
            self.cash = Decimal(state.cash)


def _order_to_json(o: _Order) -> dict[str, Any]:
    return {
        "request": o.request.model_dump(mode="json"),
        "venue_order_id": o.venue_order_id,
        "eligible_from": o.eligible_from.isoformat(),
        "min_open": o.min_open.isoformat() if o.min_open else None,
        "status": o.status.value,
        "reason": o.reason,
        "own": o.own,
        "fills": [
            {
                "fill_id": f.fill_id,
                "price": str(f.price),
                "quantity": str(f.quantity),
                "fee": str(f.fee),
                "fee_currency": f.fee_currency,
                "liquidity": f.liquidity,
                "ts": f.ts.isoformat(),
            }
            for f in o.fills
        ],
    }


def _order_from_json(raw: dict[str, Any]) -> _Order:
    return _Order(
        request=OrderRequest.model_validate(raw["request"]),
        venue_order_id=raw["venue_order_id"],
        eligible_from=datetime.fromisoformat(raw["eligible_from"]),
        min_open=datetime.fromisoformat(raw["min_open"]) if raw.get("min_open") else None,
        status=OrderStatus(raw["status"]),
        reason=raw["reason"],
        own=raw["own"],
        fills=[
            VenueFill(
                f["fill_id"],
                Decimal(f["price"]),
                Decimal(f["quantity"]),
                Decimal(f["fee"]),
                f["fee_currency"],
                f["liquidity"],
                datetime.fromisoformat(f["ts"]),
            )
            for f in raw["fills"]
        ],
    )


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _prot_to_json(p: _Protection) -> dict[str, Any]:
    lv = p.levels
    return {
        "parent": p.parent,
        "intent_id": p.intent_id,
        "venue": p.venue,
        "symbol": p.symbol,
        "quantity": str(p.quantity),
        "active_from": p.active_from.isoformat(),
        "long": lv.long,
        "stop_loss": _dec(lv.stop_loss),
        "take_profit": _dec(lv.take_profit),
        "trailing_pct": _dec(lv.trailing_pct),
        "best_price": _dec(lv.best_price),
    }


def _prot_from_json(raw: dict[str, Any]) -> _Protection:
    levels = ProtectiveLevels(
        long=raw["long"],
        stop_loss=_undec(raw["stop_loss"]),
        take_profit=_undec(raw["take_profit"]),
        trailing_pct=_undec(raw["trailing_pct"]),
        best_price=_undec(raw["best_price"]),
    )
    return _Protection(
        raw["parent"],
        raw["intent_id"],
        raw["venue"],
        raw["symbol"],
        Decimal(raw["quantity"]),
        levels,
        datetime.fromisoformat(raw["active_from"]),
    )
