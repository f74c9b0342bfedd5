"""The consensus engine: exact boundaries, buy/sell symmetry, monotonicity (Hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.domain import ConsensusOutcome, Direction
from core.messages import StrategyVote
from strategies.consensus import ConsensusConfig, fuse, score_for

EX, MR, RJ = ConsensusOutcome.EXECUTE, ConsensusOutcome.MANUAL_REVIEW, ConsensusOutcome.REJECT


def vote(name: str, direction: Direction, score: float, confidence: float = 1.0) -> StrategyVote:
    return StrategyVote(
        strategy=name,
        venue="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        direction=direction,
        score=score,
        confidence=confidence,
    )


def longs(*scores: float) -> list[StrategyVote]:
    return [vote(f"s{i}", Direction.LONG, s) for i, s in enumerate(scores)]


DEFAULT = ConsensusConfig()

# -- the specified rule at its exact boundaries ----------------------------------------------------


def test_threshold_is_inclusive() -> None:
    assert fuse(longs(75.0), DEFAULT).outcome is EX
    assert fuse(longs(math.nextafter(75.0, 0)), DEFAULT).outcome is RJ
    assert fuse(longs(70.0, 80.0), DEFAULT).outcome is EX  # mean 75, variance 25
    r = fuse(longs(74.0, 76.0), DEFAULT)
    assert (r.score, r.variance, r.outcome) == (75.0, 1.0, EX)


def test_variance_limit_is_inclusive_and_exact() -> None:
    # scores 72, 76, 84, 88: mean 80, population variance (64 + 16 + 16 + 64) / 4 = 40 exactly
    r = fuse(longs(72, 76, 84, 88), DEFAULT)
    assert (r.score, r.variance, r.outcome, r.direction) == (80.0, 40.0, EX, Direction.LONG)
    r = fuse(longs(71, 76, 84, 89), DEFAULT)  # variance (81 + 16 + 16 + 81) / 4 = 48.5
    assert (r.score, r.variance, r.outcome) == (80.0, 48.5, MR)
    # above the limit is MANUAL_REVIEW even with a score under the threshold
    r = fuse(longs(50, 70), DEFAULT)
    assert (r.score, r.variance, r.outcome) == (60.0, 100.0, MR)
    # at the limit with a low score is a REJECT
    r = fuse(longs(52, 56, 64, 68), DEFAULT)
    assert (r.score, r.variance, r.outcome) == (60.0, 40.0, RJ)


def test_weights_and_confidence_enter_the_weighted_mean() -> None:
    votes = [vote("a", Direction.LONG, 80, 1.0), vote("b", Direction.LONG, 70, 0.5)]
    # masses 1 and 0.5*2 = 1 -> mean 75, variance 25
    r = fuse(votes, ConsensusConfig(weights={"b": 2.0}))
    assert (r.score, r.variance, r.outcome) == (75.0, 25.0, EX)
    # unweighted: masses 1 and 0.5 -> (80 + 35) / 1.5
    assert fuse(votes, DEFAULT).score == pytest.approx(115 / 1.5)
    r = fuse(votes, ConsensusConfig(weights={"b": 0.0}))
    assert (r.score, r.variance) == (80.0, 0.0)
    assert fuse(votes, ConsensusConfig(weights={"a": 0.0, "b": 0.0})).outcome is RJ
    assert fuse([], DEFAULT).outcome is RJ


def test_opposing_votes_count_against_and_raise_the_variance() -> None:
    # a tie: for LONG the scores are 90 and 100 - 90 = 10 -> 50, variance 1600 -> a human decides
    r = fuse([vote("a", Direction.LONG, 90), vote("b", Direction.EXIT, 90)], DEFAULT)
    assert (r.outcome, r.direction, r.score, r.variance) == (MR, Direction.FLAT, 50.0, 1600.0)
    # a tie within the variance limit is a REJECT
    r = fuse([vote("a", Direction.LONG, 50), vote("b", Direction.SHORT, 50)], DEFAULT)
    assert (r.outcome, r.direction, r.variance) == (RJ, Direction.FLAT, 0.0)
    r = fuse([vote("a", Direction.LONG, 95), vote("b", Direction.SHORT, 80)], DEFAULT)
    # for LONG: scores 95 and 100 - 80 = 20 -> mean 57.5, variance 1406.25
    assert (r.direction, r.score, r.variance, r.outcome) == (Direction.LONG, 57.5, 1406.25, MR)


def test_a_flat_consensus_never_executes() -> None:
    r = fuse([vote("a", Direction.FLAT, 95)], DEFAULT)
    assert r.outcome is RJ
    assert r.direction is Direction.FLAT


def test_bayesian_fusion() -> None:
    cfg = ConsensusConfig(method="bayesian")
    assert fuse(longs(80.0), cfg).score == pytest.approx(80.0)  # one vote, mass 1: its own probability
    two = fuse(longs(80.0, 80.0), cfg).score  # two independent 80% opinions: 16:1 odds
    assert two == pytest.approx(100 * 16 / 17)
    assert two > 80
    tie = fuse([vote("a", Direction.LONG, 80), vote("b", Direction.SHORT, 80)], cfg)
    assert (tie.outcome, tie.direction) == (MR, Direction.FLAT)  # scores 80 and 20: variance 900
    assert tie.score == pytest.approx(50.0)
    assert fuse(longs(100.0, 100.0), cfg).score <= 100.0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="method"):
        ConsensusConfig(method="majority")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        ConsensusConfig(threshold=101)
    with pytest.raises(ValueError, match="variance_limit"):
        ConsensusConfig(variance_limit=-1)
    with pytest.raises(ValueError, match="weight"):
        ConsensusConfig(weights={"a": float("nan")})


# -- properties ----------------------------------------------------------------------------------

DIRS = st.sampled_from([Direction.LONG, Direction.SHORT, Direction.EXIT, Direction.FLAT])
scores = st.floats(min_value=0, max_value=100, allow_nan=False)
confidences = st.floats(min_value=0, max_value=1, allow_nan=False)
vote_lists = st.lists(st.tuples(DIRS, scores, confidences), min_size=1, max_size=8).map(
    lambda items: [vote(f"s{i}", d, s, c) for i, (d, s, c) in enumerate(items)]
)
methods = st.sampled_from(["weighted", "bayesian"])
SWAP = {Direction.LONG: Direction.SHORT, Direction.SHORT: Direction.LONG}


@settings(max_examples=300, deadline=None)
@given(vote_lists, methods, st.floats(0, 100), st.floats(0, 2000))
def test_buy_sell_symmetry(votes, method, threshold, limit) -> None:
    cfg = ConsensusConfig(method=method, threshold=threshold, variance_limit=limit)
    mirrored = [v.model_copy(update={"direction": SWAP.get(v.direction, v.direction)}) for v in votes]
    a, b = fuse(votes, cfg), fuse(mirrored, cfg)
    assert (a.outcome, a.score, a.variance) == (b.outcome, b.score, b.variance)
    assert b.direction is SWAP.get(a.direction, a.direction)


@settings(max_examples=300, deadline=None)
@given(vote_lists, methods, DIRS, st.data())
def test_score_is_monotonic_in_each_votes_score(votes, method, direction, data) -> None:
    cfg = ConsensusConfig(method=method)
    base, _ = score_for(votes, direction, cfg)
    i = data.draw(st.integers(0, len(votes) - 1))
    raised = data.draw(st.floats(min_value=votes[i].score, max_value=100))
    changed = list(votes)
    changed[i] = votes[i].model_copy(update={"score": raised})
    after, _ = score_for(changed, direction, cfg)
    if votes[i].direction is direction:
        assert after >= base
    else:
        assert after <= base


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(scores, confidences), min_size=1, max_size=8), methods, st.floats(0, 100))
def test_raising_agreeing_scores_never_undoes_an_execute(items, method, threshold) -> None:
    votes = [vote(f"s{i}", Direction.LONG, s, c) for i, (s, c) in enumerate(items)]
    cfg = ConsensusConfig(method=method, threshold=threshold, variance_limit=1e9)
    base = fuse(votes, cfg)
    bumped = fuse([v.model_copy(update={"score": min(100.0, v.score + 1)}) for v in votes], cfg)
    assert bumped.score >= base.score
    if base.outcome is EX:
        assert bumped.outcome is EX


@settings(max_examples=500, deadline=None)
@given(vote_lists, methods)
def test_outcome_boundaries_exactly_as_specified(votes, method) -> None:
    probe = fuse(votes, ConsensusConfig(method=method))
    assume(probe.direction is not Direction.FLAT)  # ties, FLAT and weightless votes always REJECT
    s, var = probe.score, probe.variance
    # score == threshold and variance == limit: EXECUTE (both bounds inclusive)
    assert fuse(votes, ConsensusConfig(method=method, threshold=s, variance_limit=var)).outcome is EX
    if var > 0:
        # variance one ulp above the limit: MANUAL_REVIEW, whatever the score
        below_var = math.nextafter(var, -math.inf)
        assert fuse(votes, ConsensusConfig(method=method, threshold=s, variance_limit=below_var)).outcome is MR
        assert fuse(votes, ConsensusConfig(method=method, threshold=100, variance_limit=below_var)).outcome is MR
    if s < 100:
        # score one ulp below the threshold with the variance within the limit: REJECT
        above_s = math.nextafter(s, math.inf)
        assert fuse(votes, ConsensusConfig(method=method, threshold=above_s, variance_limit=var)).outcome is RJ
