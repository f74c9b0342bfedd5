"""Position sizing: fixed fraction, ATR volatility sizing, capped half-Kelly. Pure functions."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

ZERO = Decimal(0)
BPS = Decimal(10_000)


def round_down(quantity: Decimal, step: Decimal) -> Decimal:
    """``quantity`` rounded down to a multiple of ``step``."""
    if quantity <= ZERO:
        return ZERO
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step


def fixed_fraction(equity: Decimal, price: Decimal, fraction: Decimal, fee_reserve_bps: Decimal = ZERO) -> Decimal:
    """Quantity worth ``fraction`` of equity (1 = 100%), leaving room for the fee when asked."""
    if equity <= ZERO or price <= ZERO:
        return ZERO
    return equity * fraction / (price * (1 + fee_reserve_bps / BPS))


def risk_size(equity: Decimal, stop_distance: Decimal, risk_fraction: Decimal) -> Decimal:
    """Quantity that loses ``risk_fraction`` of equity when the price moves ``stop_distance`` against
    it (the distance from the entry's reference price to the stop it carries)."""
    if equity <= ZERO or stop_distance <= ZERO:
        return ZERO
    return equity * risk_fraction / stop_distance


def half_kelly_fraction(win_rate: float, payoff: float, cap: Decimal) -> Decimal:
    """Half of the Kelly fraction ``W - (1 - W) / R``, capped; zero when there is no edge."""
    if payoff <= 0:
        return ZERO
    kelly = win_rate - (1 - win_rate) / payoff
    if kelly <= 0:
        return ZERO
    return min(Decimal(str(round(kelly / 2, 10))), cap)


class AtrTracker:
    """Wilder's average true range, updated one candle at a time (same values as TA-Lib ATR)."""

    __slots__ = ("_count", "_prev_close", "_seed", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self.value: Decimal | None = None
        self._prev_close: Decimal | None = None
        self._count = 0
        self._seed = ZERO

    def update(self, high: Decimal, low: Decimal, close: Decimal) -> Decimal | None:
        """Add a candle; returns the ATR once ``period`` true ranges are known."""
        prev = self._prev_close
        self._prev_close = close
        if prev is None:
            return None
        tr = max(high - low, abs(high - prev), abs(low - prev))
        self._count += 1
        if self.value is None:
            self._seed += tr
            if self._count == self.period:
                self.value = self._seed / self.period
        else:
            self.value = (self.value * (self.period - 1) + tr) / self.period
        return self.value


class TradeStats:
    """Win rate and payoff of closed trades, net of fees, for Kelly sizing (see :class:`NetPnl`)."""

    __slots__ = ("loss_sum", "losses", "win_sum", "wins")

    def __init__(self) -> None:
        self.wins = 0
        self.losses = 0
        self.win_sum = ZERO
        self.loss_sum = ZERO

    def record(self, pnl: Decimal) -> None:
        """Record one closed trade's PnL (net of its entry and exit fees)."""
        if pnl > ZERO:
            self.wins += 1
            self.win_sum += pnl
        elif pnl < ZERO:
            self.losses += 1
            self.loss_sum += -pnl

    @property
    def count(self) -> int:
        """Closed trades recorded."""
        return self.wins + self.losses

    def estimate(self, prior_win_rate: float, prior_payoff: float, min_trades: int) -> tuple[float, float]:
        """``(win rate, payoff)`` from the record, or the priors until ``min_trades`` are known."""
        if self.count < min_trades or self.wins == 0 or self.losses == 0:
            return prior_win_rate, prior_payoff
        win_rate = self.wins / self.count
        payoff = float((self.win_sum / self.wins) / (self.loss_sum / self.losses))
        return win_rate, payoff


class NetPnl:
    """The net-of-fee PnL of each position reduction: the gross PnL minus the exit fee and the share
    of the entry fees paid for the quantity closed (entry fees are carried per position, pro rata)."""

    __slots__ = ("_entry_fees",)

    def __init__(self) -> None:
        self._entry_fees: dict[tuple[str, str], Decimal] = {}

    def on_fill(
        self, key: tuple[str, str], old_quantity: Decimal, signed_quantity: Decimal, fee: Decimal, gross: Decimal
    ) -> Decimal | None:
        """Account one fill of ``signed_quantity`` on a position of ``old_quantity`` whose realised
        gross PnL moved by ``gross``; returns the net PnL of the quantity it closed, or ``None`` when
        it closed nothing (an entry or an increase)."""
        quantity = abs(signed_quantity)
        if quantity <= ZERO:
            return None
        fees = self._entry_fees.get(key, ZERO)
        if old_quantity == ZERO or (old_quantity > ZERO) == (signed_quantity > ZERO):
            self._entry_fees[key] = fees + fee
            return None
        closed = min(abs(old_quantity), quantity)
        entry_part = fees * closed / abs(old_quantity)
        exit_part = fee * closed / quantity
        left = fees - entry_part
        opened = quantity - closed
        self._entry_fees[key] = left + (fee - exit_part if opened > ZERO else ZERO)
        return gross - entry_part - exit_part
