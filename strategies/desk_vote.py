"""The AI desk as one more voter in the consensus engine. Pure.

A :class:`~core.messages.DeskDecision` becomes a :class:`~core.messages.StrategyVote` of strategy
``desk`` (weight ``weights["desk"]``, ``TRADESWARM_STRATEGY_DESK_WEIGHT``), valid for a while after
the desk decided; the strategy agent adds it to the votes of the snapshots on which some strategy
votes, so LLM and rule-based strategies are fused by the same rules (``docs/strategies.md``):

* an approved (APPROVE/ADJUST) BUY votes LONG, an approved SELL votes EXIT;
* a HOLD or a REJECT votes FLAT (the desk advises doing nothing);
* a NO_TRADE (a strong-tier role failed) casts no vote;

with score and confidence = the researcher's confidence (0.5 when it is missing).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.desk.roles import ResearchThesis, Role
from core.domain import Direction
from core.messages import DeskDecision, StrategyVote

DESK_STRATEGY = "desk"


def desk_vote(decision: DeskDecision) -> StrategyVote | None:
    """The vote the desk's decision casts (None for a NO_TRADE)."""
    if decision.verdict == "NO_TRADE":
        return None
    approved = decision.verdict in ("APPROVE", "ADJUST")
    if approved and decision.action == "BUY":
        direction = Direction.LONG
    elif approved and decision.action == "SELL":
        direction = Direction.EXIT
    else:
        direction = Direction.FLAT
    thesis = decision.report(Role.RESEARCHER)
    confidence = thesis.output.confidence if thesis and isinstance(thesis.output, ResearchThesis) else 0.5
    return StrategyVote(
        strategy=DESK_STRATEGY,
        strategy_version=decision.provider[:32],
        venue=decision.venue,
        symbol=decision.symbol,
        timeframe=decision.timeframe,
        direction=direction,
        score=round(confidence * 100.0, 4),
        confidence=confidence,
        rationale=f"desk {decision.provider} {decision.action} {decision.verdict}: {decision.reason}"[:2000],
    )


def still_valid(decided_at: datetime, at: datetime, ttl: timedelta) -> bool:
    """Whether a desk vote decided at ``decided_at`` still counts at ``at`` (never before it was made)."""
    return decided_at <= at < decided_at + ttl
