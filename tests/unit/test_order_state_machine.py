"""Property tests of the order state machine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain import OrderStatus
from core.errors import IllegalTransition
from core.messages import LEGAL_TRANSITIONS, can_transition, transition

statuses = st.sampled_from(list(OrderStatus))


@given(statuses, statuses)
def test_transition_agrees_with_the_table(current: OrderStatus, target: OrderStatus) -> None:
    if target in LEGAL_TRANSITIONS[current]:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            transition(current, target)


@given(st.lists(statuses, max_size=30))
def test_any_legal_walk_never_leaves_a_terminal_state(path: list[OrderStatus]) -> None:
    state = OrderStatus.PENDING_NEW
    for target in path:
        if can_transition(state, target):
            assert not state.is_terminal
            state = transition(state, target)
    if state.is_terminal:
        assert all(not can_transition(state, s) for s in OrderStatus)


def test_every_state_is_reachable_from_pending_new() -> None:
    seen = {OrderStatus.PENDING_NEW}
    frontier = [OrderStatus.PENDING_NEW]
    while frontier:
        for nxt in LEGAL_TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(OrderStatus)


def test_terminal_states_are_exactly_those_without_exits() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == {s for s, nxt in LEGAL_TRANSITIONS.items() if not nxt}
