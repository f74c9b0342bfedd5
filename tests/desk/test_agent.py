"""The desk agent on the in-memory bus: every N candles per symbol, the messages in order, idempotent
candles, HALT stops its intents, metrics, the portfolio it reads."""

from __future__ import annotations

import uuid
from decimal import Decimal

from prometheus_client import REGISTRY

from agents.desk.agent import DeskAgent
from agents.desk.rules import RulesModel
from agents.desk.settings import DeskSettings
from agents.desk.wiring import build_desk
from core.clock import SimulatedClock
from core.desk.store import InMemoryDeskStore
from core.domain import CommandKind
from core.messages import Candle, Command, DeskDecision, DeskRoleReport, Envelope, PortfolioSnapshot, TradeIntent
from core.routing import ALERTS, DESK_DECISIONS, DESK_ROLES, INTENTS
from core.settings import Settings
from infrastructure.messaging.memory import InMemoryBus
from tests.desk.test_backtest import candles
from tests.orderpath.helpers import context
from tests.orderpath.probe import Probe


async def swarm(every: int = 6) -> tuple[InMemoryBus, SimulatedClock, DeskAgent, Probe]:
    bus = InMemoryBus()
    await bus.start()
    rows = candles()
    clock = SimulatedClock(rows[0].open_time)
    settings = DeskSettings(every=every)
    agent = DeskAgent(context(bus, clock, "desk-1", symbols=["BTC/USDT"], timeframes=["1h"]),
                      build_desk(settings, Settings(), RulesModel()), settings, InMemoryDeskStore())  # fmt: skip
    await agent.start()
    probe = await Probe().attach(bus, [DESK_ROLES.all(), DESK_DECISIONS.all(), INTENTS.all(), ALERTS.all()])
    return bus, clock, agent, probe


async def feed(bus: InMemoryBus, clock: SimulatedClock, rows: list[Candle]) -> None:
    for candle in rows:
        if candle.close_time > clock.now():
            clock.advance_to(candle.close_time)
        await bus.publish(Envelope.wrap(candle, source="feed", clock=clock, ts_event=candle.close_time))


def counted(verdict: str) -> float:
    labels = {"verdict": verdict, "action": "BUY", "provider": "rules"}
    return REGISTRY.get_sample_value("tradeswarm_desk_decisions_total", labels) or 0.0


async def test_the_agent_decides_every_n_candles_and_publishes_in_order() -> None:
    bus, clock, agent, probe = await swarm(every=6)
    rows = candles()[:150]
    before = sum(counted(v) for v in ("APPROVE", "ADJUST", "REJECT"))
    await feed(bus, clock, rows)
    await feed(bus, clock, rows[-10:])  # redelivered / replayed candles change nothing
    decisions = probe.of(DeskDecision)
    assert len(decisions) == len([n for n in range(1, 151) if n % 6 == 0 and n >= 36])
    assert len(probe.of(DeskRoleReport)) == 6 * len(decisions)
    assert [d.decision_id for d in decisions] == [d.decision_id for d in agent.store.all()]  # type: ignore[attr-defined]
    intents = probe.of(TradeIntent)
    assert [i.intent_id for i in intents] == [d.intent_id for d in decisions if d.intent_id is not None]
    assert all(i.strategies == ("desk",) for i in intents)
    buys = [d for d in decisions if d.action == "BUY"]
    assert sum(counted(v) for v in ("APPROVE", "ADJUST", "REJECT")) - before == len(buys)
    await agent.stop()
    await bus.close()


async def test_halt_keeps_deciding_but_places_no_intent_and_the_portfolio_is_read() -> None:
    bus, clock, agent, probe = await swarm(every=6)
    rows = candles()
    await bus.publish(Envelope.wrap(Command(command_id=uuid.uuid4(), kind=CommandKind.HALT, target="desk"),
                                    source="test", clock=clock))  # fmt: skip
    await feed(bus, clock, rows[:200])
    assert agent.halted
    decisions = probe.of(DeskDecision)
    assert decisions
    assert not probe.of(TradeIntent)
    assert all(d.intent_id is None for d in decisions)
    assert any(d.reason.startswith("halted") for d in decisions if d.action == "BUY" and d.verdict != "REJECT")
    snapshot = PortfolioSnapshot(account="paper", cash=Decimal(5000), equity=Decimal(10000),
                                 peak_equity=Decimal(10000), gross_exposure=Decimal(5000), net_exposure=Decimal(5000),
                                 realized_pnl=Decimal(0), unrealized_pnl=Decimal(0), fees=Decimal(0), drawdown=0.0,
                                 open_positions=0, ts=rows[200].close_time)  # fmt: skip
    await bus.publish(Envelope.wrap(snapshot, source="execution-1", clock=clock))
    assert agent.portfolio.equity == Decimal(10000)
    view = agent._view(rows[200], agent.series[("binance", "BTC/USDT", "1h")])
    assert view.exposure_pct == 50.0
    await agent.stop()
    await bus.close()
