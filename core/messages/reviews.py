"""Review contracts: a consensus that needs a person (MANUAL_REVIEW) and the person's verdict.

The strategy agent publishes a :class:`ReviewRequest` for a MANUAL_REVIEW that could trade: the
trade the consensus would make, valid until ``expires_at``. The orchestrator keeps the review queue
(PostgreSQL, or memory) behind the API; a person with the API token approves or rejects, and the
orchestrator publishes a :class:`ReviewDecision` carrying the stored request. On an approval the
strategy agent publishes the :class:`~core.messages.signals.TradeIntent` (id ``review_id``), which
then takes the normal path: risk, compliance, execution.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, model_validator

from core.domain import Direction, Side
from core.messages.base import Confidence, Payload, Price, Score, ShortText, Symbol, Timeframe, UtcDatetime, Venue
from core.messages.registry import register
from core.messages.signals import StrategyName, StrategyVote

MAX_REVIEW_WAIT = timedelta(days=7)
"""The longest a review may wait for a person."""

Reviewer = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]


@register
class ReviewRequest(Payload):
    """A MANUAL_REVIEW consensus that could trade, waiting for a person until ``expires_at``.

    ``review_id`` is the id of the intent an approval publishes (the one an EXECUTE on this candle
    would have had), so approving twice can never trade twice: risk and compliance dedupe intent ids.
    """

    TYPE = "review_request"

    review_id: UUID
    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    side: Side
    direction: Direction
    reference_price: Price
    stop_loss: Price | None = None
    take_profit: Price | None = None
    score: Score
    variance: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    confidence: Confidence
    method: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
    requested_at: UtcDatetime
    expires_at: UtcDatetime
    strategies: tuple[StrategyName, ...] = Field(default=(), max_length=64)
    votes: tuple[StrategyVote, ...] = Field(default=(), max_length=64)
    rationale: ShortText = ""

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.expires_at <= self.requested_at:
            raise ValueError("expires_at must be after requested_at")
        if self.expires_at - self.requested_at > MAX_REVIEW_WAIT:
            raise ValueError("a review may wait at most 7 days")
        if self.direction not in (Direction.LONG, Direction.SHORT, Direction.EXIT):
            raise ValueError("a review proposes a LONG, SHORT or EXIT trade")
        return self


@register
class ReviewDecision(Payload):
    """A person's verdict on a review, published by the orchestrator (the only publisher of
    ``review.decision.*``). It carries the stored request, so the strategy agent needs no memory of
    it (a restarted strategy agent acts on an approval all the same)."""

    TYPE = "review_decision"

    review_id: UUID
    approved: bool
    reviewer: Reviewer
    note: ShortText = ""
    decided_at: UtcDatetime
    request: ReviewRequest

    @model_validator(mode="after")
    def _same_review(self) -> Self:
        if self.request.review_id != self.review_id:
            raise ValueError("the request carried is another review's")
        return self
