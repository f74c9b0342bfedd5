"""Domain vocabulary: sides, order types and states, trading states, symbols and timeframes."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum


class Side(StrEnum):
    """Order or trade side."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buy, -1 for sell."""
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class Direction(StrEnum):
    """What a strategy vote or consensus asks for."""

    LONG = "long"
    SHORT = "short"
    EXIT = "exit"
    FLAT = "flat"


class OrderType(StrEnum):
    """Order types the execution agent understands."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"


class TimeInForce(StrEnum):
    """How long an order rests."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class OrderStatus(StrEnum):
    """States of the order state machine (see :mod:`core.messages.orders`)."""

    PENDING_NEW = "pending_new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """No further transition is possible."""
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """The order may still trade."""
        return not self.is_terminal


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class DecisionVerdict(StrEnum):
    """Outcome of a risk or compliance decision."""

    APPROVE = "approve"
    ADJUST = "adjust"
    REJECT = "reject"


class ConsensusOutcome(StrEnum):
    """Outcome of signal fusion."""

    EXECUTE = "execute"
    MANUAL_REVIEW = "manual_review"
    REJECT = "reject"


class TradingState(StrEnum):
    """Risk trading state: ACTIVE trades, REDUCING allows exits only, HALTED allows nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class MarketRegime(StrEnum):
    """Market regime label of an indicator snapshot."""

    TRENDING_UP = "trending_up"
    TRENDING_DOWN = "trending_down"
    RANGING = "ranging"
    HIGH_VOLATILITY = "high_volatility"
    UNKNOWN = "unknown"


class CommandKind(StrEnum):
    """Control-plane commands from the orchestrator."""

    PAUSE = "pause"
    RESUME = "resume"
    HALT = "halt"
    FLATTEN = "flatten"


class Severity(StrEnum):
    """Alert severity."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Mode(StrEnum):
    """Where the swarm runs: historical replay, paper venue on real data, or a real venue."""

    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"


SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
"""A ccxt unified symbol: ``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE`` (perpetuals)."""

VENUE_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")
"""A venue id: a ccxt exchange id (``binance``, ``kraken``) or ``paper``."""

_TIMEFRAME_RE = re.compile(r"^(\d{1,3})([smhdwM])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def timeframe_to_timedelta(timeframe: str) -> timedelta:
    """Length of a ccxt timeframe (``1m``, ``4h``, ``1d``...). ``1M`` (a calendar month) has none.

    Raises ``ValueError`` for an unknown or month timeframe.
    """
    match = _TIMEFRAME_RE.match(timeframe)
    if match is None:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected e.g. 1m, 5m, 1h, 4h, 1d")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "M":
        raise ValueError("calendar-month timeframes have no fixed length")
    if count <= 0:
        raise ValueError(f"timeframe {timeframe!r} must be positive")
    return timedelta(seconds=count * _UNIT_SECONDS[unit])


def is_valid_timeframe(timeframe: str) -> bool:
    """Whether ``timeframe`` is a ccxt timeframe string (``1M`` included)."""
    match = _TIMEFRAME_RE.match(timeframe)
    return match is not None and int(match.group(1)) > 0
