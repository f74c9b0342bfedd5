"""Order path contracts: order requests, order updates (with the order state machine), fills,
positions and portfolio snapshots."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import Field, model_validator

from core.domain import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.errors import IllegalTransition
from core.messages.base import (
    Fraction,
    NonNegativeDecimal,
    Payload,
    Price,
    Quantity,
    ShortText,
    SignedDecimal,
    Symbol,
    UtcDatetime,
    Venue,
)
from core.messages.registry import register

ClientOrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,36}$")]
Percent = Annotated[float, Field(gt=0.0, le=100.0, allow_inf_nan=False)]

S = OrderStatus
LEGAL_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_NEW: frozenset({S.SUBMITTED, S.ACCEPTED, S.REJECTED, S.CANCELED, S.FILLED, S.PARTIALLY_FILLED}),
    S.SUBMITTED: frozenset(
        {S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.PENDING_CANCEL}
    ),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.FILLED, S.PARTIALLY_FILLED, S.ACCEPTED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
"""Every legal ``current -> next`` order state change.

``PENDING_NEW`` is the state of an order persisted by execution but not yet sent (the outbox).
A venue may answer a submission with a fill at once, so fills are legal from the early states.
``PARTIALLY_FILLED -> PARTIALLY_FILLED`` is another partial fill. Terminal states allow nothing.
"""


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    """Whether the order state machine allows ``current -> target``."""
    return target in LEGAL_TRANSITIONS[current]


def transition(current: OrderStatus, target: OrderStatus) -> OrderStatus:
    """Return ``target`` if ``current -> target`` is legal, else raise :class:`IllegalTransition`."""
    if target not in LEGAL_TRANSITIONS[current]:
        raise IllegalTransition(current.value, target.value)
    return target


@register
class OrderRequest(Payload):
    """An order approved by compliance, for execution to place. Only compliance publishes these."""

    TYPE = "order_request"

    client_order_id: ClientOrderId
    intent_id: UUID
    venue: Venue
    symbol: Symbol
    side: Side
    order_type: OrderType
    quantity: Quantity
    limit_price: Price | None = None
    stop_price: Price | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reference_price: Price
    stop_loss: Price | None = None
    take_profit: Price | None = None
    trailing_stop_pct: Percent | None = None
    reduce_only: bool = False
    expires_at: UtcDatetime

    @model_validator(mode="after")
    def _prices_match_type(self) -> Self:
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("a limit order needs a limit_price")
        if self.order_type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError("a market order takes no limit_price")
        if self.order_type is OrderType.STOP_MARKET and self.stop_price is None:
            raise ValueError("a stop order needs a stop_price")
        return self


@register
class OrderUpdate(Payload):
    """A change of an order's state, as execution saw it (published only by execution)."""

    TYPE = "order_update"

    client_order_id: ClientOrderId
    venue_order_id: str | None = Field(default=None, max_length=64)
    intent_id: UUID
    venue: Venue
    symbol: Symbol
    side: Side
    order_type: OrderType
    status: OrderStatus
    previous_status: OrderStatus | None = None
    quantity: Quantity
    filled_quantity: NonNegativeDecimal = Decimal(0)
    average_price: Price | None = None
    reason: ShortText = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.filled_quantity > self.quantity:
            raise ValueError("filled_quantity exceeds quantity")
        if self.previous_status is not None and not can_transition(self.previous_status, self.status):
            raise ValueError(f"illegal order transition {self.previous_status} -> {self.status}")
        if self.status is OrderStatus.FILLED and self.filled_quantity != self.quantity:
            raise ValueError("a FILLED order has filled_quantity == quantity")
        return self


@register
class Fill(Payload):
    """One execution against an order. ``fill_id`` is unique per venue; fills are stored once."""

    TYPE = "fill"

    fill_id: Annotated[str, Field(min_length=1, max_length=80)]
    client_order_id: ClientOrderId
    venue_order_id: str | None = Field(default=None, max_length=64)
    intent_id: UUID
    venue: Venue
    symbol: Symbol
    side: Side
    price: Price
    quantity: Quantity
    fee: NonNegativeDecimal = Decimal(0)
    fee_currency: str = Field(default="", max_length=16)
    liquidity: Literal["maker", "taker"] = "taker"
    ts: UtcDatetime


@register
class PositionUpdate(Payload):
    """A position after a fill or a mark: signed quantity, average entry, PnL and fees."""

    TYPE = "position_update"

    venue: Venue
    symbol: Symbol
    quantity: SignedDecimal
    average_price: NonNegativeDecimal
    mark_price: Price | None = None
    realized_pnl: SignedDecimal = Decimal(0)
    unrealized_pnl: SignedDecimal = Decimal(0)
    fees: NonNegativeDecimal = Decimal(0)


@register
class PositionsSettled(Payload):
    """Execution has applied the candle of ``(venue, symbol)`` that closed at ``as_of``: every fill
    and position update it caused was published before this mark, on the same channel.

    A consumer that reads the position of a symbol on the queue where it also reads these marks (the
    strategy) knows its position is current as of ``as_of``: the barrier that makes a decision on a
    candle's snapshot see that candle's fills in the multi-process swarm (docs/backtesting.md, Parity).
    """

    TYPE = "positions_settled"

    venue: Venue
    symbol: Symbol
    as_of: UtcDatetime


@register
class PortfolioSnapshot(Payload):
    """The whole account at one instant: cash, positions, equity, exposure, drawdown."""

    TYPE = "portfolio_snapshot"

    account: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]
    cash: SignedDecimal
    equity: SignedDecimal
    peak_equity: SignedDecimal
    gross_exposure: NonNegativeDecimal
    net_exposure: SignedDecimal
    realized_pnl: SignedDecimal
    unrealized_pnl: SignedDecimal
    fees: NonNegativeDecimal
    drawdown: Fraction
    open_positions: int = Field(ge=0)
    positions: tuple[PositionUpdate, ...] = Field(default=(), max_length=1000)
    trading_state: TradingState = TradingState.ACTIVE
    ts: UtcDatetime
