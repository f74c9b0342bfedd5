"""The paper venue's fill model: which market data an order may fill against, at what price and
quantity, and for what fee. Pure and deterministic.

Rules:

* An order is *eligible* only for market data that starts at or after the moment the venue
  accepted it plus the simulated latency, and after every candle the venue had already seen when
  the order arrived. In candle mode the first eligible candle is therefore the one after the
  decision candle: an order never fills on information from the candle that produced it.
* Market orders fill at the eligible candle's **open**, moved against the taker by
  ``fixed_bps + half-spread`` (the half-spread comes from the last top of book, or from the
  configured ``spread_bps`` when no book was seen).
* Limit orders: a buy fills at the open when the open is at or below the limit (taker: it crossed
  on arrival), else at the limit when the candle's low reaches it (maker); sells mirror this.
* ``participation`` caps the quantity filled per candle at that fraction of the candle's volume;
  the rest stays open for the next candles (partial fills). ``None`` = no cap.
* Fees: ``price * quantity * bps / 10_000`` (maker or taker rate by liquidity).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.domain import OrderType, Side

BPS = Decimal(10_000)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Bar:
    """The market data an order fills against: one candle (a trade is a bar with o=h=l=c)."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class FillQuote:
    """What the model decided: fill ``quantity`` at ``price`` as ``liquidity``, paying ``fee``."""

    price: Decimal
    quantity: Decimal
    fee: Decimal
    liquidity: str


@dataclass(frozen=True, slots=True)
class FillModel:
    """Fees and slippage of the paper venue (see the module docstring)."""

    maker_fee_bps: Decimal = Decimal(10)
    taker_fee_bps: Decimal = Decimal(10)
    slippage_bps: Decimal = ZERO
    spread_bps: Decimal = ZERO
    participation: Decimal | None = None
    price_tick: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("maker_fee_bps", "taker_fee_bps", "slippage_bps", "spread_bps"):
            if getattr(self, name) < ZERO:
                raise ValueError(f"{name} must not be negative")
        if self.participation is not None and not (ZERO < self.participation <= Decimal(1)):
            raise ValueError("participation must be in (0, 1]")

    def fee(self, price: Decimal, quantity: Decimal, liquidity: str) -> Decimal:
        """The fee of a fill: notional times the maker or taker rate."""
        bps = self.maker_fee_bps if liquidity == "maker" else self.taker_fee_bps
        return price * quantity * bps / BPS

    def taker_price(self, side: Side, reference: Decimal, half_spread_bps: Decimal | None = None) -> Decimal:
        """``reference`` moved against a taker by the fixed slippage plus the half-spread."""
        half = half_spread_bps if half_spread_bps is not None else self.spread_bps / 2
        move = (self.slippage_bps + half) / BPS
        price = reference * (1 + move) if side is Side.BUY else reference * (1 - move)
        return self._round(price, side)

    def capacity(self, bar: Bar) -> Decimal | None:
        """Most quantity one bar can fill, or ``None`` when uncapped."""
        if self.participation is None:
            return None
        return bar.volume * self.participation

    def quote(
        self,
        side: Side,
        order_type: OrderType,
        remaining: Decimal,
        bar: Bar,
        limit_price: Decimal | None = None,
        half_spread_bps: Decimal | None = None,
    ) -> FillQuote | None:
        """The fill of ``remaining`` quantity against ``bar``, or ``None`` when it does not trade."""
        if remaining <= ZERO:
            return None
        if order_type is OrderType.MARKET:
            price = self.taker_price(side, bar.open, half_spread_bps)
            liquidity = "taker"
        elif order_type is OrderType.LIMIT:
            if limit_price is None:
                raise ValueError("a limit order needs a limit price")
            crosses_at_open = bar.open <= limit_price if side is Side.BUY else bar.open >= limit_price
            touches = bar.low <= limit_price if side is Side.BUY else bar.high >= limit_price
            if crosses_at_open:
                price = (
                    min(self.taker_price(side, bar.open, half_spread_bps), limit_price)
                    if side is Side.BUY
                    else max(self.taker_price(side, bar.open, half_spread_bps), limit_price)
                )
                liquidity = "taker"
            elif touches:
                price, liquidity = limit_price, "maker"
            else:
                return None
        else:
            raise ValueError(f"the fill model does not handle {order_type} orders directly")
        quantity = remaining
        cap = self.capacity(bar)
        if cap is not None:
            quantity = min(quantity, cap)
        if quantity <= ZERO:
            return None
        return FillQuote(price=price, quantity=quantity, fee=self.fee(price, quantity, liquidity), liquidity=liquidity)

    def _round(self, price: Decimal, side: Side) -> Decimal:
        if self.price_tick is None:
            return price
        steps = price / self.price_tick
        rounded = steps.to_integral_value(rounding="ROUND_CEILING" if side is Side.BUY else "ROUND_FLOOR")
        return rounded * self.price_tick


def half_spread_bps(bid: Decimal, ask: Decimal) -> Decimal:
    """Half the quoted spread in basis points of the mid price."""
    mid = (bid + ask) / 2
    if mid <= ZERO:
        return ZERO
    return (ask - bid) / 2 / mid * BPS
