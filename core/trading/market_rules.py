"""A venue's market rules applied to an order before it is sent. Pure, Decimal throughout.

A venue lists, per market, a lot step (``amount_increment``), a tick size (``price_increment``), a
minimum quantity and a minimum notional (:class:`core.gateway.MarketInfo`). :func:`conform` makes an
:class:`~core.messages.orders.OrderRequest` valid for them, or says why it cannot be:

* the quantity is rounded DOWN to the lot step (never more than risk approved);
* prices are rounded toward safety: a limit buy's price down and a limit sell's up (never pay more
  or receive less than decided); the protective levels and a stop price toward the reference price
  (a stop-loss triggers no later than decided, a take-profit no further away);
* below the minimum quantity or the minimum notional (at the reference price, or the limit price when
  it is lower for a buy) the order is refused with the reason ``below_min_quantity`` /
  ``below_min_notional`` before it reaches the venue.

:func:`round_to_step` is the rounding itself (used by the paper venue so that partial fills stay on
the lot grid and leave no dust below the lot step).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from core.domain import Side
from core.messages.orders import OrderRequest

ZERO = Decimal(0)
BELOW_MIN_QUANTITY = "below_min_quantity"
BELOW_MIN_NOTIONAL = "below_min_notional"


def round_to_step(value: Decimal, step: Decimal | None, *, up: bool = False) -> Decimal:
    """``value`` rounded down (or ``up``) to a multiple of ``step`` (unchanged without a step)."""
    if step is None or step <= ZERO:
        return value
    units = (value / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (units * step).normalize() if units else ZERO


@dataclass(frozen=True, slots=True)
class MarketRules:
    """One market's trading rules (``None``: the venue did not say, nothing is enforced)."""

    amount_step: Decimal | None = None
    price_step: Decimal | None = None
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None

    @property
    def empty(self) -> bool:
        """No rule at all."""
        return (
            self.amount_step is None
            and self.price_step is None
            and self.min_quantity is None
            and self.min_notional is None
        )


@dataclass(frozen=True, slots=True)
class Conformed:
    """The order as it may be sent, or the reason it may not (then ``request`` is the input)."""

    request: OrderRequest
    problem: str | None = None
    detail: str = ""


def _toward(level: Decimal | None, reference: Decimal, step: Decimal | None) -> Decimal | None:
    """A protective level rounded toward the reference price (triggers no later than decided)."""
    if level is None or step is None:
        return level
    rounded = round_to_step(level, step, up=level < reference)
    return rounded if rounded > ZERO else level


def conform(request: OrderRequest, rules: MarketRules) -> Conformed:
    """``request`` on the venue's grid, or refused below its minimums (see the module docstring)."""
    if rules.empty:
        return Conformed(request)
    qty = round_to_step(request.quantity, rules.amount_step)
    limit = request.limit_price
    if limit is not None and rules.price_step is not None:
        limit = round_to_step(limit, rules.price_step, up=request.side is Side.SELL)
        if limit <= ZERO:
            return Conformed(request, "invalid_price", f"limit {request.limit_price} rounds to nothing")
    if qty <= ZERO or (rules.min_quantity is not None and qty < rules.min_quantity):
        return Conformed(
            request, BELOW_MIN_QUANTITY, f"{request.quantity} rounds to {qty}, minimum {rules.min_quantity or 0}"
        )
    price = request.reference_price if limit is None else min(limit, request.reference_price)
    if rules.min_notional is not None and qty * price < rules.min_notional:
        return Conformed(request, BELOW_MIN_NOTIONAL, f"{qty} x {price} < {rules.min_notional}")
    ref = request.reference_price
    step = rules.price_step
    stop_price = request.stop_price
    if stop_price is not None and step is not None:
        stop_price = _toward(stop_price, ref, step)
    changes = {
        "quantity": qty,
        "limit_price": limit,
        "stop_price": stop_price,
        "stop_loss": _toward(request.stop_loss, ref, step),
        "take_profit": _toward(request.take_profit, ref, step),
    }
    if all(getattr(request, k) == v for k, v in changes.items()):
        return Conformed(request)
    return Conformed(request.model_copy(update=changes))
