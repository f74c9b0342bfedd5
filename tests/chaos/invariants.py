"""The invariants every chaos scenario checks afterwards, read from the venue's book, PostgreSQL and
the broker (never from an agent's own word). Each returns ``(ok, detail)`` for the scoreboard."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from core.messages import Envelope, Fill, OrderRequest
from core.trading.audit import AuditRecord, verify_chain
from tests.conftest import rabbitmqctl
from tests.stackkit import OPEN_STATUSES, StackHandle

Result = tuple[bool, str]
Tapped = list[tuple[str, Envelope, str | None]]


async def orders_not_lost(s: StackHandle, tapped: Tapped) -> Result:
    """Every order compliance approved (its broker user on the bus) is stored by execution, and every
    stored order that reached no venue was refused (never silently dropped)."""
    approved = {e.payload.client_order_id for _, e, user in tapped if isinstance(e.payload, OrderRequest)
                and user == s.user("compliance")}  # fmt: skip
    stored = {r["client_order_id"]: r for r in await s.fetch("SELECT client_order_id, status FROM orders")}
    venue = {r["client_order_id"] for r in await s.fetch("SELECT client_order_id FROM paper_venue_orders")}
    lost = sorted(approved - set(stored))
    unsent = sorted(c for c, r in stored.items() if c not in venue and r["status"] != "rejected")
    ok = bool(approved) and not lost and not unsent
    return ok, f"approved={len(approved)} lost={lost[:5]} stored-but-never-sent-and-not-rejected={unsent[:5]}"


async def orders_not_duplicated(s: StackHandle) -> Result:
    """Client order ids unique, one execution order and one venue order per intent, venue ids unique."""
    per_intent = await s.fetch("SELECT intent_id, count(*) AS n FROM orders GROUP BY intent_id HAVING count(*) > 1")
    venue_rows = await s.fetch("SELECT client_order_id, venue_order_id, body FROM paper_venue_orders")
    bodies = [orjson.loads(r["body"]) for r in venue_rows]
    # the venue's own protective exits are not orders of an intent
    venue_intents = Counter(b["request"]["intent_id"] for b in bodies if not b.get("own"))
    twice_at_venue = [i for i, n in venue_intents.items() if i is not None and n > 1]
    venue_ids = Counter(r["venue_order_id"] for r in venue_rows)
    ok = not per_intent and not twice_at_venue and all(n == 1 for n in venue_ids.values())
    return ok, f"intents with >1 order: {[str(r['intent_id']) for r in per_intent][:5]}; at venue: {twice_at_venue[:5]}"


async def fills_once(s: StackHandle, tapped: Tapped) -> Result:
    """Every venue fill is in ``fills`` exactly once, nothing else is, and execution published each
    fill once: one message id per fill (a copy the test published again keeps its message id)."""
    venue = {r["client_order_id"]: orjson.loads(r["body"]) for r in await s.fetch("SELECT * FROM paper_venue_orders")}
    venue_fills = {f["fill_id"] for body in venue.values() for f in body.get("fills", [])}
    stored = Counter(r["fill_id"] for r in await s.fetch("SELECT fill_id FROM fills"))
    published: dict[str, set[str]] = defaultdict(set)
    for _, e, _ in tapped:
        if isinstance(e.payload, Fill):
            published[e.payload.fill_id].add(str(e.message_id))
    twice = [f for f, n in stored.items() if n > 1] + [f for f, ids in published.items() if len(ids) > 1]
    ok = bool(venue_fills) and set(stored) == venue_fills and not twice and set(published) == venue_fills
    statuses = Counter((r["status"], r["reason"][:80]) for r in await s.fetch("SELECT status, reason FROM orders"))
    return ok, (
        f"orders by status/reason: {dict(statuses)}; "
        f"venue={len(venue_fills)} stored={len(stored)} published={len(published)} twice={twice[:5]} "
        f"missing-in-pg={sorted(venue_fills - set(stored))[:3]} extra-in-pg={sorted(set(stored) - venue_fills)[:3]}"
    )


async def orders_match_venue(s: StackHandle) -> Result:
    """After HALT: every order is terminal and has the venue's status and filled quantity."""
    orders = {r["client_order_id"]: r for r in await s.fetch("SELECT * FROM orders")}
    venue = {r["client_order_id"]: orjson.loads(r["body"]) for r in await s.fetch("SELECT * FROM paper_venue_orders")}
    open_ = [c for c, o in orders.items() if o["status"] in OPEN_STATUSES]
    differ = []
    for coid, at_venue in venue.items():
        order = orders.get(coid)
        filled = sum((Decimal(f["quantity"]) for f in at_venue.get("fills", [])), Decimal(0))
        if order is None or (order["status"], order["filled_quantity"]) != (at_venue["status"], filled):
            differ.append(coid)
    return not open_ and not differ, f"open={open_[:5]} differ-from-venue={differ[:5]}"


async def positions_and_cash_reconcile(s: StackHandle, initial_cash: Decimal) -> Result:
    """Positions are the sum of the fills; cash is the initial cash less what the fills cost."""
    fills = await s.fetch("SELECT venue, symbol, side, price, quantity, fee FROM fills")
    net: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cash = initial_cash
    for f in fills:
        sign = 1 if f["side"] == "buy" else -1
        net[(f["venue"], f["symbol"])] += sign * f["quantity"]
        cash -= sign * f["price"] * f["quantity"] + f["fee"]
    wrong = [
        (p["symbol"], p["quantity"], net[(p["venue"], p["symbol"])])
        for p in await s.fetch("SELECT venue, symbol, quantity FROM positions")
        if p["quantity"] != net[(p["venue"], p["symbol"])]
    ]
    snapshot = await s.fetch("SELECT cash FROM portfolio_snapshots ORDER BY ts DESC, cash LIMIT 1")
    stored_cash = snapshot[0]["cash"] if snapshot else None
    cash_ok = stored_cash is not None and abs(stored_cash - cash) <= Decimal("0.00000001")
    return not wrong and cash_ok, f"positions != fills: {wrong[:3]}; cash stored={stored_cash} from fills={cash}"


async def audit_chain_verifies(s: StackHandle) -> Result:
    """The hash-chained audit log verifies from its first row."""
    rows = await s.fetch("SELECT seq, ts, kind, ref, payload, prev_hash, hash FROM audit_log ORDER BY seq")
    records = [
        AuditRecord(r["seq"], r["ts"], r["kind"], r["ref"], r["payload"], r["prev_hash"], r["hash"]) for r in rows
    ]
    problem = verify_chain(records)
    return bool(records) and problem is None, f"{len(records)} records; problem: {problem}"


Ctl = Callable[..., str]
"""Runs ``rabbitmqctl <args>`` against the stack's broker and returns its output."""


def shared_ctl(*args: str) -> str:
    """``rabbitmqctl`` of the shared broker."""
    return rabbitmqctl(*args).stdout


def queues(vhost: str, ctl: Ctl = shared_ctl) -> dict[str, tuple[int, int]]:
    """``queue -> (ready, unacked)`` of a vhost, from the broker."""
    out = ctl(
        "list_queues", "-q", "--no-table-headers", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"
    )
    result: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            result[parts[0]] = (int(parts[1]), int(parts[2]))
    return result


def agent_queues_drained(vhost: str, ctl: Ctl = shared_ctl) -> dict[str, tuple[int, int]] | None:
    """None when every agent queue (not a DLQ, not a test's tap) is empty and nothing is unacked,
    else the queues that still hold something."""
    busy = {
        q: counts
        for q, counts in queues(vhost, ctl).items()
        if not q.endswith(".dlq") and not q.startswith("tap.") and counts != (0, 0)
    }
    return busy or None


def dead_letter_counter(metrics_text: str, queue: str) -> float:
    """``tradeswarm_messages_dead_lettered_total`` of ``queue`` in a /metrics page."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("tradeswarm_messages_dead_lettered_total{") and f'queue="{queue}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def summary(values: dict[str, Any]) -> str:
    """A short ``k=v`` line for details."""
    return " ".join(f"{k}={v}" for k, v in values.items())
