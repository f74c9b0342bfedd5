"""The vectorised twins equal their per-row forms on random series (hypothesis).

* each built-in strategy's :meth:`Strategy.vote_rows` lists exactly the rows on which
  :meth:`Strategy.vote` votes (for every position kind), and skipping rows leaves the state that
  voting on them leaves (:attr:`VoteRows.state_before`, :meth:`Strategy.skip_rows`);
* :class:`BookTwin` over a book of several strategies with missing indicators;
* :meth:`IndicatorEngine.update_many` over random chunks equals :meth:`IndicatorEngine.update` row
  by row (values bit for bit, NaN where absent, patterns, regime, warm-up).
"""

from __future__ import annotations

import copy
import itertools
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.technical_analysis.engine import IndicatorEngine
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from agents.technical_analysis.snapshot import build_snapshot
from core.columns import REGIME_CODE, REGIMES
from core.domain import MarketRegime
from core.trusted import trusted_candle
from strategies.base import FLAT, Columns, Position, Strategy
from strategies.registry import build_specs
from strategies.runner import BookTwin, StrategyBook

T0 = datetime(2024, 1, 1, tzinfo=UTC)
POSITIONS = {"flat": FLAT, "long": Position(Decimal(1)), "short": Position(Decimal(-1))}

finite = st.floats(min_value=-50.0, max_value=150.0, allow_nan=False, width=64)
# values with exact repeats and zeros (crossings that touch, diffs of exactly 0)
value = st.one_of(finite, st.sampled_from([0.0, 1.0, 30.0, 50.0, 70.0, 100.0]))


def snapshot_of(values: dict[str, float], close: float, regime: MarketRegime, i: int) -> object:
    price = Decimal(repr(close))
    candle = trusted_candle("binance", "BTC/USDT", "1h", T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1),
                            price, price, price, price, Decimal(1), i)  # fmt: skip
    return build_snapshot(candle, values, {}, regime)


def per_row_votes(strategy: Strategy[Any], columns: Columns, position: Position) -> tuple[list[int], object]:
    """Rows where vote() votes (on a copy of the strategy), and the state it ends in."""
    s = copy.deepcopy(strategy)
    rows = []
    for i in range(len(columns)):
        values = {k: float(v[i]) for k, v in columns.values.items()}
        snap = snapshot_of(values, float(columns.close[i]), REGIMES[int(columns.regime[i])], i)
        if s.vote(snap, position) is not None:  # type: ignore[arg-type]
            rows.append(i)
    return rows, s.twin_state()


STRATEGIES = [
    ("sma_cross", {"fast": 3, "slow": 5}),
    ("sma_cross", {"fast": 3, "slow": 5, "allow_short": True}),
    ("ema_cross", {"fast": 3, "slow": 5, "allow_short": True}),
    ("rsi_reversion", {}),
    ("rsi_reversion", {"allow_short": True}),
    ("bollinger_reversion", {}),
    ("bollinger_reversion", {"allow_short": True}),
    ("bollinger_breakout", {"allow_short": True}),
    ("bollinger_breakout", {}),
    ("macd_momentum", {}),
    ("macd_momentum", {"allow_short": True}),
    ("regime_filter", {}),
    ("regime_filter", {"allow_short": True}),
]


@st.composite
def columns_for(draw: st.DrawFn, strategy: Strategy[Any]) -> Columns:
    n = draw(st.integers(min_value=1, max_value=40))
    values = {key: np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=np.float64)
              for key in strategy.indicators}  # fmt: skip
    close = np.array(draw(st.lists(st.floats(min_value=0.5, max_value=150.0), min_size=n, max_size=n)))
    regime = np.array(draw(st.lists(st.sampled_from(list(REGIME_CODE.values())), min_size=n, max_size=n)),
                      dtype=np.int8)  # fmt: skip
    return Columns(values, close, regime)


@pytest.mark.parametrize(("name", "params"), STRATEGIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(STRATEGIES)])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_vote_rows_are_exactly_the_rows_vote_votes_on(
    name: str, params: dict[str, object], data: st.DataObject
) -> None:
    strategy = build_specs([name], {name: params}, {})[0].create()
    if hasattr(strategy, "_last_nonzero"):
        vars(strategy)["_last_nonzero"] = data.draw(st.sampled_from([0.0, 1.5, -2.0]))
    columns = data.draw(columns_for(strategy))
    twin = strategy.vote_rows(columns)
    assert twin is not None
    for kind, position in POSITIONS.items():
        rows, end_state = per_row_votes(strategy, columns, position)
        assert twin.for_position(position).tolist() == rows, kind
        if twin.state_before is not None:
            assert twin.state_before[0] == strategy.twin_state()
            assert twin.state_before[-1] == end_state
    # skipping every row (as if none voted) leaves the state that voting on them leaves
    skipped = copy.deepcopy(strategy)
    skipped.skip_rows(columns)
    assert skipped.twin_state() == per_row_votes(strategy, columns, FLAT)[1]
    if twin.state_before is not None:  # and so does jumping to a row's state_before
        k = data.draw(st.integers(min_value=0, max_value=len(columns)))
        head = Columns({key: v[:k] for key, v in columns.values.items()}, columns.close[:k], columns.regime[:k])
        assert twin.state_before[k] == per_row_votes(strategy, head, FLAT)[1]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_book_twin_finds_the_first_vote_and_skips_exactly(data: st.DataObject) -> None:
    specs = build_specs(["sma_cross", "rsi_reversion", "macd_momentum"],
                        {"sma_cross": {"fast": 3, "slow": 5, "allow_short": True}}, {})  # fmt: skip
    book = StrategyBook(specs)
    n = data.draw(st.integers(min_value=1, max_value=30))
    keys = ("sma_3", "sma_5", "rsi_14", "macd_hist")
    raw = {k: data.draw(st.lists(st.one_of(value, st.just(math.nan)), min_size=n, max_size=n)) for k in keys}
    values = {k: np.array(v, dtype=np.float64) for k, v in raw.items()}
    close = np.full(n, 100.0)
    regime = np.zeros(n, dtype=np.int8)
    position = data.draw(st.sampled_from(list(POSITIONS.values())))
    twin = BookTwin(book, Columns(values, close, regime))
    first = twin.next_vote(0, n, position)
    # the per-row book on a copy: the first row with a vote
    probe = copy.deepcopy(book)
    quiet = copy.deepcopy(book)
    expected = n
    for i in range(n):
        snap = snapshot_of({k: float(v[i]) for k, v in values.items() if math.isfinite(v[i])}, 100.0,
                           MarketRegime.UNKNOWN, i)  # fmt: skip
        if probe.evaluate(snap, position):  # type: ignore[arg-type]
            expected = i
            break
        quiet.evaluate(snap, position)  # type: ignore[arg-type]
    assert first == expected
    # skipping the quiet rows leaves every strategy as evaluating them left it, missing ones reported
    twin.skip(0, first)
    assert [s.twin_state() for _, s, _ in book._entries] == [s.twin_state() for _, s, _ in quiet._entries]
    assert book._reported_missing == quiet._reported_missing
    assert twin.valid_at(first)


GROUPS: list[tuple[Any, ...]] = [
    ("sma", "ema", "rsi"),
    ("macd", "bbands", "atr"),
    ("adx", "stoch", "obv", "mfi"),
    ("vwap", "volatility", "patterns"),
    ("adx", "volatility", "sma"),  # the regime label
]


@pytest.mark.parametrize("groups", GROUPS, ids=["-".join(g) for g in GROUPS])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), cuts=st.lists(st.integers(1, 120), min_size=1, max_size=6))
def test_update_many_equals_update_row_by_row(groups: tuple[str, ...], seed: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(seed)
    n = 260
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close = np.round(close, 2)
    opens = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(opens, close) + np.round(rng.uniform(0, 1, n), 2)
    low = np.minimum(opens, close) - np.round(rng.uniform(0, 1, n), 2)
    volume = np.round(rng.gamma(2.0, 10.0, n), 3)
    settings_ = TechnicalAnalysisSettings(
        indicators=cast(Any, groups), sma_periods=(5, 12), ema_periods=(6, 13), history_candles=0
    )
    one, block = IndicatorEngine(settings_), IndicatorEngine(settings_)
    expected = [one.update(float(opens[i]), float(high[i]), float(low[i]), float(close[i]), float(volume[i]))
                for i in range(n)]  # fmt: skip
    bounds = sorted({0, n, *(c for c in np.cumsum(cuts) if c < n)})
    for a, b in itertools.pairwise(bounds):
        got = block.update_many(opens[a:b], high[a:b], low[a:b], close[a:b], volume[a:b])
        for j in range(b - a):
            want = expected[a + j]
            assert bool(got.produced[j]) == (want is not None)
            if want is None:
                continue
            values = {k: float(v[j]) for k, v in got.values.items() if math.isfinite(v[j])}
            assert values == want.values  # bit for bit (== on floats)
            assert {k: int(v[j]) for k, v in got.patterns.items() if v[j]} == want.patterns
            assert REGIMES[int(got.regime[j])] is want.regime
    assert one.candles_seen == block.candles_seen
