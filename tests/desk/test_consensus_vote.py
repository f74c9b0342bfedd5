"""The AI desk as one more voter in the consensus engine, with a configurable weight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from agents.desk.rules import RulesModel
from agents.desk.settings import DeskSettings
from agents.desk.wiring import build_desk
from agents.strategy.settings import StrategySettings
from backtesting.config import BacktestConfig
from backtesting.data import list_source
from backtesting.engine import BacktestEngine, BacktestResult, DeskRun
from core.desk.roles import ResearchThesis, Role
from core.domain import ConsensusOutcome, Direction
from core.messages import DeskDecision, DeskRoleReport, StrategyVote
from core.settings import Settings
from strategies.consensus import fuse
from strategies.desk_vote import desk_vote, still_valid
from tests.desk.test_backtest import KEY, candles

TS = datetime(2025, 5, 5, 12, tzinfo=UTC)


def decision(action: str, verdict: str, confidence: float = 0.8) -> DeskDecision:
    did = uuid4()
    thesis = ResearchThesis(thesis="bullish", confidence=confidence, risks=(), justification="j", reasoning=("r",))
    report = DeskRoleReport(decision_id=did, venue="binance", symbol="BTC/USDT", timeframe="1h", ts=TS,
                            provider="rules", role=Role.RESEARCHER, status="ok", output=thesis)  # fmt: skip
    approved = verdict in ("APPROVE", "ADJUST") and action != "HOLD"
    return DeskDecision(decision_id=did, venue="binance", symbol="BTC/USDT", timeframe="1h", ts=TS,
                        provider="rules", reference_price=Decimal(100), action=action,  # type: ignore[arg-type]
                        size_pct=5.0 if approved else 0.0, verdict=verdict,  # type: ignore[arg-type]
                        intent_id=uuid4() if approved else None, roles=(report,))  # fmt: skip


def test_a_decision_becomes_a_vote() -> None:
    buy = desk_vote(decision("BUY", "ADJUST"))
    assert buy is not None
    assert (buy.strategy, buy.direction, buy.score, buy.confidence) == ("desk", Direction.LONG, 80.0, 0.8)
    sell = desk_vote(decision("SELL", "APPROVE"))
    assert sell is not None
    assert sell.direction is Direction.EXIT
    rejected = desk_vote(decision("BUY", "REJECT"))
    assert rejected is not None
    assert rejected.direction is Direction.FLAT
    assert desk_vote(decision("HOLD", "NO_TRADE")) is None
    assert still_valid(TS, TS, timedelta(hours=1))
    assert not still_valid(TS, TS + timedelta(hours=1), timedelta(hours=1))
    assert not still_valid(TS, TS - timedelta(seconds=1), timedelta(hours=1))


def test_the_desk_weight_moves_the_consensus() -> None:
    sma = StrategyVote(strategy="sma_cross", venue="binance", symbol="BTC/USDT", timeframe="1h",
                       direction=Direction.LONG, score=90, confidence=1.0)  # fmt: skip
    flat = desk_vote(decision("BUY", "REJECT", confidence=0.9))
    assert flat is not None
    light = StrategySettings(strategies=("sma_cross",), desk_weight=0.01).consensus_config()
    heavy = StrategySettings(strategies=("sma_cross",), desk_weight=10.0).consensus_config()
    assert fuse([sma, flat], light).outcome is ConsensusOutcome.EXECUTE
    assert fuse([sma, flat], heavy).outcome is not ConsensusOutcome.EXECUTE
    assert "desk" not in (StrategySettings().consensus_config().weights or {})


async def fused_run(weight: float) -> tuple[BacktestResult, int]:
    settings = DeskSettings(every=6, trade=False)  # the desk votes, the strategies trade
    desk = DeskRun(build_desk(settings, Settings(), RulesModel()), settings, replace_strategies=False)
    config = BacktestConfig(strategy={"desk_weight": weight})
    engine = BacktestEngine(config, [list_source(KEY, candles(datetime(2025, 3, 1, tzinfo=UTC)), "s")], desk=desk)
    result = await engine.run()
    assert engine.last_swarm is not None
    return result, engine.last_swarm.strategy.desk_votes


async def test_in_a_backtest_the_desk_votes_beside_the_strategies() -> None:
    without, none = await fused_run(0.0)
    fused, votes = await fused_run(5.0)
    assert none == 0
    assert votes > 0
    assert fused.desk_decisions
    assert not any(d.intent_id for d in fused.desk_decisions)  # advisory: it only votes
    assert fused.outcomes.as_dict()["consensus"] != without.outcomes.as_dict()["consensus"]


def test_the_broker_definitions_see_the_desk_queue_of_the_strategy(monkeypatch: object) -> None:
    import pytest

    from tradeswarm.broker import agent_queues

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    assert "strategy.desk" not in {q.name for q in agent_queues("strategy", Settings())}
    monkeypatch.setenv("TRADESWARM_STRATEGY_DESK_WEIGHT", "1.5")
    assert "strategy.desk" in {q.name for q in agent_queues("strategy", Settings())}
    assert {q.name for q in agent_queues("desk", Settings())} == {"desk.candles"}


def test_the_desk_metrics_are_in_the_catalogue() -> None:
    from infrastructure.observability.metrics import CATALOGUE

    names = {name for spec in CATALOGUE.values() for name in spec.exported_names()}
    assert "tradeswarm_desk_decisions_total" in names
    assert "tradeswarm_desk_role_failures_total" in names
