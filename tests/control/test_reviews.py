"""MANUAL_REVIEW has a real path: the strategy agent queues the trade a disagreeing consensus would
make, the orchestrator keeps the queue (PostgreSQL), a person with the API token approves or rejects
it before it expires, and an approval becomes the trade intent that goes through risk, compliance
and execution like any other. Real agents, real PostgreSQL, the API over ASGI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agents.compliance.agent import ComplianceAgent
from agents.compliance.settings import ComplianceSettings
from agents.execution.agent import ExecutionAgent, paper_venue
from agents.execution.settings import ExecutionSettings
from agents.orchestrator.agent import OrchestratorAgent
from agents.orchestrator.settings import OrchestratorSettings
from agents.risk.agent import RiskAgent
from agents.risk.settings import RiskSettings
from agents.strategy.agent import StrategyAgent
from agents.strategy.settings import StrategySettings
from agents.technical_analysis.snapshot import build_snapshot
from core.clock import SimulatedClock
from core.domain import CommandKind, ConsensusOutcome, DecisionVerdict, Direction, MarketRegime, OrderStatus, Side
from core.logging import get_logger
from core.messages import (
    Candle,
    Command,
    ConsensusDecision,
    Envelope,
    OrderRequest,
    OrderUpdate,
    ReviewDecision,
    ReviewRequest,
    RiskDecision,
    TradeIntent,
)
from core.ports import Bus, QueueSpec
from core.routing import (
    CONSENSUS,
    INTENTS,
    ORDER_UPDATES,
    ORDERS_APPROVED,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
    RISK_APPROVED,
    RISK_REJECTED,
)
from core.settings import Settings
from core.trading.reviews import InMemoryReviewStore, ReviewStore
from core.trading.stores import InMemoryAuditStore, InMemoryExecutionStore
from infrastructure.api.app import create_app
from infrastructure.database.timescale.migrate import apply_migrations
from infrastructure.database.timescale.pool import Database
from infrastructure.database.timescale.reviews import PostgresReviewStore
from infrastructure.messaging.memory import InMemoryBus
from tests.control.data import candles
from tests.factories import eventually

TOKEN = "review-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CORE = Settings(exchange="binance", symbols=["BTC/USDT"], timeframes=["1h"])
C = candles(60)
# rsi_reversion says LONG 91.7 (confidence 0.8); regime_filter, confident (1.0), stands aside in high
# volatility with FLAT 80: opposition 60^2 x 1 / 1.8 = 2000 > 1600 -> MANUAL_REVIEW for LONG
STRATEGY = StrategySettings(
    strategies=("rsi_reversion", "regime_filter"), params={"regime_filter": {"confidence": 1.0}}
)


@dataclass
class Seen:
    items: list[Any] = field(default_factory=list)

    async def __call__(self, envelope: Envelope) -> None:
        self.items.append(envelope.payload)

    def of(self, cls: type) -> list[Any]:
        return [p for p in self.items if isinstance(p, cls)]


@dataclass
class World:
    bus: Bus
    clock: SimulatedClock
    orch: OrchestratorAgent
    agents: list[Any]
    client: httpx.AsyncClient
    seen: Seen
    strategy: StrategyAgent | None

    async def candle(self, c: Candle) -> None:
        self.clock.advance_to(c.close_time)
        await self.bus.publish(Envelope.wrap(c, source="test", clock=self.clock, ts_event=c.close_time))

    async def disagreeing_snapshot(self, i: int) -> None:
        """The i-th candle's snapshot, on which the strategies disagree (a MANUAL_REVIEW for LONG)."""
        values = {"rsi_14": 10.0, "adx_14": 30.0, "atr_14": 500.0}
        snap = build_snapshot(C[i], values, {}, MarketRegime.HIGH_VOLATILITY)
        await self.bus.publish(Envelope.wrap(snap, source="ta", clock=self.clock, ts_event=snap.close_time))

    async def stop(self) -> None:
        await self.client.aclose()
        for agent in reversed(self.agents):
            await agent.stop()
        await self.orch.stop()


def _ctx(bus: Bus, clock: SimulatedClock, agent_id: str) -> Any:
    from agents.base import AgentContext

    return AgentContext(bus=bus, clock=clock, settings=CORE, agent_id=agent_id, log=get_logger("test"))


async def make_world(store: ReviewStore, *, with_strategy: bool = True) -> World:
    """The swarm without market data or analysis, the API over the orchestrator, and a listener (it
    does not bind the review verdicts when no strategy agent runs: nobody listens for them then)."""
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(C[0].open_time)
    seen = Seen()
    patterns = [REVIEW_REQUESTS, CONSENSUS, INTENTS, RISK_APPROVED, RISK_REJECTED, ORDERS_APPROVED, ORDER_UPDATES]
    if with_strategy:
        patterns.append(REVIEW_DECISIONS)
    await bus.subscribe(
        QueueSpec(name=f"test.seen.{uuid.uuid4().hex[:6]}", patterns=tuple(p.all() for p in patterns)), seen
    )
    orch = OrchestratorAgent(
        _ctx(bus, clock, "orchestrator-1"), OrchestratorSettings(api_enabled=False, check_interval_s=60), reviews=store
    )
    await orch.start()
    es = ExecutionSettings(store="memory", snapshot_interval_s=86_400)
    agents: list[Any] = [
        ExecutionAgent(_ctx(bus, clock, "execution-1"), paper_venue(es, clock), InMemoryExecutionStore(), es),
        ComplianceAgent(_ctx(bus, clock, "compliance-1"), ComplianceSettings(), InMemoryAuditStore()),
        RiskAgent(_ctx(bus, clock, "risk-1"), RiskSettings()),
    ]
    strategy = StrategyAgent(_ctx(bus, clock, "strategy-1"), STRATEGY) if with_strategy else None
    if strategy is not None:
        agents.append(strategy)
    for agent in agents:
        await agent.start()
    app = create_app(orch, None, None, api_token=SecretStr(TOKEN))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    world = World(bus, clock, orch, agents, client, seen, strategy)
    for c in C[:20]:
        await world.candle(c)
    return world


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[Database]:
    database = Database(postgres_dsn)
    await database.connect()
    await apply_migrations(database)
    yield database
    await database.close()


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    w = await make_world(PostgresReviewStore(db))
    yield w
    await w.stop()


async def _queued(w: World, i: int) -> dict[str, Any]:
    """A MANUAL_REVIEW on candle i, listed by the API."""
    await w.disagreeing_snapshot(i)
    (request,) = [r for r in w.seen.of(ReviewRequest) if r.requested_at == C[i].close_time]
    reviews = (await w.client.get("/reviews", params={"state": "pending"})).json()
    (listed,) = [r for r in reviews["items"] if r["review_id"] == str(request.review_id)]
    return listed


async def test_a_manual_review_is_queued_and_an_approval_trades_through_the_normal_path(world: World) -> None:
    w = world
    review = await _queued(w, 19)
    consensus = w.seen.of(ConsensusDecision)[-1]
    assert consensus.outcome is ConsensusOutcome.MANUAL_REVIEW
    assert consensus.intent_id is None
    assert not w.seen.of(TradeIntent)  # nothing trades before a person decides
    assert (review["state"], review["side"], review["direction"]) == ("pending", "buy", "long")
    assert review["variance"] == pytest.approx(2000.0)
    assert review["reference_price"] == str(C[19].close)
    assert [v["strategy"] for v in review["votes"]] == ["rsi_reversion", "regime_filter"]
    assert (await w.client.get(f"/reviews/{review['review_id']}")).json() == review

    # a person needs the token
    body = {"reviewer": "alice", "note": "volatility is news-driven, the dip is real"}
    url = f"/reviews/{review['review_id']}/approve"
    assert (await w.client.post(url, json=body)).status_code == 401
    assert (await w.client.post(url, json=body, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await w.client.post(url, json={"note": "no reviewer"}, headers=AUTH)).status_code == 422
    assert not w.seen.of(ReviewDecision)

    w.clock.advance(timedelta(minutes=5))
    resp = await w.client.post(url, json=body, headers=AUTH)
    assert resp.status_code == 200, resp.text
    decided = resp.json()
    assert (decided["state"], decided["decided_by"], decided["note"]) == ("approved", "alice", body["note"])

    # the approval became the intent (id = the review's) and took the normal path
    (intent,) = w.seen.of(TradeIntent)
    assert str(intent.intent_id) == review["review_id"]
    assert (intent.side, intent.direction, intent.reference_price) == (Side.BUY, Direction.LONG, C[19].close)
    assert intent.decided_at == w.clock.now()
    assert "approved in review" in intent.rationale
    assert "by alice" in intent.rationale
    (risk,) = [d for d in w.seen.of(RiskDecision) if d.intent_id == intent.intent_id]
    assert risk.verdict is DecisionVerdict.APPROVE
    (order,) = [o for o in w.seen.of(OrderRequest) if o.intent_id == intent.intent_id]
    assert order.side is Side.BUY
    assert any(u.status is OrderStatus.ACCEPTED for u in w.seen.of(OrderUpdate) if u.intent_id == intent.intent_id)
    final = w.seen.of(ConsensusDecision)[-1]
    assert (final.outcome, final.intent_id) == (ConsensusOutcome.EXECUTE, intent.intent_id)

    # once decided, never again
    again = await w.client.post(url, json=body, headers=AUTH)
    assert again.status_code == 409
    assert "approved" in again.json()["message"]
    assert len(w.seen.of(TradeIntent)) == 1
    assert (await w.client.get(f"/reviews/{review['review_id']}")).json()["state"] == "approved"
    assert (await w.client.get(f"/reviews/{uuid.uuid4()}")).status_code == 404
    assert (await w.client.post(f"/reviews/{uuid.uuid4()}/reject", json=body, headers=AUTH)).status_code == 404


async def test_a_rejected_review_trades_nothing(world: World) -> None:
    w = world
    review = await _queued(w, 19)
    resp = await w.client.post(
        f"/reviews/{review['review_id']}/reject", json={"reviewer": "bob", "note": "no"}, headers=AUTH
    )
    assert resp.json()["state"] == "rejected"
    assert not w.seen.of(TradeIntent)
    final = w.seen.of(ConsensusDecision)[-1]
    assert final.outcome is ConsensusOutcome.REJECT
    assert "rejected in review" in final.rationale
    listed = (await w.client.get("/reviews", params={"state": "rejected"})).json()
    assert [r["review_id"] for r in listed["items"]] == [review["review_id"]]


async def test_a_review_expires(world: World) -> None:
    w = world
    review = await _queued(w, 19)
    assert STRATEGY.review_ttl_s == 900
    w.clock.advance(timedelta(seconds=900))
    assert (await w.client.get(f"/reviews/{review['review_id']}")).json()["state"] == "expired"
    assert (await w.client.get("/reviews", params={"state": "pending"})).json()["total"] == 0
    assert (await w.client.get("/reviews", params={"state": "expired"})).json()["total"] == 1
    late = await w.client.post(f"/reviews/{review['review_id']}/approve", json={"reviewer": "carol"}, headers=AUTH)
    assert late.status_code == 409
    assert "expired" in late.json()["message"]
    assert not w.seen.of(ReviewDecision)
    assert not w.seen.of(TradeIntent)


async def test_the_queue_survives_an_orchestrator_restart(db: Database) -> None:
    first = await make_world(PostgresReviewStore(db))
    review = await _queued(first, 19)
    await first.stop()
    second = await make_world(PostgresReviewStore(db))
    try:
        listed = (await second.client.get("/reviews")).json()
        assert [r["review_id"] for r in listed["items"]] == [review["review_id"]]
        second.clock.advance_to(C[19].close_time + timedelta(minutes=1))
        resp = await second.client.post(
            f"/reviews/{review['review_id']}/approve", json={"reviewer": "dave"}, headers=AUTH
        )
        assert resp.status_code == 200
        # a fresh strategy agent acts on the approval: the verdict carries the reviewed trade
        (intent,) = second.seen.of(TradeIntent)
        assert str(intent.intent_id) == review["review_id"]
    finally:
        await second.stop()


async def test_a_verdict_nobody_can_act_on_leaves_the_review_pending(db: Database) -> None:
    w = await make_world(PostgresReviewStore(db), with_strategy=False)
    try:
        # a review queued by a strategy agent that is gone now
        helper = await make_world(InMemoryReviewStore())
        await helper.disagreeing_snapshot(19)
        (request,) = helper.seen.of(ReviewRequest)
        await helper.stop()
        await w.bus.publish(Envelope.wrap(request, source="strategy-1", clock=w.clock))
        url = f"/reviews/{request.review_id}/approve"
        resp = await w.client.post(url, json={"reviewer": "erin"}, headers=AUTH)
        assert resp.status_code == 503
        assert "no strategy agent listens" in resp.json()["message"]
        assert (await w.client.get(f"/reviews/{request.review_id}")).json()["state"] == "pending"
    finally:
        await w.stop()


async def test_an_approval_the_strategy_cannot_trade_is_reported_not_traded() -> None:
    """Halted after the review was queued: the approval is refused by the strategy agent (no intent),
    and its ConsensusDecision says why."""
    w = await make_world(InMemoryReviewStore())
    try:
        review = await _queued(w, 19)
        assert w.strategy is not None
        halt = Command(command_id=uuid.uuid4(), kind=CommandKind.HALT, target="strategy")
        await w.bus.publish(Envelope.wrap(halt, source="orchestrator-1", clock=w.clock))
        await eventually(lambda: w.strategy is not None and w.strategy.halted)
        resp = await w.client.post(f"/reviews/{review['review_id']}/approve", json={"reviewer": "fay"}, headers=AUTH)
        assert resp.status_code == 200
        assert not w.seen.of(TradeIntent)
        final = w.seen.of(ConsensusDecision)[-1]
        assert final.outcome is ConsensusOutcome.REJECT
        assert "halted" in final.rationale
    finally:
        await w.stop()
