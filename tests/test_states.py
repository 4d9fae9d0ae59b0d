from __future__ import annotations

import pytest

from podflow.states import TERMINAL, TRANSITIONS, RunStatus, allowed_sources, can_transition, is_terminal


def test_terminal_states_are_success_failure_and_revoked() -> None:
    assert {s for s in RunStatus if is_terminal(s)} == {RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.REVOKED}
    assert frozenset(s for s in RunStatus if is_terminal(s)) == TERMINAL


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_a_terminal_state_is_never_left(terminal: RunStatus) -> None:
    assert all(not can_transition(terminal, target) for target in RunStatus)


def test_the_happy_path_and_the_reclaim_are_allowed() -> None:
    assert can_transition("PENDING", "STARTED")
    assert can_transition("STARTED", "STARTED")  # a new attempt
    assert can_transition("STARTED", "SUCCESS") and can_transition("STARTED", "FAILURE")
    assert not can_transition("PENDING", "SUCCESS")


def test_cancel_is_allowed_from_every_live_state() -> None:
    assert allowed_sources(RunStatus.REVOKED) == (RunStatus.PENDING, RunStatus.STARTED)
    assert allowed_sources(RunStatus.SUCCESS) == (RunStatus.STARTED,)


def test_every_state_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(RunStatus)
