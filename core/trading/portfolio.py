"""Decimal portfolio accounting: positions (average entry, realised/unrealised PnL, fees) and cash.

Conventions (the same as backtrader's broker, which the reference backtest is checked against):

* a buy pays ``price * quantity + fee`` out of cash, a sell receives ``price * quantity - fee``;
* ``realized_pnl`` is gross of fees (price difference on the closed quantity); fees are tracked
  separately, so net PnL is ``realized + unrealized - fees``;
* equity is ``cash + sum(quantity * mark)``; gross exposure ``sum(|quantity| * mark)``;
* positions are signed (negative = short) and may flip through zero in one fill.

Every method is pure Python with no I/O; applying the same fill twice is refused by ``fill_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.domain import Side, TradingState
from core.messages.orders import PortfolioSnapshot, PositionUpdate

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Position:
    """One signed position. Immutable: :meth:`with_fill` returns the next state."""

    venue: str
    symbol: str
    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    mark_price: Decimal | None = None

    @property
    def is_open(self) -> bool:
        """The position holds a non-zero quantity."""
        return self.quantity != ZERO

    @property
    def mark(self) -> Decimal:
        """The mark price, or the average entry when nothing marked the position yet."""
        return self.mark_price if self.mark_price is not None else self.average_price

    @property
    def unrealized_pnl(self) -> Decimal:
        """``(mark - average entry) * signed quantity``."""
        if self.quantity == ZERO:
            return ZERO
        return (self.mark - self.average_price) * self.quantity

    @property
    def market_value(self) -> Decimal:
        """Signed value at the mark."""
        return self.quantity * self.mark

    @property
    def notional(self) -> Decimal:
        """Absolute value at the mark."""
        return abs(self.market_value)

    def with_fill(self, side: Side, quantity: Decimal, price: Decimal, fee: Decimal) -> Position:
        """The position after one fill (average entry kept on reductions, reset on a flip)."""
        if quantity <= ZERO or price <= ZERO or fee < ZERO:
            raise ValueError("a fill needs a positive quantity and price and a non-negative fee")
        signed = quantity if side is Side.BUY else -quantity
        old = self.quantity
        new = old + signed
        realized = self.realized_pnl
        if old == ZERO or (old > ZERO) == (signed > ZERO):
            average = (self.average_price * abs(old) + price * quantity) / abs(new)
        else:
            closed = min(abs(old), quantity)
            direction = Decimal(1) if old > ZERO else Decimal(-1)
            realized += (price - self.average_price) * closed * direction
            if new == ZERO:
                average = ZERO
            elif (new > ZERO) == (old > ZERO):
                average = self.average_price
            else:
                average = price
        # the next state through the slots (as ``with_mark``): ``dataclasses.replace`` costs 4x
        nxt: Position = _new_position(Position)
        _set_venue(nxt, self.venue)
        _set_symbol(nxt, self.symbol)
        _set_quantity(nxt, new)
        _set_average_price(nxt, average)
        _set_realized_pnl(nxt, realized)
        _set_fees(nxt, self.fees + fee)
        _set_mark_price(nxt, price if self.mark_price is None else self.mark_price)
        return nxt

    def with_mark(self, price: Decimal) -> Position:
        """The position marked at ``price``."""
        # runs for every candle in two agents: the new instance's slots are written directly (what
        # the frozen dataclass ``__init__`` does, at half its cost; ``dataclasses.replace`` is 4x)
        marked: Position = _new_position(Position)
        _set_venue(marked, self.venue)
        _set_symbol(marked, self.symbol)
        _set_quantity(marked, self.quantity)
        _set_average_price(marked, self.average_price)
        _set_realized_pnl(marked, self.realized_pnl)
        _set_fees(marked, self.fees)
        _set_mark_price(marked, price)
        return marked

    def to_update(self) -> PositionUpdate:
        """The position as a :class:`PositionUpdate` message payload."""
        return PositionUpdate(
            venue=self.venue,
            symbol=self.symbol,
            quantity=self.quantity,
            average_price=self.average_price,
            mark_price=self.mark_price,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            fees=self.fees,
        )


_new_position = object.__new__
_set_venue = Position.__dict__["venue"].__set__
_set_symbol = Position.__dict__["symbol"].__set__
_set_quantity = Position.__dict__["quantity"].__set__
_set_average_price = Position.__dict__["average_price"].__set__
_set_realized_pnl = Position.__dict__["realized_pnl"].__set__
_set_fees = Position.__dict__["fees"].__set__
_set_mark_price = Position.__dict__["mark_price"].__set__


class Portfolio:
    """Cash plus positions, with equity, exposure, peak equity and drawdown.

    ``apply_fill`` is idempotent by ``fill_id``; ``preview_fill``/``commit`` let a caller persist
    the next position state before changing memory (so a failed write changes nothing).
    """

    def __init__(self, cash: Decimal, account: str = "paper") -> None:
        self.account = account
        self.cash = cash
        self.initial_cash = cash
        self.positions: dict[tuple[str, str], Position] = {}
        self.peak_equity = cash
        self.fees = ZERO
        self._seen_fills: set[str] = set()

    # --- fills -------------------------------------------------------------------------------
    def has_fill(self, fill_id: str) -> bool:
        """Whether this fill was already applied."""
        return fill_id in self._seen_fills

    def forget_fills(self, fill_ids: Iterable[str]) -> None:
        """Stop remembering these applied fills (their order is terminal and long expired, so no
        venue reports them again; see :mod:`core.trading.retention`). Cash and positions stay."""
        self._seen_fills.difference_update(fill_ids)

    def position(self, venue: str, symbol: str) -> Position:
        """The position of ``symbol`` (a flat one when none exists)."""
        return self.positions.get((venue, symbol)) or Position(venue=venue, symbol=symbol)

    def preview_fill(
        self, venue: str, symbol: str, side: Side, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> Position:
        """The position a fill would produce, without applying it."""
        return self.position(venue, symbol).with_fill(side, quantity, price, fee)

    def commit(self, fill_id: str, side: Side, quantity: Decimal, price: Decimal, fee: Decimal, new: Position) -> None:
        """Apply a previewed fill: store ``new`` and move cash and fees."""
        if fill_id in self._seen_fills:
            return
        self._seen_fills.add(fill_id)
        notional = price * quantity
        self.cash += -notional - fee if side is Side.BUY else notional - fee
        self.fees += fee
        self.positions[(new.venue, new.symbol)] = new
        self._update_peak()

    def apply_fill(
        self, fill_id: str, venue: str, symbol: str, side: Side, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> Position | None:
        """Apply one fill; returns the new position, or ``None`` when the fill was seen before."""
        if fill_id in self._seen_fills:
            return None
        new = self.preview_fill(venue, symbol, side, quantity, price, fee)
        self.commit(fill_id, side, quantity, price, fee, new)
        return new

    # --- marks and aggregates ----------------------------------------------------------------
    def mark(self, venue: str, symbol: str, price: Decimal) -> Position | None:
        """Mark an existing position at ``price`` (no-op for symbols never traded)."""
        key = (venue, symbol)
        pos = self.positions.get(key)
        if pos is None:
            return None
        pos = pos.with_mark(price)
        self.positions[key] = pos
        if pos.quantity != ZERO:
            # a flat position's mark moves no value: equity (hence the peak) is unchanged
            self._update_peak()
        return pos

    @property
    def equity(self) -> Decimal:
        """Cash plus the marked value of every position."""
        # the same Decimal operations as ``cash + sum(market values, ZERO)``, without a generator
        total = ZERO
        for p in self.positions.values():
            total += p.quantity * (p.mark_price if p.mark_price is not None else p.average_price)
        return self.cash + total

    @property
    def gross_exposure(self) -> Decimal:
        """Sum of absolute position values."""
        return sum((p.notional for p in self.positions.values()), ZERO)

    @property
    def net_exposure(self) -> Decimal:
        """Sum of signed position values."""
        return sum((p.market_value for p in self.positions.values()), ZERO)

    @property
    def realized_pnl(self) -> Decimal:
        """Realised PnL of every position (gross of fees)."""
        return sum((p.realized_pnl for p in self.positions.values()), ZERO)

    @property
    def unrealized_pnl(self) -> Decimal:
        """Unrealised PnL at the marks."""
        return sum((p.unrealized_pnl for p in self.positions.values()), ZERO)

    @property
    def open_positions(self) -> int:
        """Number of non-flat positions."""
        return sum(1 for p in self.positions.values() if p.is_open)

    @property
    def drawdown(self) -> float:
        """``1 - equity / peak equity`` in 0..1."""
        return self.drawdown_at(self.equity)

    def drawdown_at(self, equity: Decimal) -> float:
        """:attr:`drawdown` for an ``equity`` the caller already computed (saves recomputing it)."""
        if self.peak_equity <= ZERO:
            return 1.0
        value = float(1 - equity / self.peak_equity)
        return min(max(value, 0.0), 1.0)

    def _update_peak(self) -> None:
        equity = self.equity
        self.peak_equity = max(self.peak_equity, equity)

    def snapshot(self, ts: datetime, trading_state: TradingState = TradingState.ACTIVE) -> PortfolioSnapshot:
        """The whole account as a :class:`PortfolioSnapshot` payload."""
        return PortfolioSnapshot(
            account=self.account,
            cash=self.cash,
            equity=self.equity,
            peak_equity=self.peak_equity,
            gross_exposure=self.gross_exposure,
            net_exposure=self.net_exposure,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            fees=self.fees,
            drawdown=self.drawdown,
            open_positions=self.open_positions,
            positions=tuple(p.to_update() for p in self.positions.values() if p.is_open or p.realized_pnl),
            trading_state=trading_state,
            ts=ts,
        )
