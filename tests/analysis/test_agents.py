"""The technical analysis and strategy agents on the in-memory bus: warm-up, idempotency,
decisions for every outcome, containment of failing strategies, commands, settings."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from agents.base import AgentContext
from agents.strategy.agent import StrategyAgent
from agents.strategy.settings import StrategySettings
from agents.technical_analysis.agent import TechnicalAnalysisAgent
from agents.technical_analysis.history import TickStoreHistory
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from agents.technical_analysis.snapshot import build_snapshot
from core.clock import SimulatedClock
from core.domain import CommandKind, ConsensusOutcome, Direction, MarketRegime, Side
from core.errors import ConfigurationError, PublishNotConfirmed
from core.logging import get_logger
from core.messages import Command, Envelope, IndicatorSnapshot, PositionUpdate, TradeIntent
from core.messages.codec import JsonCodec
from core.ports import QueueSpec
from core.routing import CONSENSUS, INDICATORS, INTENTS
from core.settings import Settings
from infrastructure.messaging.memory import InMemoryBus
from infrastructure.observability import metrics
from strategies import registry as registry_module
from strategies.builtin import SmaCross
from tests.analysis.candles import load_candles
from tests.analysis.replay import ReplayHistory
from tests.analysis.test_strategies import Boom, _fake_entry_points

CORE = Settings(exchange="binance", symbols=["BTC/USDT"], timeframes=["1h"])
TA_SETTINGS = TechnicalAnalysisSettings(indicators=("sma", "rsi", "atr", "adx", "volatility", "bbands"))


class Recorder:
    def __init__(self) -> None:
        self.items: list[Any] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.items.append(envelope.payload)


async def _bus_with(*topics) -> tuple[InMemoryBus, list[Recorder]]:
    bus = InMemoryBus()
    await bus.start()
    recorders = []
    for i, topic in enumerate(topics):
        rec = Recorder()
        await bus.subscribe(QueueSpec(name=f"test.q{i}", patterns=(topic.all(),)), rec)
        recorders.append(rec)
    return bus, recorders


def _ctx(bus, clock, agent_id="agent-test", instrument=False) -> AgentContext:
    return AgentContext(
        bus=bus, clock=clock, settings=CORE, agent_id=agent_id, log=get_logger("test"), instrument=instrument
    )


@pytest.fixture(scope="module")
def candles():
    return load_candles(limit=400)


# -- technical analysis agent ----------------------------------------------------------------------


async def test_history_warm_up_gives_the_same_snapshots_as_a_live_warm_up(candles) -> None:
    clock = SimulatedClock(candles[0].open_time)
    bus_a, (snaps_a,) = await _bus_with(INDICATORS)
    live = TechnicalAnalysisAgent(_ctx(bus_a, clock), TA_SETTINGS)
    await live.start()
    for c in candles:
        await bus_a.publish(Envelope.wrap(c, source="replay", clock=clock, ts_event=c.close_time))

    bus_b, (snaps_b,) = await _bus_with(INDICATORS)
    clock_b = SimulatedClock(candles[249].close_time)  # history ends at "now"
    warmed = TechnicalAnalysisAgent(_ctx(bus_b, clock_b), TA_SETTINGS, history=ReplayHistory(candles))
    await warmed.start()
    assert warmed.series[("binance", "BTC/USDT", "1h")].warmup_candles == 250
    for c in candles[250:]:
        await bus_b.publish(Envelope.wrap(c, source="replay", clock=clock_b, ts_event=c.close_time))

    a = [s for s in snaps_a.items if s.close_time > candles[249].close_time]
    assert len(a) == len(snaps_b.items) == 150
    assert [s.model_dump() for s in a] == [s.model_dump() for s in snaps_b.items]
    assert {s.regime for s in a} - {MarketRegime.UNKNOWN}, "regime labels are produced"


async def test_repeated_and_older_candles_are_ignored(candles) -> None:
    clock = SimulatedClock(candles[0].open_time)
    bus, (snaps,) = await _bus_with(INDICATORS)
    ta = TechnicalAnalysisAgent(_ctx(bus, clock), TechnicalAnalysisSettings(indicators=("sma",), sma_periods=(5,)))
    await ta.start()
    for c in candles[:20]:
        await bus.publish(Envelope.wrap(c, source="replay", clock=clock))
    n = len(snaps.items)
    await bus.publish(Envelope.wrap(candles[19], source="replay", clock=clock))  # a redelivery
    await bus.publish(Envelope.wrap(candles[3], source="replay", clock=clock))  # out of order
    assert len(snaps.items) == n == 20 - 4
    await bus.publish(Envelope.wrap(candles[20], source="replay", clock=clock))
    assert len(snaps.items) == n + 1
    expected = sum(float(c.close) for c in candles[16:21]) / 5
    assert snaps.items[-1].values["sma_5"] == pytest.approx(expected, rel=1e-12)


async def test_history_failure_falls_back_to_the_live_feed(candles) -> None:
    class Broken:
        async def recent_candles(self, *args, **kwargs):
            raise ConnectionError("influx down")

    bus, (snaps,) = await _bus_with(INDICATORS)
    ta = TechnicalAnalysisAgent(_ctx(bus, SimulatedClock()), TechnicalAnalysisSettings(indicators=("sma",)), Broken())
    await ta.start()
    for c in candles[:60]:
        await bus.publish(Envelope.wrap(c, source="replay", clock=SimulatedClock()))
    # SMA(50) exists from the 50th candle on: the first snapshot is the 50th candle's
    assert len(snaps.items) == 60 - 49


def test_trusted_snapshot_survives_full_validation(candles) -> None:
    snap = build_snapshot(candles[0], {"sma_10": 1.5, "rsi_14": 55.0}, {"cdl_doji": 100}, MarketRegime.RANGING)
    again = IndicatorSnapshot.model_validate(snap.model_dump())
    assert again == snap
    codec = JsonCodec()
    env = Envelope.wrap(snap, source="ta", clock=SimulatedClock())
    assert codec.decode(codec.encode(env)).payload == snap


# -- strategy agent ------------------------------------------------------------------------------------


def _snapshot(candles, i=300, regime=MarketRegime.RANGING, **values: float) -> IndicatorSnapshot:
    base: dict[str, float] = {"sma_10": 1.0, "sma_30": 1.0, "rsi_14": 50.0, "atr_14": 500.0, "adx_14": 30.0}
    base.update(values)
    return build_snapshot(candles[i], base, {}, regime)


async def _strategy(candles, settings: StrategySettings, instrument=False):
    bus, (decisions, intents) = await _bus_with(CONSENSUS, INTENTS)
    clock = SimulatedClock(candles[300].close_time)
    agent = StrategyAgent(_ctx(bus, clock, instrument=instrument), settings)
    await agent.start()
    return agent, bus, clock, decisions, intents


async def _send(agent, bus, clock, snapshot) -> None:
    await bus.publish(Envelope.wrap(snapshot, source="ta", clock=clock))


async def test_every_outcome_is_published_with_its_rationale(candles) -> None:
    settings = StrategySettings(
        strategies=("rsi_reversion", "regime_filter"), threshold=95, params={"regime_filter": {"confidence": 1.0}}
    )
    agent, bus, clock, decisions, intents = await _strategy(candles, settings)
    # rsi 10 -> LONG 91.7, alone: under the threshold 95 -> REJECT
    await _send(agent, bus, clock, _snapshot(candles, 300, rsi_14=10.0))
    # plus a confident FLAT vote from the high-volatility regime (80: opposition 60, mass 1 of 1.8):
    # disagreement 2000 > 1600 -> MANUAL_REVIEW
    await _send(agent, bus, clock, _snapshot(candles, 301, rsi_14=10.0, regime=MarketRegime.HIGH_VOLATILITY))
    # no vote at all -> nothing published
    await _send(agent, bus, clock, _snapshot(candles, 302))
    outcomes = [d.outcome for d in decisions.items]
    assert outcomes == [ConsensusOutcome.REJECT, ConsensusOutcome.MANUAL_REVIEW]
    assert "< threshold 95" in decisions.items[0].rationale
    assert "disagree" in decisions.items[1].rationale
    assert [v.strategy for v in decisions.items[1].votes] == ["rsi_reversion", "regime_filter"]
    assert decisions.items[1].variance == pytest.approx(3600 / 1.8)
    assert intents.items == []


async def test_agreeing_votes_execute_however_their_scores_spread(candles) -> None:
    """Two strategies that both say LONG, at 91.7 and 70: the old rule (variance of the agreeing
    scores, 111.5 > 40) sent this to a person and traded nothing; agreement is not disagreement."""
    settings = StrategySettings(strategies=("rsi_reversion", "regime_filter"))
    agent, bus, clock, decisions, intents = await _strategy(candles, settings)
    snap = _snapshot(candles, 300, rsi_14=10.0, adx_14=20.0, regime=MarketRegime.TRENDING_UP)
    await _send(agent, bus, clock, snap)
    (decision,) = decisions.items
    assert sorted(v.score for v in decision.votes) == pytest.approx([70.0, 275 / 3])
    assert {v.direction for v in decision.votes} == {Direction.LONG}
    assert (decision.outcome, decision.variance) == (ConsensusOutcome.EXECUTE, 0.0)
    (intent,) = intents.items
    assert decision.intent_id == intent.intent_id
    assert intent.direction is Direction.LONG


async def test_execute_publishes_an_intent_with_atr_levels(candles) -> None:
    agent, bus, clock, decisions, intents = await _strategy(candles, StrategySettings(strategies=("rsi_reversion",)))
    snap = _snapshot(candles, 300, rsi_14=10.0, atr_14=500.0)
    await _send(agent, bus, clock, snap)
    (intent,) = intents.items
    assert isinstance(intent, TradeIntent)
    assert (intent.side, intent.direction, intent.reference_price) == (Side.BUY, Direction.LONG, snap.close)
    assert intent.stop_loss == (snap.close - Decimal(1000)).quantize(Decimal("0.01"))
    assert intent.take_profit == (snap.close + Decimal(1500)).quantize(Decimal("0.01"))
    assert decisions.items[0].intent_id == intent.intent_id
    # the same snapshot again (a redelivery) decides nothing new
    await _send(agent, bus, clock, snap)
    assert len(intents.items) == 1


async def test_infeasible_executes_become_rejects(candles) -> None:
    settings = StrategySettings(strategies=("rsi_reversion",), params={"rsi_reversion": {"allow_short": True}})
    agent, bus, clock, decisions, intents = await _strategy(candles, settings)
    await bus.publish(
        Envelope.wrap(
            PositionUpdate(venue="binance", symbol="BTC/USDT", quantity=Decimal("0.2"), average_price=Decimal(60000)),
            source="execution",
            clock=clock,
        )
    )
    assert agent.position("binance", "BTC/USDT").is_long
    # overbought while long -> EXIT -> a SELL intent
    await _send(agent, bus, clock, _snapshot(candles, 300, rsi_14=95.0))
    assert [(i.side, i.direction) for i in intents.items] == [(Side.SELL, Direction.EXIT)]
    assert intents.items[0].stop_loss is None
    # paused: no new entries
    pause = Command(command_id=uuid.uuid4(), kind=CommandKind.PAUSE)
    await agent.on_command(pause, Envelope.wrap(pause, source="orchestrator", clock=clock))
    await bus.publish(
        Envelope.wrap(
            PositionUpdate(venue="binance", symbol="BTC/USDT", quantity=Decimal(0), average_price=Decimal(0)),
            source="execution",
            clock=clock,
        )
    )
    await _send(agent, bus, clock, _snapshot(candles, 301, rsi_14=5.0))
    assert decisions.items[-1].outcome is ConsensusOutcome.REJECT
    assert "paused" in decisions.items[-1].rationale
    assert len(intents.items) == 1


async def test_a_raising_strategy_is_counted_and_the_others_still_decide(monkeypatch, candles) -> None:
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(("boom", Boom)))
    before = metrics.STRATEGY_ERRORS.labels("boom")._value.get()
    agent, bus, clock, decisions, intents = await _strategy(
        candles, StrategySettings(strategies=("boom", "rsi_reversion")), instrument=True
    )
    await _send(agent, bus, clock, _snapshot(candles, 300, rsi_14=10.0))
    await _send(agent, bus, clock, _snapshot(candles, 301, rsi_14=50.0))
    assert metrics.STRATEGY_ERRORS.labels("boom")._value.get() == before + 2
    assert [d.outcome for d in decisions.items] == [ConsensusOutcome.EXECUTE]
    assert len(intents.items) == 1
    assert list(await bus.dead_letters("strategy.indicators")) == []


def test_strategy_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("TRADESWARM_STRATEGY_STRATEGIES", "sma_cross, rsi_reversion")
    monkeypatch.setenv("TRADESWARM_STRATEGY_PARAMS", json.dumps({"sma_cross": {"fast": 5, "slow": 20}}))
    monkeypatch.setenv("TRADESWARM_STRATEGY_WEIGHTS", json.dumps({"rsi_reversion": 0.5}))
    monkeypatch.setenv("TRADESWARM_STRATEGY_METHOD", "bayesian")
    s = StrategySettings()
    specs = s.strategy_specs()
    assert [sp.name for sp in specs] == ["sma_cross", "rsi_reversion"]
    assert specs[0].params == SmaCross.Params(fast=5, slow=20)
    assert specs[1].weight == 0.5
    assert s.consensus_config().method == "bayesian"


def test_the_agent_refuses_to_start_with_invalid_strategy_parameters() -> None:
    bus = InMemoryBus()
    with pytest.raises(ConfigurationError, match=r"sma_cross.slow: Input should be greater than or equal to 2"):
        StrategyAgent(_ctx(bus, SimulatedClock()), StrategySettings(params={"sma_cross": {"slow": 1}}))


@pytest.mark.integration
async def test_warm_up_from_the_tick_store(influx_store, candles) -> None:
    """Candles stored in the real InfluxDB warm the agent up: its first live snapshots equal a
    live-only run's."""
    await influx_store.write_candles(candles[:300])
    clock = SimulatedClock(candles[299].close_time)
    bus, (snaps,) = await _bus_with(INDICATORS)
    history = TickStoreHistory(influx_store)
    ta = TechnicalAnalysisAgent(_ctx(bus, clock), TA_SETTINGS, history=history)
    await ta.start()
    series = ta.series[("binance", "BTC/USDT", "1h")]
    assert series.engine.warm
    assert series.warmup_candles == 300
    for c in candles[300:320]:
        await bus.publish(Envelope.wrap(c, source="replay", clock=clock, ts_event=c.close_time))
    reference = TechnicalAnalysisAgent(_ctx(*(await _bus_with(INDICATORS))[:1], clock), TA_SETTINGS)
    for c in candles[:300]:
        reference.warm_up(c)
    engine = reference.series[("binance", "BTC/USDT", "1h")].engine
    expected = [
        engine.update(*(float(x) for x in (c.open, c.high, c.low, c.close, c.volume))) for c in candles[300:320]
    ]
    assert [s.values for s in snaps.items] == [r.values for r in expected if r is not None]
    assert len(snaps.items) == 20


async def test_build_wires_the_agents_from_the_environment(monkeypatch) -> None:
    from agents.strategy.agent import build as build_strategy
    from agents.technical_analysis.agent import build as build_ta

    monkeypatch.setenv("TRADESWARM_TA_INDICATORS", "sma")
    monkeypatch.setenv("TRADESWARM_STRATEGY_STRATEGIES", "sma_cross,ema_cross")
    ctx = _ctx(InMemoryBus(), SimulatedClock())
    ta = await build_ta(ctx)
    assert isinstance(ta.history, TickStoreHistory)
    assert ta.ta_settings.indicators == ("sma",)
    strategy = await build_strategy(ctx)
    assert strategy.strategy_names == ("sma_cross", "ema_cross")
    monkeypatch.setenv("TRADESWARM_TA_HISTORY_SOURCE", "none")
    assert (await build_ta(ctx)).history is None
    monkeypatch.setenv("TRADESWARM_STRATEGY_STRATEGIES", "nope")
    with pytest.raises(ConfigurationError, match="unknown strategy 'nope'"):
        await build_strategy(ctx)


async def test_a_short_entry_has_its_stop_above_and_target_below(candles) -> None:
    settings = StrategySettings(strategies=("rsi_reversion",), params={"rsi_reversion": {"allow_short": True}})
    agent, bus, clock, _decisions, intents = await _strategy(candles, settings)
    snap = _snapshot(candles, 300, rsi_14=95.0, atr_14=250.0)
    await _send(agent, bus, clock, snap)
    (intent,) = intents.items
    assert (intent.side, intent.direction) == (Side.SELL, Direction.SHORT)
    assert intent.stop_loss == snap.close + Decimal(500)
    assert intent.take_profit == snap.close - Decimal(750)


def test_env_example_lists_every_ta_and_strategy_setting() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    for cls, prefix in ((TechnicalAnalysisSettings, "TRADESWARM_TA_"), (StrategySettings, "TRADESWARM_STRATEGY_")):
        missing = [f"{prefix}{n.upper()}" for n in cls.model_fields if f"{prefix}{n.upper()}=" not in text]
        assert not missing, f".env.example lacks {missing}"


async def test_halt_stops_every_intent_and_resume_restores_them(candles) -> None:
    agent, bus, clock, decisions, intents = await _strategy(candles, StrategySettings(strategies=("rsi_reversion",)))
    halt = Command(command_id=uuid.uuid4(), kind=CommandKind.HALT)
    assert await agent.on_command(halt, Envelope.wrap(halt, source="orchestrator", clock=clock)) == "intents halted"
    await _send(agent, bus, clock, _snapshot(candles, 300, rsi_14=10.0))
    assert intents.items == []
    assert "halted" in decisions.items[-1].rationale
    resume = Command(command_id=uuid.uuid4(), kind=CommandKind.RESUME)
    await agent.on_command(resume, Envelope.wrap(resume, source="orchestrator", clock=clock))
    await _send(agent, bus, clock, _snapshot(candles, 301, rsi_14=10.0))
    assert len(intents.items) == 1


async def test_votes_are_published_only_when_asked(candles) -> None:
    from core.routing import VOTES

    for publish_votes, expected in ((False, 0), (True, 1)):
        bus, (votes,) = await _bus_with(VOTES)
        await bus.subscribe(QueueSpec(name="test.rest", patterns=(CONSENSUS.all(), INTENTS.all())), Recorder())
        clock = SimulatedClock(candles[300].close_time)
        settings = StrategySettings(strategies=("rsi_reversion",), publish_votes=publish_votes)
        agent = StrategyAgent(_ctx(bus, clock), settings)
        await agent.start()
        await _send(agent, bus, clock, _snapshot(candles, 300, rsi_14=10.0))
        assert len(votes.items) == expected


class FlakyBus:
    """Delegates to a bus but fails the first publish of one payload type (a lost broker confirm)."""

    def __init__(self, inner: InMemoryBus, fail_type: type) -> None:
        self.inner = inner
        self.fail_type = fail_type
        self.failed = 0

    async def publish(self, envelope: Envelope, routing_key: str | None = None) -> None:
        if isinstance(envelope.payload, self.fail_type) and not self.failed:
            self.failed += 1
            raise PublishNotConfirmed("broker nacked")
        await self.inner.publish(envelope, routing_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_failed_snapshot_publish_is_resent_on_redelivery_without_feeding_twice(candles) -> None:
    settings = TechnicalAnalysisSettings(indicators=("sma",), sma_periods=(5,))
    clock = SimulatedClock(candles[0].open_time)
    bus, (snaps,) = await _bus_with(INDICATORS)
    flaky = FlakyBus(bus, IndicatorSnapshot)
    ta = TechnicalAnalysisAgent(_ctx(flaky, clock), settings)
    await ta.start()
    for c in candles[:12]:
        await bus.publish(Envelope.wrap(c, source="replay", clock=clock))
    assert flaky.failed == 1
    assert len(snaps.items) == 12 - 4
    closes = [float(c.close) for c in candles[:12]]
    expected = [sum(closes[i - 4 : i + 1]) / 5 for i in range(4, 12)]
    assert [s.values["sma_5"] for s in snaps.items] == pytest.approx(expected, rel=1e-12)
    assert list(await bus.dead_letters("technical_analysis.candles")) == []


async def test_a_failed_intent_publish_is_retried_with_the_same_decision(candles) -> None:
    bus, (decisions, intents) = await _bus_with(CONSENSUS, INTENTS)
    flaky = FlakyBus(bus, TradeIntent)
    clock = SimulatedClock(candles[300].close_time)
    agent = StrategyAgent(_ctx(flaky, clock), StrategySettings(strategies=("sma_cross",)))
    await agent.start()
    await _send(agent, bus, clock, _snapshot(candles, 300, sma_10=99.0, sma_30=100.0))
    await _send(agent, bus, clock, _snapshot(candles, 301, sma_10=101.0, sma_30=100.0))  # crosses above
    assert flaky.failed == 1
    assert [(i.direction, i.decided_at) for i in intents.items] == [(Direction.LONG, clock.now())]
    assert [d.outcome for d in decisions.items] == [ConsensusOutcome.EXECUTE]
    assert decisions.items[0].intent_id == intents.items[0].intent_id
    await _send(agent, bus, clock, _snapshot(candles, 302, sma_10=102.0, sma_30=100.0))  # no new crossing
    assert len(intents.items) == 1


async def test_a_hanging_history_provider_times_out(candles) -> None:
    class Hanging:
        async def recent_candles(self, *args, **kwargs):
            await asyncio.sleep(3600)

    bus, _ = await _bus_with(INDICATORS)
    settings = TechnicalAnalysisSettings(indicators=("sma",), history_timeout_s=0.05)
    ta = TechnicalAnalysisAgent(_ctx(bus, SimulatedClock()), settings, Hanging())
    await asyncio.wait_for(ta.start(), timeout=10)
    assert ta.series == {}
