"""Built-in strategies on real data, the strategy registry and failure containment."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import TypeVar

import numpy as np
import pytest

from agents.technical_analysis.engine import IndicatorEngine
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from agents.technical_analysis.snapshot import build_snapshot
from core.domain import Direction, MarketRegime
from core.errors import ConfigurationError
from core.messages import IndicatorSnapshot, StrategyVote
from strategies import BUILTINS, FLAT, Position, Strategy, StrategyBook, StrategyParams, build_specs
from strategies import registry as registry_module
from strategies.builtin import SmaCross
from tests.analysis.candles import load_candles

LONG_POS = Position(Decimal("0.5"))

T = TypeVar("T")


def must(value: T | None) -> T:
    """``value``, asserted not to be None."""
    assert value is not None
    return value


SHORT_POS = Position(Decimal("-0.5"))


@pytest.fixture(scope="module")
def snapshots() -> list[IndicatorSnapshot]:
    """Snapshots of the real BTC/USDT 1h candles with every indicator enabled."""
    engine = IndicatorEngine(TechnicalAnalysisSettings())
    out = []
    for candle in load_candles():
        r = engine.update(
            float(candle.open), float(candle.high), float(candle.low), float(candle.close), float(candle.volume)
        )
        if r is not None:
            out.append(build_snapshot(candle, r.values, r.patterns, r.regime))
    return out


def numpy_crossings(close: np.ndarray, fast: int, slow: int, start: int) -> list[tuple[int, int]]:
    """(index, +1 up / -1 down) crossings of plain numpy rolling means, from index ``start`` on.

    Backtrader's CrossOver semantics: a crossing at i when the last non-zero difference before i
    has the other sign than the (non-zero) difference at i.
    """

    def sma(n: int) -> np.ndarray:
        out = np.full(close.shape, np.nan)
        out[n - 1 :] = np.lib.stride_tricks.sliding_window_view(close, n).mean(axis=1)
        return out

    diff = sma(fast) - sma(slow)
    events = []
    last = 0.0
    for i in range(start, len(close)):
        d = diff[i]
        if last < 0 < d:
            events.append((i, 1))
        elif d < 0 < last:
            events.append((i, -1))
        if d != 0:
            last = d
    return events


def test_sma_cross_finds_exactly_the_numpy_crossings_on_real_data(snapshots) -> None:
    close = np.array([float(s.close) for s in snapshots])
    strategy = SmaCross(SmaCross.Params(fast=10, slow=30, allow_short=True))
    position = FLAT
    got = []
    for i, snap in enumerate(snapshots):
        vote = strategy.vote(snap, position)
        if vote is None:
            continue
        # follow the votes: LONG -> long, SHORT -> short, EXIT -> flat
        position = {Direction.LONG: LONG_POS, Direction.SHORT: SHORT_POS, Direction.EXIT: FLAT}[vote.direction]
        got.append((i, vote.direction))
    # every crossing gives exactly one vote, in this position-following run, so the directions are
    # fixed by the crossing and the position before it
    expected = []
    position_sign = 0
    for i, sign in numpy_crossings(close, 10, 30, 0):
        if sign > 0:
            direction = Direction.LONG if position_sign == 0 else Direction.EXIT
            position_sign = 1 if position_sign == 0 else 0
        else:
            direction = Direction.SHORT if position_sign == 0 else Direction.EXIT
            position_sign = -1 if position_sign == 0 else 0
        expected.append((i, direction))
    assert len(expected) > 50
    assert got == expected


def test_sma_cross_without_shorts_goes_long_on_up_and_exits_on_down(snapshots) -> None:
    close = np.array([float(s.close) for s in snapshots])
    strategy = SmaCross(SmaCross.Params())
    position = FLAT
    got = []
    scores = set()
    for i, snap in enumerate(snapshots):
        vote = strategy.vote(snap, position)
        if vote is not None:
            position = LONG_POS if vote.direction is Direction.LONG else FLAT
            got.append((i, vote.direction))
            scores.add((vote.score, vote.confidence))
    crossings = numpy_crossings(close, 10, 30, 0)
    first_up = next(k for k, (_, s) in enumerate(crossings) if s > 0)
    expected = [(i, Direction.LONG if s > 0 else Direction.EXIT) for i, s in crossings[first_up:]]
    assert got == expected
    assert scores == {(90.0, 1.0)}
    assert strategy.indicators == ("sma_10", "sma_30")


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_votes_on_real_data_in_valid_directions(name, snapshots) -> None:
    strategy = BUILTINS[name](BUILTINS[name].Params())
    assert set(strategy.indicators) <= set(snapshots[0].values), "defaults match the TA agent's defaults"
    position = FLAT
    directions = set()
    for snap in snapshots:
        vote = strategy.vote(snap, position)
        if vote is None:
            continue
        assert isinstance(vote, StrategyVote)
        assert vote.strategy == name
        assert vote.symbol == snap.symbol
        assert 0 <= vote.score <= 100
        directions.add(vote.direction)
        if vote.direction is Direction.LONG:
            position = LONG_POS
        elif vote.direction is Direction.EXIT:
            position = FLAT
    assert Direction.SHORT not in directions, "shorts are off by default"
    if name == "regime_filter":
        assert {Direction.LONG, Direction.FLAT} <= directions
    else:
        assert {Direction.LONG, Direction.EXIT} <= directions


def _snap(snapshots, **values) -> IndicatorSnapshot:
    base = snapshots[0]
    return base.model_copy(update={"values": {**base.values, **values}})


def test_rsi_reversion_levels(snapshots) -> None:
    rsi = BUILTINS["rsi_reversion"](BUILTINS["rsi_reversion"].Params())
    assert must(rsi.vote(_snap(snapshots, rsi_14=20.0), FLAT)).direction is Direction.LONG
    assert rsi.vote(_snap(snapshots, rsi_14=50.0), FLAT) is None
    assert must(rsi.vote(_snap(snapshots, rsi_14=80.0), LONG_POS)).direction is Direction.EXIT
    assert rsi.vote(_snap(snapshots, rsi_14=80.0), FLAT) is None
    deeper = must(rsi.vote(_snap(snapshots, rsi_14=10.0), FLAT))
    shallow = must(rsi.vote(_snap(snapshots, rsi_14=29.0), FLAT))
    assert deeper.score > shallow.score >= 75


def test_regime_filter_stands_aside_in_high_volatility(snapshots) -> None:
    f = BUILTINS["regime_filter"](BUILTINS["regime_filter"].Params())
    hv = snapshots[0].model_copy(update={"regime": MarketRegime.HIGH_VOLATILITY})
    assert must(f.vote(hv, FLAT)).direction is Direction.FLAT
    up = snapshots[0].model_copy(update={"regime": MarketRegime.TRENDING_UP})
    assert must(f.vote(up, FLAT)).direction is Direction.LONG
    down = snapshots[0].model_copy(update={"regime": MarketRegime.TRENDING_DOWN})
    assert must(f.vote(down, LONG_POS)).direction is Direction.EXIT
    assert f.vote(down, FLAT) is None


# -- registry ------------------------------------------------------------------------------------


def test_build_specs_validates_parameters_with_clear_errors() -> None:
    specs = build_specs(["sma_cross", "rsi_reversion"], {"sma_cross": {"fast": 5, "slow": 20}}, {"rsi_reversion": 0.5})
    assert [s.name for s in specs] == ["sma_cross", "rsi_reversion"]
    assert specs[0].params == SmaCross.Params(fast=5, slow=20)
    assert specs[1].weight == 0.5
    with pytest.raises(ConfigurationError, match=r"unknown strategy 'nope'.*available: bollinger_breakout"):
        build_specs(["nope"])
    with pytest.raises(ConfigurationError, match=r"sma_cross.fastt: Extra inputs are not permitted"):
        build_specs(["sma_cross"], {"sma_cross": {"fastt": 3}})
    with pytest.raises(ConfigurationError, match=r"fast \(40\) must be below slow \(30\)"):
        build_specs(["sma_cross"], {"sma_cross": {"fast": 40}})
    with pytest.raises(ConfigurationError, match="'ema_cross', which is not enabled"):
        build_specs(["sma_cross"], {"ema_cross": {"fast": 3}})
    with pytest.raises(ConfigurationError, match="listed twice"):
        build_specs(["sma_cross", "sma_cross"])
    with pytest.raises(ConfigurationError, match="weight"):
        build_specs(["sma_cross"], weights={"sma_cross": -1})


def test_params_models_are_frozen_and_forbid_extras() -> None:
    for cls in BUILTINS.values():
        params = cls.Params()
        assert params.model_config.get("frozen") is True
        assert params.model_config.get("extra") == "forbid"
        with pytest.raises(Exception):
            params.confidence = 0.1  # type: ignore[attr-defined]


class _PluginParams(StrategyParams):
    level: float = 1.0


class PluginStrategy(Strategy[_PluginParams]):
    name = "plugin_strategy"
    version = "2"
    Params = _PluginParams

    @property
    def indicators(self) -> tuple[str, ...]:
        return ("sma_10",)

    def vote(self, snapshot, position):
        return self.make_vote(snapshot, Direction.LONG, 80, 1.0, "plugin")


def _fake_entry_points(*pairs):
    def load_factory(obj):
        return lambda: obj

    eps = [SimpleNamespace(name=n, value=f"tests.analysis:{n}", load=load_factory(o)) for n, o in pairs]
    return lambda group: eps if group == "tradeswarm.strategies" else []


def test_third_party_strategies_load_from_the_entry_point_group(monkeypatch) -> None:
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(("plugin_strategy", PluginStrategy)))
    specs = build_specs(["plugin_strategy", "sma_cross"], {"plugin_strategy": {"level": 2}})
    assert specs[0].cls is PluginStrategy
    assert specs[0].version == "2"
    with pytest.raises(ConfigurationError, match="plugin_strategy.level"):
        build_specs(["plugin_strategy"], {"plugin_strategy": {"level": "x"}})


def test_bad_plugins_are_reported(monkeypatch) -> None:
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(("not_a_strategy", object)))
    with pytest.raises(ConfigurationError, match="not a Strategy subclass"):
        build_specs(["sma_cross"])
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(("other_name", PluginStrategy)))
    with pytest.raises(ConfigurationError, match="registered as 'other_name'"):
        build_specs(["sma_cross"])
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(("sma_cross", PluginStrategy)))
    with pytest.raises(ConfigurationError):
        build_specs(["sma_cross"])


# -- containment -----------------------------------------------------------------------------------


class _BoomParams(StrategyParams):
    pass


class Boom(Strategy[_BoomParams]):
    name = "boom"
    Params = _BoomParams

    @property
    def indicators(self) -> tuple[str, ...]:
        return ()

    def vote(self, snapshot, position):
        raise ZeroDivisionError("strategy bug")


def test_a_raising_strategy_is_contained_and_reported(monkeypatch, snapshots) -> None:
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(("boom", Boom)))
    specs = build_specs(["boom", "rsi_reversion"])
    errors = []
    book = StrategyBook(specs, on_error=lambda name, exc: errors.append((name, type(exc))))
    votes = book.evaluate(_snap(snapshots, rsi_14=10.0), FLAT)
    assert [v.strategy for v in votes] == ["rsi_reversion"]
    assert errors == [("boom", ZeroDivisionError)]


def test_missing_indicators_skip_the_strategy_and_are_reported_once(snapshots) -> None:
    specs = build_specs(["sma_cross"], {"sma_cross": {"fast": 7, "slow": 99}})
    missing = []
    book = StrategyBook(specs, on_missing=lambda name, keys: missing.append((name, keys)))
    assert book.evaluate(snapshots[0], FLAT) == []
    assert book.evaluate(snapshots[1], FLAT) == []
    assert missing == [("sma_cross", ("sma_7", "sma_99"))]
