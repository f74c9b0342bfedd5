"""Wake conditions: which deliveries a consumer really needs, declared beside its subscription.

RabbitMQ delivers every message, always; that is the contract every agent is written against. An
agent may also declare, on a subscription, that some messages change nothing for it except in a way
it can apply without its handler; the in-memory bus of a backtest then skips those deliveries. Live
behaviour does not change (RabbitMQ ignores these declarations), and every declaration is proven
equal, bit for bit, to delivering everything by the tests (``tests/kernel``).

* :class:`LatestPerKey`: the consumer only needs the newest message per routing key (compliance's
  last price). The bus holds it and hands it over before the consumer's next delivery on any of
  its queues (and when the bus closes), so the consumer decides on the same state.
* :class:`WakeOn`: over a :class:`~core.columns.Column` (a block of candles or snapshots), the
  consumer says at which row it must next be woken (``next_wake``) and applies the rows before it
  in one exact bulk step (``skip``). Its contract: for every row ``skip`` covers, the handler would
  have published nothing and left the consumer's state exactly as ``skip`` leaves it.
* :class:`Derive`: the consumer is a pure function of the column (technical analysis: candles in,
  one indicator snapshot per candle out, no other input). It computes its output column ahead, in
  one pass over arrays, and the bus publishes row ``i`` of it when row ``i`` is delivered to it.

Messages published one at a time (not in a column) are always delivered to the handler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.columns import Column

NextWake = Callable[[Column, Sequence[int], int, int], int]
"""``(column, series, start, stop) -> row``: the first row in ``[start, stop)`` of one of ``series``
(indices into ``column.table`` that this queue receives) that must be delivered; ``stop`` if none."""

Skip = Callable[[Column, Sequence[int], int, int], None]
"""``(column, series, start, stop)``: apply the quiet rows of ``series`` in ``[start, stop)``."""

DeriveColumn = Callable[[Column, Sequence[int]], "Column | None"]
"""``(column, series) -> derived column`` aligned row for row with ``column`` (``None``: nothing)."""


class WakePolicy:
    """Base of the wake conditions (see the module docstring)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class LatestPerKey(WakePolicy):
    """Only the newest message per routing key matters to this queue's consumer."""


@dataclass(frozen=True, slots=True)
class WakeOn(WakePolicy):
    """Deliver only the rows ``next_wake`` names; ``skip`` applies the others (exactly).

    ``cost`` orders the questions the bus asks (cheap vectorised predicates first): each consumer's
    ``next_wake`` is only asked about the rows before the earliest wake found so far.
    """

    next_wake: NextWake
    skip: Skip
    cost: int = 1
    take_wake_rows: bool = False
    """When a row is delivered to other consumers anyway, deliver it to this one too instead of
    asking about that row alone: for a consumer whose handler costs less than its replay of one row
    (the risk engine's). Either way its state ends the same (the parity tests)."""


@dataclass(frozen=True, slots=True)
class Derive(WakePolicy):
    """The consumer's output is a function of the column alone, computed ahead (see the module
    docstring). ``publishes`` is the payload type of the derived rows."""

    derive: DeriveColumn
