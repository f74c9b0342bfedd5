"""Persistence ports of the order path, with in-memory adapters (backtests, tests, quick start).

The PostgreSQL/TimescaleDB adapters live in ``infrastructure.database.timescale``. Every write is
idempotent: orders by client order id, fills by (venue, fill id), positions as absolute values, audit
rows by sequence number, so a retried write after a lost acknowledgement changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable
from uuid import UUID

from core.domain import OrderStatus
from core.messages.orders import Fill, OrderRequest, PortfolioSnapshot
from core.trading.audit import AuditCheckpoint, AuditRecord
from core.trading.portfolio import Position


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as execution persists it: the request plus its current state."""

    request: OrderRequest
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    venue_order_id: str | None = None
    reason: str = ""

    @property
    def client_order_id(self) -> str:
        """The client order id (primary key)."""
        return self.request.client_order_id

    def evolve(self, **changes: object) -> OrderRecord:
        """A copy with ``changes`` (``dataclasses.replace`` without its introspection: per order)."""
        fields: dict[str, object] = {
            "request": self.request,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "filled_quantity": self.filled_quantity,
            "average_price": self.average_price,
            "venue_order_id": self.venue_order_id,
            "reason": self.reason,
        }
        unknown = changes.keys() - fields.keys()
        if unknown:
            raise TypeError(f"OrderRecord has no field(s) {sorted(unknown)}")
        fields.update(changes)
        return OrderRecord(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TradingControl:
    """Execution's trading control state: halted (kill switch) or not, by which command, when."""

    account: str
    halted: bool
    changed_at: datetime
    command_id: UUID | None = None
    reason: str = ""


@runtime_checkable
class ExecutionStore(Protocol):
    """What execution persists: orders (the outbox), fills, positions, snapshots, control state."""

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        """One order by client order id."""
        ...

    async def insert_order(self, record: OrderRecord) -> bool:
        """Insert a new order; ``False`` when the client order id exists already."""
        ...

    async def update_order(self, record: OrderRecord) -> None:
        """Overwrite an order's state (absolute values, so a retry is harmless)."""
        ...

    async def open_orders(self) -> Sequence[OrderRecord]:
        """Every order not in a terminal state."""
        ...

    async def record_fill(self, fill: Fill, position: Position, account: str) -> bool:
        """Store a fill and the position it produced in one transaction; ``False`` if the fill was
        stored before (the position is written either way: it is an absolute value)."""
        ...

    async def fills(self, account: str) -> Sequence[Fill]:
        """Every stored fill of ``account`` in time order (to rebuild the portfolio on start)."""
        ...

    async def positions(self, account: str) -> Sequence[Position]:
        """The stored positions of ``account``."""
        ...

    async def save_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        """Store a portfolio snapshot (idempotent by account and time)."""
        ...

    async def load_control(self, account: str) -> TradingControl | None:
        """The stored trading control state of ``account`` (``None``: never halted)."""
        ...

    async def save_control(self, control: TradingControl) -> None:
        """Store the trading control state of its account (absolute value: a retry is harmless)."""
        ...


@runtime_checkable
class ForgetfulExecutionStore(Protocol):
    """An :class:`ExecutionStore` that can forget a terminal order and its fills (in-memory only).

    Execution with a retention grace (``ExecutionSettings.retention_grace_s``, set by backtests)
    calls it for terminal orders whose intent expired more than the grace ago; a store without this
    method (PostgreSQL) keeps everything. Safe for in-memory stores because they serve backtests and
    tests, where nothing is redelivered after expiry and the engine is never restarted on the same
    store (a store that forgot fills could not rebuild the portfolio on a restart: durable stores
    must not implement this).
    """

    async def forget_order(self, client_order_id: str, fill_keys: Sequence[tuple[str, str]]) -> None:
        """Drop the order and its fills, given as ``(venue, fill id)``."""
        ...


@runtime_checkable
class FillOutbox(Protocol):
    """A durable :class:`ExecutionStore` that remembers which stored fills the bus confirmed.

    A fill is stored (with its position) before it is published; a process killed in between
    leaves it unpublished, and the next process publishes it before consuming anything. In-memory
    stores need no outbox: nothing survives their process.
    """

    async def unpublished_fills(self, account: str) -> Sequence[Fill]:
        """Fills stored but not yet marked published, oldest first."""
        ...

    async def mark_published(self, account: str, fills: Sequence[Fill]) -> None:
        """Mark these fills published (the bus confirmed them)."""
        ...


@runtime_checkable
class AuditStore(Protocol):
    """The append-only audit log."""

    async def last(self) -> AuditRecord | None:
        """The newest record."""
        ...

    async def append(self, record: AuditRecord) -> None:
        """Append one record (its ``seq`` must follow the last one)."""
        ...

    async def records(self, start: datetime | None = None, end: datetime | None = None) -> Sequence[AuditRecord]:
        """Records in sequence order, optionally within ``[start, end)``."""
        ...

    async def before(self, seq: int) -> AuditRecord | None:
        """The record with sequence ``seq - 1`` (to verify a slice of the chain)."""
        ...

    async def append_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        """Store a signed checkpoint of the chain's head (idempotent)."""
        ...

    async def checkpoints(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> Sequence[AuditCheckpoint]:
        """Checkpoints in time order, optionally within ``[start, end)``."""
        ...


@runtime_checkable
class DecisionStore(Protocol):
    """Signals (intents) and risk/compliance decisions, for analysis and reports."""

    async def record_signal(self, intent_id: UUID, ts: datetime, payload: dict[str, object]) -> None:
        """Store an intent (idempotent by intent id)."""
        ...

    async def record_decision(
        self, intent_id: UUID, stage: str, ts: datetime, verdict: str, reason: str, payload: dict[str, object]
    ) -> None:
        """Store a decision (idempotent by intent id and stage)."""
        ...

    async def approvals_since(self, start: datetime) -> Sequence[tuple[UUID, str, Decimal, datetime]]:
        """Compliance approvals since ``start``: (intent id, symbol, notional at the reference price, time)."""
        ...


@dataclass
class InMemoryExecutionStore:
    """:class:`ExecutionStore` in a dict (survives nothing; for backtests and tests). Also a
    :class:`ForgetfulExecutionStore`: execution with a retention grace prunes it."""

    orders: dict[str, OrderRecord] = field(default_factory=dict)
    fill_log: dict[tuple[str, str, str], tuple[str, Fill]] = field(default_factory=dict)
    """``(venue, client order id, fill id)`` -> ``(account, fill)``."""
    position_rows: dict[tuple[str, str, str], Position] = field(default_factory=dict)
    snapshots: list[PortfolioSnapshot] = field(default_factory=list)
    keep_snapshots: int = 1000
    control: dict[str, TradingControl] = field(default_factory=dict)

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        """See :class:`ExecutionStore`."""
        return self.orders.get(client_order_id)

    async def insert_order(self, record: OrderRecord) -> bool:
        """See :class:`ExecutionStore`."""
        if record.client_order_id in self.orders:
            return False
        self.orders[record.client_order_id] = record
        return True

    async def update_order(self, record: OrderRecord) -> None:
        """See :class:`ExecutionStore`."""
        self.orders[record.client_order_id] = record

    async def open_orders(self) -> Sequence[OrderRecord]:
        """See :class:`ExecutionStore`."""
        return [o for o in self.orders.values() if o.status.is_open]

    async def record_fill(self, fill: Fill, position: Position, account: str) -> bool:
        """See :class:`ExecutionStore`."""
        key = (fill.venue, fill.client_order_id, fill.fill_id)
        new = key not in self.fill_log
        if new:  # a fill already stored leaves the position as that fill made it
            self.fill_log[key] = (account, fill)
            self.position_rows[(account, position.venue, position.symbol)] = position
        return new

    async def fills(self, account: str) -> Sequence[Fill]:
        """See :class:`ExecutionStore`."""
        return sorted((f for a, f in self.fill_log.values() if a == account), key=lambda f: f.ts)

    async def positions(self, account: str) -> Sequence[Position]:
        """See :class:`ExecutionStore`."""
        return [p for (a, _, _), p in self.position_rows.items() if a == account]

    async def save_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        """See :class:`ExecutionStore`."""
        self.snapshots.append(snapshot)
        if len(self.snapshots) > self.keep_snapshots:
            del self.snapshots[: len(self.snapshots) - self.keep_snapshots]

    async def forget_order(self, client_order_id: str, fill_keys: Sequence[tuple[str, str]]) -> None:
        """See :class:`ForgetfulExecutionStore`."""
        self.orders.pop(client_order_id, None)
        for venue, fill_id in fill_keys:
            self.fill_log.pop((venue, client_order_id, fill_id), None)

    async def load_control(self, account: str) -> TradingControl | None:
        """See :class:`ExecutionStore`."""
        return self.control.get(account)

    async def save_control(self, control: TradingControl) -> None:
        """See :class:`ExecutionStore`."""
        self.control[control.account] = control


@dataclass
class InMemoryAuditStore:
    """:class:`AuditStore` in a list."""

    rows: list[AuditRecord] = field(default_factory=list)
    anchors: list[AuditCheckpoint] = field(default_factory=list)
    """The signed checkpoints."""

    async def last(self) -> AuditRecord | None:
        """See :class:`AuditStore`."""
        return self.rows[-1] if self.rows else None

    async def append(self, record: AuditRecord) -> None:
        """See :class:`AuditStore`."""
        expected = self.rows[-1].seq + 1 if self.rows else 1
        if record.seq != expected:
            raise ValueError(f"audit sequence {record.seq} does not follow {expected - 1}")
        self.rows.append(record)

    async def records(self, start: datetime | None = None, end: datetime | None = None) -> Sequence[AuditRecord]:
        """See :class:`AuditStore`."""
        return [r for r in self.rows if (start is None or r.ts >= start) and (end is None or r.ts < end)]

    async def before(self, seq: int) -> AuditRecord | None:
        """See :class:`AuditStore`."""
        idx = seq - 2
        return self.rows[idx] if 0 <= idx < len(self.rows) else None

    async def append_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        """See :class:`AuditStore`."""
        if checkpoint not in self.anchors:
            self.anchors.append(checkpoint)

    async def checkpoints(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> Sequence[AuditCheckpoint]:
        """See :class:`AuditStore`."""
        return sorted(
            (c for c in self.anchors if (start is None or c.ts >= start) and (end is None or c.ts < end)),
            key=lambda c: c.ts,
        )
