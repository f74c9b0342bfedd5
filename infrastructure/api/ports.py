"""What the API needs from the process that serves it (the orchestrator implements these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol
from uuid import UUID

from infrastructure.api.schemas import (
    AgentView,
    BacktestRequest,
    BacktestResult,
    CommandView,
    DecisionView,
    EquityPoint,
    HealthView,
    OrderView,
    Page,
    PortfolioView,
    PositionView,
    ReviewView,
    SeriesView,
    SignalView,
    SnapshotView,
    TradeView,
)

BacktestRunner = Callable[[BacktestRequest], Awaitable[BacktestResult]]
"""Runs one backtest to completion."""


class CommandRefused(Exception):
    """A command could not be issued (e.g. no agent listens for commands)."""


class UnknownTarget(CommandRefused):
    """A command for one agent kind that no agent of that kind listens for (HTTP 404)."""


class ReviewNotFound(LookupError):
    """No review has this id."""


class ReviewConflict(Exception):
    """The review cannot be decided any more (already decided, or expired)."""


class ControlPlane(Protocol):
    """The live view of the swarm and the command interface (the orchestrator)."""

    def health(self) -> HealthView:
        """The swarm at a glance."""
        ...

    def agents(self) -> list[AgentView]:
        """Every known agent."""
        ...

    def market_series(self) -> list[SeriesView]:
        """The series with indicator snapshots in memory."""
        ...

    def market_latest(self, symbol: str, timeframe: str | None, venue: str | None, limit: int) -> list[SnapshotView]:
        """The latest snapshots of one symbol, oldest first."""
        ...

    async def issue(self, kind: str, *, target: str, reason: str, issued_by: str) -> CommandView:
        """Publish a command; raises :class:`CommandRefused` when it cannot be delivered."""
        ...

    def command(self, command_id: UUID) -> CommandView | None:
        """A command's progress."""
        ...

    def commands(self, limit: int) -> list[CommandView]:
        """Recent commands, newest first."""
        ...

    async def reviews(self, state: str | None, limit: int, offset: int) -> Page[ReviewView]:
        """The review queue (of one state), newest request first."""
        ...

    async def review(self, review_id: UUID) -> ReviewView | None:
        """One review."""
        ...

    async def decide_review(self, review_id: UUID, *, approve: bool, reviewer: str, note: str) -> ReviewView:
        """Approve or reject a pending review and send the verdict to the strategy agent; raises
        :class:`ReviewNotFound`, :class:`ReviewConflict`, or :class:`CommandRefused` when no strategy
        agent listens (the review stays pending)."""
        ...


class TradingReadModel(Protocol):
    """Read access to what the order path stored (PostgreSQL)."""

    async def portfolio(self, account: str | None) -> PortfolioView | None:
        """The latest portfolio snapshot (of ``account``, or of the most recent account)."""
        ...

    async def positions(self, account: str | None, include_flat: bool) -> list[PositionView]:
        """Positions (open ones unless ``include_flat``)."""
        ...

    async def equity_curve(self, account: str | None, limit: int) -> list[EquityPoint]:
        """The equity of the latest ``limit`` portfolio snapshots, oldest first."""
        ...

    async def orders(self, *, status: str | None, symbol: str | None, limit: int, offset: int) -> Page[OrderView]:
        """Orders, newest first."""
        ...

    async def trades(self, *, symbol: str | None, limit: int, offset: int) -> Page[TradeView]:
        """Fills, newest first."""
        ...

    async def signals(self, *, symbol: str | None, limit: int, offset: int) -> Page[SignalView]:
        """Trade intents, newest first."""
        ...

    async def decisions(self, *, stage: str | None, limit: int, offset: int) -> Page[DecisionView]:
        """Risk and compliance decisions with their rationale, newest first."""
        ...
