"""The review queue: MANUAL_REVIEW consensus decisions waiting for a person. Pure (the port and an
in-memory store; PostgreSQL's is ``infrastructure.database.timescale.reviews``).

A review is *pending* until a person approves or rejects it, or until its ``expires_at`` passes
(then it is *expired*: stored as pending, reported as expired, and it can no longer be decided).
Deciding is atomic: only a pending, unexpired review can be decided, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from core.messages.reviews import ReviewRequest


class ReviewState(StrEnum):
    """Where a review stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Review:
    """One review: the request, when it arrived, and the person's verdict once given."""

    request: ReviewRequest
    received_at: datetime
    decided: ReviewState | None = None
    """APPROVED or REJECTED once a person decided; ``None`` while undecided."""
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str = ""

    @property
    def review_id(self) -> UUID:
        """The review's id (the intent id an approval publishes)."""
        return self.request.review_id

    def state(self, now: datetime) -> ReviewState:
        """The state at ``now`` (an undecided review past its expiry is EXPIRED)."""
        if self.decided is not None:
            return self.decided
        return ReviewState.EXPIRED if now >= self.request.expires_at else ReviewState.PENDING


class ReviewNotFound(LookupError):
    """No review has this id."""


class ReviewClosed(Exception):
    """The review can no longer be decided (already decided, or expired)."""

    def __init__(self, review: Review, state: ReviewState) -> None:
        super().__init__(f"review {review.review_id} is {state.value}: it can no longer be decided")
        self.review = review
        self.state = state


class ReviewStore(Protocol):
    """Where the review queue lives (PostgreSQL in the stack, memory in tests and the embedded run)."""

    async def add(self, request: ReviewRequest, received_at: datetime) -> bool:
        """Queue a request; False when a review with its id exists (a redelivery: nothing changes)."""
        ...

    async def get(self, review_id: UUID) -> Review | None:
        """One review."""
        ...

    async def list(self, state: ReviewState | None, now: datetime, limit: int, offset: int) -> tuple[list[Review], int]:
        """Reviews (of ``state`` at ``now``), newest request first, and how many match."""
        ...

    async def decide(self, review_id: UUID, verdict: ReviewState, reviewer: str, note: str, now: datetime) -> Review:
        """Decide a pending, unexpired review (APPROVED or REJECTED), atomically; raises
        :class:`ReviewNotFound` or :class:`ReviewClosed`."""
        ...

    async def reopen(self, review_id: UUID, verdict: ReviewState) -> None:
        """Undo a verdict that could not be delivered (the review is pending again)."""
        ...


class InMemoryReviewStore:
    """:class:`ReviewStore` in memory, bounded to the newest ``keep`` reviews."""

    def __init__(self, keep: int = 10_000) -> None:
        self._reviews: dict[UUID, Review] = {}
        self._keep = keep

    async def add(self, request: ReviewRequest, received_at: datetime) -> bool:
        """See the port."""
        if request.review_id in self._reviews:
            return False
        self._reviews[request.review_id] = Review(request, received_at)
        while len(self._reviews) > self._keep:
            del self._reviews[next(iter(self._reviews))]
        return True

    async def get(self, review_id: UUID) -> Review | None:
        """See the port."""
        return self._reviews.get(review_id)

    async def list(self, state: ReviewState | None, now: datetime, limit: int, offset: int) -> tuple[list[Review], int]:
        """See the port."""
        matching = [r for r in self._reviews.values() if state is None or r.state(now) is state]
        matching.sort(key=lambda r: (r.request.requested_at, str(r.review_id)), reverse=True)
        return matching[offset : offset + limit], len(matching)

    async def decide(self, review_id: UUID, verdict: ReviewState, reviewer: str, note: str, now: datetime) -> Review:
        """See the port."""
        review = self._reviews.get(review_id)
        if review is None:
            raise ReviewNotFound(str(review_id))
        state = review.state(now)
        if state is not ReviewState.PENDING:
            raise ReviewClosed(review, state)
        decided = replace(review, decided=verdict, decided_at=now, decided_by=reviewer, note=note)
        self._reviews[review_id] = decided
        return decided

    async def reopen(self, review_id: UUID, verdict: ReviewState) -> None:
        """See the port."""
        review = self._reviews.get(review_id)
        if review is not None and review.decided is verdict:
            self._reviews[review_id] = replace(review, decided=None, decided_at=None, decided_by=None, note="")
