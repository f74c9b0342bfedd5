"""Control commands are authenticated, on the multi-process stack (issue #20), real RabbitMQ and PostgreSQL.

One stack (``tradeswarm stack up``: one broker user per agent, replayed real candles), checked in order:

1. a RESUME, PAUSE, HALT and FLATTEN published by a user that is not the orchestrator's (``guest``,
   which has full write access to the vhost) change nothing, are dead-lettered with the reason by every
   agent that takes commands, and raise a critical alert each;
2. the legitimate HALT (API -> orchestrator) still works; with the swarm halted, a RESUME sent to one
   agent with the orchestrator's own broker credentials, behind the orchestrator's back: execution
   refuses it (the swarm's saved intent is HALTED, its protective exits stay suspended), strategy obeys
   and is brought back to HALTED by the orchestrator within the heartbeat timeout, with critical
   alerts; ``/health`` agrees again, and no order reaches the venue in between;
3. the orchestrator killed with SIGKILL while halted comes back still intending HALTED (kept in
   PostgreSQL), and nothing resumed meanwhile; the legitimate RESUME then restores trading;
4. execution refuses an approved order for a symbol the stack does not trade; risk decides a
   duplicate intent (same intent id, two messages) once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agents.base.registry import AGENT_NAMES
from core.clock import SimulatedClock, WallClock
from core.domain import CommandKind, Direction, Severity, Side
from core.messages import Command, CommandAck, Envelope, RiskAlert, RiskDecision, TradeIntent
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.conftest import RABBIT_BASE
from tests.control.data import approved_order
from tests.stackkit import StackHandle, Tap, launch_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

COMMAND_KINDS = ("strategy", "risk", "compliance", "execution")
"""The agents that take commands (each has a command queue per instance)."""


async def test_forged_commands_change_nothing_and_the_intended_state_is_enforced(
    rabbit_vhost: str, postgres_dsn: str, tmp_path: Path
) -> None:
    tap = await Tap(f"{RABBIT_BASE}/{rabbit_vhost}", ["alert.#", "control.ack.#", "risk.#"]).start()
    try:
        async with launch_stack(rabbit_vhost, postgres_dsn, tmp_path / "stack", replay_speed=3600 / 0.1) as s:
            await s.wait(lambda: _all_up(s), 60, "every agent UP")
            await s.wait(lambda: s.value("SELECT count(*) FROM orders WHERE venue_order_id IS NOT NULL"), 180, "orders")
            await _forged_commands(s, tap)
            await _forced_active_is_halted_again(s, tap)
            await _orchestrator_restart_keeps_the_halt(s)
            await _untraded_symbol_and_duplicate_intent(s, tap)
            down = s.cli("down")
            assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
    finally:
        await tap.close()


async def _all_up(s: StackHandle) -> dict[str, Any] | None:
    health = (await s.api.get("/health")).json()
    return health if health["status"] == "ok" and health["agents_total"] == len(AGENT_NAMES) else None


async def _agents(s: StackHandle) -> dict[str, dict[str, Any]]:
    return {a["agent_id"]: a for a in (await s.api.get("/agents")).json()}


async def _forged_commands(s: StackHandle, tap: Tap) -> None:
    before = await _agents(s)
    assert not any(a["halted"] or a["paused"] for a in before.values())
    guest = RabbitMQBus(s.guest_url, connection_name="forger")
    await guest.start()
    forged_ids = []
    try:
        for kind in (CommandKind.RESUME, CommandKind.PAUSE, CommandKind.HALT, CommandKind.FLATTEN):
            command = Command(command_id=uuid.uuid4(), kind=kind, reason="forged", issued_by="orchestrator")
            forged_ids.append(command.command_id)
            await guest.publish(Envelope.wrap(command, source="orchestrator-1", clock=WallClock()))
        for agent_kind in COMMAND_KINDS:
            queue = f"{agent_kind}.commands.{agent_kind.replace('_', '-')}-1"
            letters = await s.wait(partial(_letters, guest, queue, 4), 30, f"the forged commands in {queue}.dlq")
            assert all("not by a trusted sender" in d.reason for d in letters), letters
            assert all(s.user("orchestrator") in d.reason for d in letters), letters
    finally:
        await guest.close()
    await asyncio.sleep(2)  # four heartbeats: any change would show
    after = await _agents(s)
    assert not any(a["halted"] or a["paused"] for a in after.values())
    health = (await s.api.get("/health")).json()
    assert (health["trading"], health["trading_intended"]) == ("active", "active")
    messages = [e.payload for _, e, _ in await tap.messages()]
    acked = [m for m in messages if isinstance(m, CommandAck) and m.command_id in forged_ids]
    assert acked == []  # nobody obeyed
    alerts = [m for m in messages if isinstance(m, RiskAlert) and m.code == "forged_control_message"]
    assert len(alerts) >= 4 * len(COMMAND_KINDS)
    assert {a.severity for a in alerts} == {Severity.CRITICAL}
    # nothing stopped: orders still reach the venue
    sent = await s.value("SELECT count(*) FROM orders WHERE venue_order_id IS NOT NULL")
    await s.wait(lambda: _more(s, sent), 120, "orders after the forged commands")


async def _letters(bus: RabbitMQBus, queue: str, n: int) -> list[Any] | None:
    letters = list(await bus.dead_letters(queue))
    return letters if len(letters) >= n else None


async def _more(s: StackHandle, before: int) -> bool:
    return int(await s.value("SELECT count(*) FROM orders WHERE venue_order_id IS NOT NULL")) > before


async def _forced_active_is_halted_again(s: StackHandle, tap: Tap) -> None:
    halt = await s.api.post("/control/halt", headers=s.auth, json={"reason": "drill"})
    assert halt.status_code == 202, halt.text
    await s.wait(lambda: s.command_complete(halt.json()["command_id"]), 60, "halt complete")
    health = (await s.api.get("/health")).json()
    assert (health["trading"], health["trading_intended"]) == ("halted", "halted")
    await asyncio.sleep(2)  # settle: later heartbeats show every agent halted
    sent = {r[0] for r in await s.fetch("SELECT client_order_id FROM orders WHERE venue_order_id IS NOT NULL")}
    fills = await s.value("SELECT count(*) FROM fills")

    # agents are forced into ACTIVE with the orchestrator's own credentials, not through the orchestrator
    insider = RabbitMQBus(s.url_as("orchestrator"), connection_name="insider")
    await insider.start()
    try:
        # execution checks the swarm's saved intent and refuses: its protective exits stay suspended
        to_execution = Command(command_id=uuid.uuid4(), kind=CommandKind.RESUME, target="execution", reason="forced")
        await insider.publish(Envelope.wrap(to_execution, source="orchestrator-1", clock=WallClock()))
        refused = await s.wait(lambda: _ack(tap, to_execution.command_id), 30, "execution's answer to the RESUME")
        assert not refused.ok
        assert "intended trading state is halted" in refused.detail
        # strategy obeys (it has no such check): the orchestrator halts it again
        resume = Command(command_id=uuid.uuid4(), kind=CommandKind.RESUME, target="strategy", reason="forced")
        forced_at = time.monotonic()
        await insider.publish(Envelope.wrap(resume, source="orchestrator-1", clock=WallClock()))
    finally:
        await insider.close()

    async def halted_again() -> bool:
        acks = [e.payload for _, e, _ in await tap.messages() if isinstance(e.payload, CommandAck)]
        mine = [a for a in acks if a.agent_kind == "strategy"]
        obeyed = [i for i, a in enumerate(mine) if a.command_id == resume.command_id and a.ok]
        return bool(obeyed) and any(a.kind is CommandKind.HALT for a in mine[obeyed[0] + 1 :])

    await s.wait(halted_again, 30, "strategy halted again by the orchestrator")
    took = time.monotonic() - forced_at
    assert took <= s.heartbeat_timeout_s, f"re-halted after {took:.1f}s"
    alerts = [e.payload for _, e, _ in await tap.messages() if isinstance(e.payload, RiskAlert)]
    mismatch = [a for a in alerts if a.code == "trading_state_mismatch"]
    assert mismatch
    assert mismatch[0].severity is Severity.CRITICAL
    assert "strategy-1" in mismatch[0].message
    assert any(a.code == "resume_refused" and a.severity is Severity.CRITICAL for a in alerts)
    await s.wait(lambda: _halted(s, "strategy-1"), 10, "strategy reported halted")
    assert await _halted(s, "execution-1")
    health = (await s.api.get("/health")).json()
    assert (health["trading"], health["disagreeing"]) == ("halted", [])
    await asyncio.sleep(2)
    late = await s.fetch(
        "SELECT client_order_id, status, reason, request::text FROM orders WHERE venue_order_id IS NOT NULL"
        " AND NOT client_order_id = ANY($1::text[])",
        list(sent),
    )
    assert [dict(r) for r in late] == []  # no order reached the venue, protective exits included
    assert await s.value("SELECT count(*) FROM fills") == fills


async def _ack(tap: Tap, command_id: uuid.UUID) -> CommandAck | None:
    acks = [e.payload for _, e, _ in await tap.messages() if isinstance(e.payload, CommandAck)]
    return next((a for a in acks if a.command_id == command_id), None)


async def _paused(s: StackHandle, agent_id: str) -> bool:
    return bool((await _agents(s)).get(agent_id, {}).get("paused"))


async def _halted(s: StackHandle, agent_id: str) -> bool:
    return bool((await _agents(s)).get(agent_id, {}).get("halted"))


async def _orchestrator_restart_keeps_the_halt(s: StackHandle) -> None:
    killed = s.kill9("orchestrator")
    await s.wait(lambda: s.state().agents["orchestrator"].pid not in (None, killed), 60, "orchestrator restarted")
    health = await s.wait(lambda: _all_up(s), 60, "the new orchestrator sees every agent")
    assert health["trading_intended"] == "halted"  # from PostgreSQL, not guessed from heartbeats
    await asyncio.sleep(2)
    health = (await s.api.get("/health")).json()
    assert (health["trading"], health["trading_intended"]) == ("halted", "halted")
    assert all(a["halted"] for k, a in (await _agents(s)).items() if k.split("-")[0] in COMMAND_KINDS)
    resumed = await s.api.post("/control/resume", headers=s.auth)
    assert resumed.status_code == 202, resumed.text
    await s.wait(lambda: s.command_complete(resumed.json()["command_id"]), 60, "resume complete")
    sent = await s.value("SELECT count(*) FROM orders WHERE venue_order_id IS NOT NULL")
    await s.wait(lambda: _more(s, sent), 120, "orders after the resume")
    assert (await s.api.get("/health")).json()["trading"] == "active"
    # the legitimate PAUSE still works too (and RESUME after it)
    paused = await s.api.post("/control/pause", headers=s.auth, json={"reason": "drill"})
    assert paused.status_code == 202, paused.text
    await s.wait(lambda: s.command_complete(paused.json()["command_id"]), 60, "pause complete")
    health = (await s.api.get("/health")).json()
    assert (health["trading"], health["trading_intended"]) == ("paused", "paused")
    await s.wait(lambda: _paused(s, "strategy-1"), 10, "strategy's heartbeat showing the pause")
    resumed = await s.api.post("/control/resume", headers=s.auth)
    await s.wait(lambda: s.command_complete(resumed.json()["command_id"]), 60, "resume after pause complete")


async def _untraded_symbol_and_duplicate_intent(s: StackHandle, tap: Tap) -> None:
    compliance = RabbitMQBus(s.url_as("compliance"), connection_name="compliance-insider")
    strategy = RabbitMQBus(s.url_as("strategy"), connection_name="strategy-insider")
    await compliance.start()
    await strategy.start()
    try:
        eth = approved_order(5).model_copy(update={"symbol": "ETH/USDT", "client_order_id": "untraded-eth"})
        market = await s.value("SELECT max(created_at) FROM orders")  # execution runs on the replay's time
        await compliance.publish(Envelope.wrap(eth, source="compliance-1", clock=SimulatedClock(market)))
        row = await s.wait(lambda: _order(s, "untraded-eth"), 30, "the untraded order refused")
        assert (row["status"], row["reason"], row["venue_order_id"]) == ("rejected", "symbol_not_traded", None)

        now = WallClock().now()
        intent = TradeIntent(
            intent_id=uuid.uuid4(), venue="binance", symbol="BTC/USDT", timeframe="1h", side=Side.BUY,
            direction=Direction.LONG, reference_price=approved_order(0).reference_price, score=90, confidence=0.9,
            decided_at=now, expires_at=now + timedelta(hours=1), strategies=("sma_cross",),
        )  # fmt: skip
        for _ in range(2):  # two messages, one intent
            await strategy.publish(Envelope.wrap(intent, source="strategy-1", clock=WallClock()))
        await s.wait(lambda: s.value("SELECT count(*) FROM risk_intents WHERE intent_id = $1", intent.intent_id), 30,
                     "the intent decided")  # fmt: skip
        await asyncio.sleep(2)
        decided = [e.payload for _, e, _ in await tap.messages() if isinstance(e.payload, RiskDecision)]
        assert len([d for d in decided if d.intent_id == intent.intent_id]) == 1
        assert await s.value("SELECT count(*) FROM risk_intents WHERE intent_id = $1", intent.intent_id) == 1
    finally:
        await compliance.close()
        await strategy.close()


async def _order(s: StackHandle, coid: str) -> Any:
    rows = await s.fetch("SELECT * FROM orders WHERE client_order_id = $1", coid)
    return rows[0] if rows and rows[0]["status"] == "rejected" else None
