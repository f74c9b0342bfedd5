"""Running one backtest twice, all-awake and with wake conditions, and comparing everything.

A tap agent records every message of the decision flow in publish order (intents, risk and
compliance decisions, orders, order updates, fills, positions, portfolio snapshots, alerts,
consensus decisions) as its JSON payload and market time. It subscribes to nothing a wake condition
skips (candles, snapshots), so it changes nothing it observes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agents.base import Agent, AgentContext, Subscription
from backtesting.config import BacktestConfig
from backtesting.data import SeriesSource
from backtesting.engine import BacktestEngine, BacktestResult, Swarm
from core.messages import (
    ComplianceDecision,
    ConsensusDecision,
    Envelope,
    Fill,
    OrderRequest,
    OrderUpdate,
    Payload,
    PortfolioSnapshot,
    PositionUpdate,
    RiskAlert,
    RiskDecision,
    TradeIntent,
)
from core.routing import (
    ALERTS,
    COMPLIANCE_DECISIONS,
    CONSENSUS,
    FILLS,
    INTENTS,
    ORDER_UPDATES,
    ORDERS_APPROVED,
    PORTFOLIO,
    POSITIONS,
    RISK_APPROVED,
    RISK_REJECTED,
)
from core.settings import Settings

TAPPED = (TradeIntent, RiskDecision, ComplianceDecision, OrderRequest, OrderUpdate, Fill, PositionUpdate,
          PortfolioSnapshot, RiskAlert, ConsensusDecision)  # fmt: skip


class Tap(Agent):
    """Records the decision flow (see the module docstring)."""

    kind = "tap"

    def __init__(self, ctx: AgentContext) -> None:
        super().__init__(ctx)
        self.records: list[tuple[str, str, str]] = []

    def subscriptions(self) -> Sequence[Subscription]:
        patterns = tuple(t.all() for t in (INTENTS, RISK_APPROVED, RISK_REJECTED, COMPLIANCE_DECISIONS, ORDERS_APPROVED,
                                           ORDER_UPDATES, FILLS, POSITIONS, PORTFOLIO, ALERTS, CONSENSUS))  # fmt: skip
        return [Subscription("all", patterns, dict.fromkeys(TAPPED, self.on_any))]

    def on_any(self, payload: Payload, envelope: Envelope) -> None:
        self.records.append((envelope.type, envelope.ts_event.isoformat(), payload.model_dump_json()))


class TappedEngine(BacktestEngine):
    """A backtest engine whose swarm carries a :class:`Tap`."""

    tap: Tap

    def swarm(self, **kw: Any) -> Swarm:
        swarm = super().swarm(**kw)
        core = Settings.model_validate({"exchange": self.venue, "symbols": self.symbols, "timeframes": self.timeframes})
        ctx = AgentContext(bus=swarm.bus, clock=swarm.clock, settings=core, agent_id="bt-tap",
                           log=structlog.get_logger("tap"), instrument=False)  # fmt: skip
        self.tap = Tap(ctx)
        swarm.agents.insert(1, self.tap)
        return swarm


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run produced, for comparison."""

    result: BacktestResult
    records: list[tuple[str, str, str]]
    state: dict[str, str]
    delivered: int
    skipped: int
    ahead: int = 0

    def equity_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.result.times_ms, self.result.equity, self.result.in_market):
            h.update(part.tobytes())
        for symbol in self.result.symbols:
            h.update(self.result.closes[symbol].tobytes())
        return h.hexdigest()


def agent_state(swarm: Swarm) -> dict[str, str]:
    """The end state of every agent that a skipped delivery could have left different."""
    risk = swarm.risk.engine
    ex = swarm.execution.engine
    venue: Any = ex.venue
    return {
        "risk.portfolio": repr(
            (risk.portfolio.cash, risk.portfolio.peak_equity, sorted(risk.portfolio.positions.items()))
        ),
        "risk.day": repr(
            (
                risk._day,
                risk._day_start_equity,
                risk._daily_floor,
                risk._daily_loss_hit,
                risk.state,
                risk.breaker_tripped,
            )
        ),
        "risk.returns": repr(
            (
                sorted((k, list(w.returns), w._last) for k, w in risk.returns.items()),
                risk._marks,
                risk.var,
                risk._var_alerted,
            )
        ),
        "risk.last_price": repr(sorted(risk.last_price.items())),
        "execution.portfolio": repr(
            (ex.portfolio.cash, ex.portfolio.peak_equity, sorted(ex.portfolio.positions.items()))
        ),
        "venue": repr(
            (
                sorted(venue._last_close.items()),
                [(p.parent, p.levels, p.active_from) for p in venue._protections],
                sorted(venue._net.items()),
            )
        ),
        "compliance.last_price": repr(sorted(swarm.compliance.gate.last_price.items())),
        "strategy.positions": repr(sorted(swarm.strategy.positions.items())),
        "strategy.series": repr(
            sorted(
                (
                    k,
                    s.last_close_time,
                    [getattr(st, "__dict__", None) or st.twin_state() for _, st, _ in s.book._entries],
                )
                for k, s in swarm.strategy.series.items()
            )
        ),
        "ta.series": repr(sorted((k, s.last_open_time, s.published, s.gaps) for k, s in swarm.ta.series.items())),
    }


def run(config: BacktestConfig, sources: Sequence[SeriesSource], *, wake: bool) -> Outcome:
    engine = TappedEngine(config, sources, wake=wake)
    result = asyncio.run(engine.run())
    swarm = engine.last_swarm
    assert swarm is not None
    stats = swarm.bus.stats
    return Outcome(result, engine.tap.records, agent_state(swarm), stats.delivered, stats.skipped, stats.ahead)


def assert_same(config: BacktestConfig, sources: Sequence[SeriesSource]) -> tuple[Outcome, Outcome]:
    """Run all-awake and with wake conditions; everything must be identical, bit for bit."""
    awake = run(config, sources, wake=False)
    woken = run(config, sources, wake=True)
    a, b = awake.result, woken.result
    assert woken.records == awake.records, _first_difference(awake.records, woken.records)
    assert [repr(f) for f in b.fills] == [repr(f) for f in a.fills]
    assert b.orders == a.orders
    assert [repr(t) for t in b.trips] == [repr(t) for t in a.trips]
    assert woken.equity_hash() == awake.equity_hash()
    assert str(b.final_equity) == str(a.final_equity)
    assert b.candles == a.candles
    assert b.dead_letters == a.dead_letters == 0
    for key, value in awake.state.items():
        assert woken.state[key] == value, f"{key} differs:\n awake {value}\n woken {woken.state[key]}"
    assert awake.skipped == 0
    assert woken.skipped > 0
    assert woken.delivered < awake.delivered
    assert awake.records
    assert any(r[0] == "fill" for r in awake.records)
    return awake, woken


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"record {i} differs:\n awake {x}\n woken {y}"
    return f"lengths differ: awake {len(a)}, woken {len(b)}"
