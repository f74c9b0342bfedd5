"""Steps shared by the chaos runs: waiting on the bus tap, the final HALT and the invariants."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from core.ports import DeadLetter
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.chaos import invariants as inv
from tests.chaos.scoreboard import BOARD
from tests.stackkit import StackHandle, Tap

INITIAL_CASH = Decimal(1_000_000)
STACK_ENV = {
    "TRADESWARM_EXECUTION_INITIAL_CASH": str(INITIAL_CASH),
    "TRADESWARM_RISK_INITIAL_CASH": str(INITIAL_CASH),
    "TRADESWARM_STRATEGY_INTENT_TTL_S": "10800",
    # compliance's per-order and per-day caps out of the way: the runs are about faults, not limits
    "TRADESWARM_COMPLIANCE_MAX_ORDER_NOTIONAL": "100000000",
    "TRADESWARM_COMPLIANCE_MAX_VOLUME_PER_DAY": "1000000000",
    "TRADESWARM_COMPLIANCE_MAX_VOLUME_PER_DAY_PER_SYMBOL": "1000000000",
}
"""The settings every chaos stack runs with."""


async def halt_and_check(
    s: StackHandle, tap: Tap, initial_cash: Decimal, *, scenario: str, ctl: inv.Ctl = inv.shared_ctl
) -> None:
    """HALT, wait until every queue drained, then record every invariant of the run."""
    halt = await s.api.post("/control/halt", headers=s.auth, json={"reason": "end of the chaos run"})
    assert halt.status_code == 202, halt.text
    await s.wait(lambda: s.command_complete(halt.json()["command_id"]), 90, "halt complete")
    drained = await wait_quiet(s, ctl)
    BOARD.record(scenario, "no message left unacked (agent queues empty)", drained is None, f"busy: {drained}")
    tapped = await tap.messages()
    for name, (ok, detail) in {
        "no order lost": await inv.orders_not_lost(s, tapped),
        "none duplicated (one order, one venue order per intent)": await inv.orders_not_duplicated(s),
        "fills once in PostgreSQL and once on the bus": await inv.fills_once(s, tapped),
        "orders terminal and equal to the venue's": await inv.orders_match_venue(s),
        "positions and cash reconcile with the fills": await inv.positions_and_cash_reconcile(s, initial_cash),
        "the audit chain verifies": await inv.audit_chain_verifies(s),
    }.items():
        BOARD.record(scenario, name, ok, detail)
    unexpected = await unexpected_letters(s, ctl)
    BOARD.record(scenario, "no other message dead-lettered", not unexpected, str(unexpected)[:500])


async def count(tap: Tap, prefix: str) -> int:
    """Messages on the tap whose routing key starts with ``prefix``."""
    return sum(1 for k, _, _ in await tap.messages() if k.startswith(prefix))


async def wait_quiet(s: StackHandle, ctl: inv.Ctl = inv.shared_ctl) -> dict[str, tuple[int, int]] | None:
    """Wait (generously) until every agent queue is empty and nothing unacked, three polls in a row;
    None then, else the queues still busy at the deadline."""
    quiet = 0
    busy = inv.agent_queues_drained(s.vhost, ctl)
    for _ in range(240):
        busy = inv.agent_queues_drained(s.vhost, ctl)
        quiet = quiet + 1 if busy is None else 0
        if quiet >= 3:
            return None
        await asyncio.sleep(0.5)
    return busy


async def unexpected_letters(s: StackHandle, ctl: inv.Ctl = inv.shared_ctl) -> dict[str, list[str]]:
    """Dead letters other than the test's own bad input and forgeries (their ids start with ``chaos-``)."""
    bus = RabbitMQBus(s.guest_url, connection_name="chaos-reader")
    await bus.start()
    out: dict[str, list[str]] = {}
    try:
        for queue, (ready, _) in inv.queues(s.vhost, ctl).items():
            if not queue.endswith(".dlq") or ready == 0:
                continue
            source = queue.removesuffix(".dlq")
            for letter in await bus.dead_letters(source):
                if b"chaos-" not in letter.body:
                    out.setdefault(source, []).append(letter.reason)
    finally:
        await bus.close()
    return out


async def letters(bus: RabbitMQBus, queue: str, marker: bytes, n: int) -> list[DeadLetter] | None:
    """The dead letters of ``queue`` whose body holds ``marker``, once there are ``n`` of them."""
    found = [d for d in await bus.dead_letters(queue) if marker in d.body]
    return found if len(found) >= n else None
