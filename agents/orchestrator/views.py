"""Conversions from the orchestrator's records to the API's response models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agents.orchestrator.commands import CommandRecord, progress
from agents.orchestrator.registry import AgentRecord
from core.messages import IndicatorSnapshot, StrategyVote
from core.trading.reviews import Review
from infrastructure.api.schemas import AckView, AgentView, CommandView, ReviewView, SnapshotView, VoteView


def agent_view(record: AgentRecord) -> AgentView:
    """The API view of one agent."""
    return AgentView(
        agent_id=record.agent_id,
        kind=record.kind,
        version=record.version,
        host=record.host,
        pid=record.pid,
        started_at=record.started_at,
        last_seen=record.last_seen,
        state=record.state.value,
        ready=record.ready,
        paused=record.paused,
        halted=record.halted,
        processed=record.processed,
        failed=record.failed,
        dead_lettered=record.dead_lettered,
        restarts=record.restarts,
        down_since=record.down_since,
    )


def command_view(record: CommandRecord, agents: Sequence[AgentRecord]) -> CommandView:
    """The API view of one command with its progress."""
    state = progress(record, agents)
    command = record.command
    return CommandView(
        command_id=command.command_id,
        kind=command.kind.value,
        target=command.target,
        reason=command.reason,
        issued_by=command.issued_by,
        issued_at=record.issued_at,
        state=state.state.value,
        complete=state.state.value == "complete",
        required_kinds=list(record.required_kinds),
        acknowledged=list(state.acknowledged),
        awaiting=list(state.awaiting),
        missing_kinds=list(state.missing_kinds),
        acks=[
            AckView(agent_id=a.agent_id, agent_kind=a.agent_kind, ok=a.ok, detail=a.detail, received_at=a.received_at)
            for a in sorted(record.acks.values(), key=lambda a: a.received_at)
        ],
    )


def snapshot_view(snapshot: IndicatorSnapshot) -> SnapshotView:
    """The API view of one indicator snapshot."""
    return SnapshotView(
        venue=snapshot.venue,
        symbol=snapshot.symbol,
        timeframe=snapshot.timeframe,
        open_time=snapshot.open_time,
        close_time=snapshot.close_time,
        open=snapshot.open,
        high=snapshot.high,
        low=snapshot.low,
        close=snapshot.close,
        volume=snapshot.volume,
        indicators=dict(snapshot.values),
        patterns=dict(snapshot.patterns),
        regime=snapshot.regime.value,
    )


def _vote_view(v: StrategyVote) -> VoteView:
    return VoteView(
        strategy=v.strategy, direction=v.direction.value, score=v.score, confidence=v.confidence, rationale=v.rationale
    )


def review_view(review: Review, now: datetime) -> ReviewView:
    """The API view of one review at ``now``."""
    r = review.request
    return ReviewView(
        review_id=r.review_id,
        state=review.state(now).value,
        venue=r.venue,
        symbol=r.symbol,
        timeframe=r.timeframe,
        side=r.side.value,
        direction=r.direction.value,  # type: ignore[arg-type]
        reference_price=r.reference_price,
        stop_loss=r.stop_loss,
        take_profit=r.take_profit,
        score=r.score,
        variance=r.variance,
        method=r.method,
        strategies=list(r.strategies),
        votes=[_vote_view(v) for v in r.votes],
        rationale=r.rationale,
        requested_at=r.requested_at,
        expires_at=r.expires_at,
        decided_at=review.decided_at,
        decided_by=review.decided_by,
        note=review.note,
    )
