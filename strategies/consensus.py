"""The consensus (signal-fusion) engine: many strategy votes in, one decision out. Pure.

Definitions (also in ``docs/strategies.md``). Each vote ``i`` has a direction ``d_i``, a score
``s_i`` in 0..100, a confidence ``c_i`` in 0..1 and its strategy's weight ``w_i >= 0``; its mass is
``m_i = c_i * w_i``. For a candidate direction ``D`` a vote counts *for* ``D`` with its score and
*against* ``D`` with the complement::

    x_i(D) = s_i            if d_i == D
    x_i(D) = 100 - s_i      otherwise

* weighted method: ``score(D) = sum(m_i * x_i(D)) / sum(m_i)`` (with all votes agreeing this is the
  design's ``sum(score * confidence) / sum(confidence)``, with weights);
* bayesian method: each vote is evidence of log-odds ``m_i * logit(x_i(D) / 100)`` (``x`` clipped to
  [0.5, 99.5]) added to even prior odds; ``score(D) = 100 * sigmoid(sum)``;
* ``variance(D)``: the disagreement *between directions* about ``D``, never the spread among votes
  that agree. A vote for another direction opposes ``D`` with its conviction beyond a coin flip,
  ``o_i = max(0, 2 * s_i - 100)`` (0..100); a vote for ``D`` opposes it with 0. The variance is the
  mass-weighted mean square of the opposition ``sum(m_i * o_i^2) / sum(m_i)`` (score² units, 0 when
  every vote agrees). Adding or raising an agreeing vote never raises it, so agreement can never turn
  an EXECUTE into a MANUAL_REVIEW.

The winning direction is the candidate (a direction some vote asked for) with the highest score.
A tie between the best two has direction FLAT and is a MANUAL_REVIEW when its variance (the largest
of the tied directions') is above the limit, a REJECT otherwise; a winning FLAT is never executed.
Then, with the winner's score and variance:

* ``variance > variance_limit``                              -> MANUAL_REVIEW
* ``variance <= variance_limit and score >= threshold``      -> EXECUTE
* ``variance <= variance_limit and score <  threshold``      -> REJECT

Votes with zero total mass (all confidences or weights zero) are a REJECT.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from core.domain import ConsensusOutcome, Direction
from core.messages import StrategyVote

Method = Literal["weighted", "bayesian"]

_DIRECTION_ORDER = (Direction.LONG, Direction.SHORT, Direction.EXIT, Direction.FLAT)
_LOGIT_CLIP = 0.5


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """How votes are fused: method, EXECUTE threshold, variance limit and per-strategy weights.

    A strategy missing from ``weights`` has weight ``default_weight``.
    """

    method: Method = "weighted"
    threshold: float = 75.0
    variance_limit: float = 1600.0
    weights: Mapping[str, float] | None = None
    default_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("weighted", "bayesian"):
            raise ValueError(f"unknown consensus method {self.method!r}; expected 'weighted' or 'bayesian'")
        if not 0.0 <= self.threshold <= 100.0 or not math.isfinite(self.threshold):
            raise ValueError("threshold must lie in 0..100")
        if not self.variance_limit >= 0.0 or not math.isfinite(self.variance_limit):
            raise ValueError("variance_limit must be a finite number >= 0")
        for name, w in (self.weights or {}).items():
            if not (math.isfinite(w) and w >= 0.0):
                raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {w}")
        if not (math.isfinite(self.default_weight) and self.default_weight >= 0.0):
            raise ValueError("default_weight must be a finite number >= 0")

    def weight(self, strategy: str) -> float:
        """The weight of ``strategy``."""
        if self.weights is None:
            return self.default_weight
        return self.weights.get(strategy, self.default_weight)


@dataclass(frozen=True, slots=True)
class ConsensusResult:
    """The fused decision: outcome, winning direction, its score and variance, and why."""

    outcome: ConsensusOutcome
    direction: Direction
    score: float
    variance: float
    rationale: str


def fuse(votes: Sequence[StrategyVote], config: ConsensusConfig) -> ConsensusResult:
    """Fuse ``votes`` into one decision (see the module docstring for the exact rules)."""
    masses = [v.confidence * config.weight(v.strategy) for v in votes]
    total = math.fsum(masses)
    if not votes or total <= 0.0:
        return ConsensusResult(ConsensusOutcome.REJECT, Direction.FLAT, 0.0, 0.0, "no vote carries any weight")
    candidates = [d for d in _DIRECTION_ORDER if any(v.direction is d for v in votes)]
    scored = [(d, *_score(votes, masses, total, d, config.method)) for d in candidates]
    scored.sort(key=lambda item: item[1], reverse=True)
    direction, score, variance = scored[0]
    summary = _summary(votes, masses)
    if len(scored) > 1 and scored[1][1] == score:
        # the disagreement of a tie is that of the most opposed of the tied directions (the same
        # whichever is listed first, so mirroring every vote changes nothing)
        variance = max(v for _, sc, v in scored if sc == score)
        tie = f"tie between {direction.value} and {scored[1][0].value} at {score:.2f}, variance {variance:.2f}"
        if variance > config.variance_limit:
            return ConsensusResult(
                ConsensusOutcome.MANUAL_REVIEW,
                Direction.FLAT,
                score,
                variance,
                f"{tie} > limit {config.variance_limit:g}: strategies disagree; {summary}",
            )
        return ConsensusResult(ConsensusOutcome.REJECT, Direction.FLAT, score, variance, f"{tie}; {summary}")
    head = f"{config.method} score {score:.2f} for {direction.value}, variance {variance:.2f}"
    if variance > config.variance_limit:
        return ConsensusResult(
            ConsensusOutcome.MANUAL_REVIEW,
            direction,
            score,
            variance,
            f"{head} > limit {config.variance_limit:g}: strategies disagree; {summary}",
        )
    if direction is Direction.FLAT:
        return ConsensusResult(
            ConsensusOutcome.REJECT, direction, score, variance, f"{head}: consensus is to stay flat; {summary}"
        )
    if score >= config.threshold:
        return ConsensusResult(
            ConsensusOutcome.EXECUTE, direction, score, variance, f"{head} >= threshold {config.threshold:g}; {summary}"
        )
    return ConsensusResult(
        ConsensusOutcome.REJECT, direction, score, variance, f"{head} < threshold {config.threshold:g}; {summary}"
    )


def score_for(votes: Sequence[StrategyVote], direction: Direction, config: ConsensusConfig) -> tuple[float, float]:
    """The score and variance of ``direction`` under ``config`` (``(0, 0)`` when no vote has mass)."""
    masses = [v.confidence * config.weight(v.strategy) for v in votes]
    total = math.fsum(masses)
    if total <= 0.0:
        return 0.0, 0.0
    return _score(votes, masses, total, direction, config.method)


def _score(
    votes: Sequence[StrategyVote], masses: Sequence[float], total: float, direction: Direction, method: Method
) -> tuple[float, float]:
    xs = [v.score if v.direction is direction else 100.0 - v.score for v in votes]
    mean = math.fsum(m * x for m, x in zip(masses, xs, strict=True)) / total
    variance = _opposition(votes, masses, total, direction)
    score = mean if method == "weighted" else _bayes(masses, xs)
    return _clamp_score(score), variance


def _opposition(votes: Sequence[StrategyVote], masses: Sequence[float], total: float, direction: Direction) -> float:
    """The mass-weighted mean square of the votes' opposition to ``direction`` (module docstring)."""
    return (
        math.fsum(
            m * max(0.0, 2.0 * v.score - 100.0) ** 2
            for v, m in zip(votes, masses, strict=True)
            if v.direction is not direction
        )
        / total
    )


def _bayes(masses: Sequence[float], xs: Sequence[float]) -> float:
    log_odds = 0.0
    for m, x in zip(masses, xs, strict=True):
        p = min(100.0 - _LOGIT_CLIP, max(_LOGIT_CLIP, x)) / 100.0
        log_odds += m * math.log(p / (1.0 - p))
    if log_odds >= 0:
        return 100.0 / (1.0 + math.exp(-log_odds))
    e = math.exp(log_odds)
    return 100.0 * e / (1.0 + e)


def _clamp_score(score: float) -> float:
    return min(100.0, max(0.0, score))


def _summary(votes: Sequence[StrategyVote], masses: Sequence[float]) -> str:
    parts = [f"{v.strategy}={v.direction.value}:{v.score:.0f}x{m:.2f}" for v, m in zip(votes, masses, strict=True)]
    return "votes " + ", ".join(parts)
