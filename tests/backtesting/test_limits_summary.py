"""A backtest says what its limits did: every rejection, adjustment and alert by reason with its
count, the time spent in each trading state, and the effective limits — checked against what an
independent listener saw on the bus. Cash never goes below zero; the drawdown breaker lifts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backtesting.config import BacktestConfig
from backtesting.data import file_source, merge
from backtesting.engine import BacktestEngine, BacktestResult, Replay
from core.domain import DecisionVerdict, OrderStatus, Side, TradingState
from core.messages import ComplianceDecision, Envelope, Fill, OrderUpdate, RiskAlert, RiskDecision
from core.ports import QueueSpec
from core.routing import ALERTS, COMPLIANCE_DECISIONS, FILLS, ORDER_UPDATES, RISK_APPROVED, RISK_REJECTED

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "data" / "samples").glob("*.csv"))
TEST_DATA = sorted((ROOT / "tests" / "backtesting" / "data").glob("*.csv"))


@dataclass
class Seen:
    """What a listener of its own saw on the backtest's bus."""

    messages: list[tuple[datetime, Any]] = field(default_factory=list)

    async def __call__(self, envelope: Envelope) -> None:
        self.messages.append((envelope.ts_event, envelope.payload))

    def of(self, cls: type) -> list[Any]:
        return [p for _, p in self.messages if isinstance(p, cls)]


async def run(config: BacktestConfig, paths: list[Path]) -> tuple[BacktestResult, Seen]:
    engine = BacktestEngine(config, [file_source(p) for p in paths])
    swarm = engine.swarm()
    await swarm.start()
    seen = Seen()
    patterns = (RISK_APPROVED, RISK_REJECTED, COMPLIANCE_DECISIONS, ORDER_UPDATES, ALERTS, FILLS)
    await swarm.bus.subscribe(QueueSpec(name="test.listener", patterns=tuple(t.all() for t in patterns)), seen)
    replay = Replay(swarm, engine.symbols)
    for candle in merge(engine.sources):
        await replay.feed(candle)
    replay.finish()
    dead = await swarm.dead_letter_count()
    await swarm.stop()
    return replay.result(config, engine.series, 1.0, dead), seen


def count(items: list[Any], key: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        k = key(item)
        if k is not None:
            out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def lowest_cash(initial: Decimal, fills: list[Fill]) -> Decimal:
    """The lowest cash after any fill, recomputed from the fills alone."""
    cash, low = initial, initial
    for f in fills:
        cash += -(f.price * f.quantity + f.fee) if f.side is Side.BUY else f.price * f.quantity - f.fee
        low = min(low, cash)
    return low


def check_against_the_bus(result: BacktestResult, seen: Seen) -> dict[str, Any]:
    """The summary's counts equal what the listener saw; returns the summary."""
    summary = result.summary()
    risk = seen.of(RiskDecision)
    assert summary["rejections"]["risk"] == count(
        risk, lambda d: d.reason if d.verdict is DecisionVerdict.REJECT else None
    )
    assert summary["adjustments"]["risk"] == count(
        risk, lambda d: d.reason if d.verdict is DecisionVerdict.ADJUST else None
    )
    assert summary["approved"]["risk"] == sum(1 for d in risk if d.verdict is DecisionVerdict.APPROVE)
    compliance = seen.of(ComplianceDecision)
    assert summary["rejections"]["compliance"] == count(
        compliance, lambda d: d.reason if d.verdict is DecisionVerdict.REJECT else None
    )
    ended = (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED)
    assert summary["rejections"]["orders"] == count(
        seen.of(OrderUpdate),
        lambda u: f"{u.status.value}: {u.reason or 'no reason given'}" if u.status in ended else None,
    )
    assert summary["alerts"] == count(seen.of(RiskAlert), lambda a: f"{a.severity.value}.{a.code}")
    shares = summary["trading_states"]
    assert set(shares) == {"active", "reducing", "halted"}
    assert sum(s["share"] for s in shares.values()) == pytest.approx(1.0, abs=1e-5)
    span = (result.times_ms[-1] - result.times_ms[0]) / 1000
    assert sum(s["seconds"] for s in shares.values()) == pytest.approx(span)
    fills = seen.of(Fill)
    low = lowest_cash(result.config.initial_cash, fills)
    assert summary["cash_min"] == pytest.approx(float(low))
    assert low >= 0, "cash went below zero"
    return summary


@pytest.mark.parametrize("paths", [SAMPLES, TEST_DATA], ids=["data-samples", "tests-backtesting-data"])
async def test_default_backtests_on_the_shipped_samples_list_what_the_limits_did(paths: list[Path]) -> None:
    config = BacktestConfig()
    result, seen = await run(config, paths)
    summary = check_against_the_bus(result, seen)
    engine_settings = BacktestEngine(config, [file_source(p) for p in paths]).settings
    limits = summary["limits"]
    assert limits["risk"]["max_position_pct"] == float(engine_settings.risk.max_position_pct) == 0.25
    assert limits["risk"]["max_drawdown_pct"] == 0.2
    assert limits["risk"]["drawdown_recovery"] == "next_day"
    assert limits["risk"]["fee_reserve_bps"] == float(config.fee_bps + config.slippage_bps + 20)
    assert limits["compliance"]["max_order_notional"] == float(engine_settings.compliance.max_order_notional)
    assert limits["strategy"]["variance_limit"] == engine_settings.strategy.variance_limit
    assert limits["execution"]["taker_fee_bps"] == float(config.fee_bps)
    assert summary["consensus"]["execute"] > 0


async def test_a_position_cap_that_cuts_every_entry_is_listed() -> None:
    """Half of equity per entry under the default 25% position cap: every entry is cut, and the
    summary says so (the case where limits were applied silently)."""
    result, seen = await run(BacktestConfig(fraction=Decimal("0.5")), SAMPLES)
    summary = check_against_the_bus(result, seen)
    cut = summary["adjustments"]["risk"]["max_position"]
    entries = [d for d in seen.of(RiskDecision) if d.reason != "exit" and d.approved]
    assert cut == len(entries) > 0


async def test_the_drawdown_breaker_trips_lifts_and_its_time_is_reported() -> None:
    config = BacktestConfig(fraction=Decimal("0.5"), risk={"max_drawdown_pct": Decimal("0.02")})
    result, seen = await run(config, SAMPLES)
    summary = check_against_the_bus(result, seen)
    changes = [(ts, a) for ts, a in seen.messages if isinstance(a, RiskAlert) and a.trading_state is not None]
    trips = [ts for ts, a in changes if a.trading_state is TradingState.REDUCING]
    lifts = [ts for ts, a in changes if a.trading_state is TradingState.ACTIVE]
    assert summary["alerts"]["critical.max_drawdown"] == len(trips) > 1
    assert summary["alerts"]["info.drawdown_breaker_lifted"] == len(lifts) >= len(trips) - 1
    for trip, lift in zip(trips, lifts, strict=False):  # each lifts at the first candle of the next UTC day
        assert lift > trip
        assert lift.date() > trip.date()
    end = datetime.fromtimestamp(result.times_ms[-1] / 1000, tz=UTC)
    reducing = sum((lift - trip).total_seconds() for trip, lift in zip(trips, lifts, strict=False))
    if len(trips) > len(lifts):
        reducing += (end - trips[-1]).total_seconds()
    assert summary["trading_states"]["reducing"]["seconds"] == pytest.approx(reducing)
    assert 0 < summary["trading_states"]["reducing"]["share"] < 0.5
    # the run keeps trading after the breaker lifted: entries are approved after the first trip
    approved_after = [
        ts
        for ts, d in seen.messages
        if isinstance(d, RiskDecision) and d.approved and d.reason != "exit" and ts > lifts[0]
    ]
    assert approved_after


async def test_full_entries_never_take_cash_below_zero() -> None:
    """100% of equity per entry, limits lifted, fees and slippage charged: the reserve (and the
    paper venue's balance check behind it) keeps cash at or above zero after every fill."""
    config = BacktestConfig(fraction=Decimal(1), no_limits=True, slippage_bps=Decimal(5))
    result, seen = await run(config, SAMPLES)
    check_against_the_bus(result, seen)
    assert result.min_cash is not None
    assert result.min_cash < Decimal(100), "the entries did use (almost) all the cash"
