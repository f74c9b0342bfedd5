"""The chaos suite's scoreboard: (scenario, invariant, pass/fail), printed at the end of the run.

Scenarios record each invariant they check (:func:`check`) instead of stopping at the first broken
one, so the board shows every result; the test then fails if any row failed. Invariants proved by
other suites (``tests/safety``) are listed as references and show the outcome of that test when it
ran in the same session (``not run`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One line of the board."""

    scenario: str
    invariant: str
    outcome: str  # pass | FAIL | not run
    detail: str = ""
    source: str = "tests/chaos"


@dataclass
class Board:
    """Every row recorded in this session, in order."""

    rows: list[Row] = field(default_factory=list)

    def record(self, scenario: str, invariant: str, ok: bool, detail: str = "") -> bool:
        """Record one invariant's result; returns ``ok``."""
        self.rows.append(Row(scenario, invariant, "pass" if ok else "FAIL", "" if ok else detail))
        return ok

    def failures(self, since: int = 0) -> list[Row]:
        """The failed rows, from row ``since`` on (a test checks only the rows it recorded)."""
        return [r for r in self.rows[since:] if r.outcome == "FAIL"]


BOARD = Board()

REFERENCES: dict[str, tuple[str, str]] = {
    "tests/safety/test_crash_e2e.py::test_kill_9_of_execution_at_every_point_loses_nothing": (
        "kill -9 of execution after persist / after submit / mid partial fill / after fill store, and from outside",
        "no order lost or duplicated, fills once in PG and on the bus, positions = fills, unique venue ids",
    ),
    "tests/safety/test_control_e2e.py::test_forged_commands_change_nothing_and_the_intended_state_is_enforced": (
        "forged control commands (other user, forged sender)",
        "refused, dead-lettered with the reason, intended state enforced",
    ),
    "tests/safety/test_heartbeat_sender.py::test_a_heartbeat_from_another_user_is_dead_lettered_on_rabbitmq": (
        "forged heartbeats (another agent's user; an administrator)",
        "dead-lettered with the reason before the registry sees them; critical alert",
    ),
    "tests/safety/test_clock.py::test_the_rabbitmq_bus_dead_letters_a_message_from_the_future": (
        "clock jump (a message from the future)",
        "dead-lettered with the reason, the clock does not move",
    ),
    "tests/safety/test_broker_limits.py::test_a_full_queue_dead_letters_its_oldest_messages": (
        "slow consumer, queue growth to the cap",
        "oldest messages dead-lettered (maxlen), never silently dropped; alert rules watch the same cap",
    ),
    "tests/safety/test_broker_alarm.py::test_readyz_is_not_ready_while_the_broker_blocks_publishing": (
        "broker memory alarm (private node)",
        "agents report not ready while blocked, ready again after",
    ),
    "tests/safety/test_risk_once.py::test_a_restarted_risk_agent_does_not_decide_an_intent_again": (
        "duplicate intent after a risk restart",
        "decided once (PostgreSQL ledger)",
    ),
    "tests/control/test_broker_vhosts.py::test_two_stacks_on_two_vhosts_run_side_by_side": (
        "two stacks on two vhosts of one broker",
        "users per vhost; the first stack's credentials survive the second's apply",
    ),
}
"""nodeid -> (scenario, invariant) of tests elsewhere that prove a reliability invariant."""

REFERENCE_OUTCOMES: dict[str, str] = {}
"""nodeid -> pass | FAIL, filled as those tests report."""


def render(board: Board, references: dict[str, str]) -> list[str]:
    """The board as text lines: this suite's rows, then the references."""
    rows = list(board.rows)
    for nodeid, (scenario, invariant) in REFERENCES.items():
        rows.append(Row(scenario, invariant, references.get(nodeid, "not run"), source=nodeid.split("::")[0]))
    if not rows:
        return []
    width_s = min(max(len(r.scenario) for r in rows), 60)
    width_i = min(max(len(r.invariant) for r in rows), 70)
    lines = [f"{'scenario':<{width_s}}  {'invariant':<{width_i}}  result   source"]
    for r in rows:
        lines.append(
            f"{r.scenario[:width_s]:<{width_s}}  {r.invariant[:width_i]:<{width_i}}  {r.outcome:<7}  {r.source}"
        )
        if r.detail:
            lines.append(f"    -> {r.detail[:300]}")
    passed = sum(r.outcome == "pass" for r in rows)
    failed = sum(r.outcome == "FAIL" for r in rows)
    lines.append(f"{passed} passed, {failed} failed, {len(rows) - passed - failed} not run (of {len(rows)} rows)")
    return lines
