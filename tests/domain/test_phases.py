"""Phase transition tables: every pair is allowed exactly when the table says so."""

from __future__ import annotations

import itertools

import pytest

from meta_harness.base.errors import IllegalTransition
from meta_harness.domain.phases import (
    SESSION_TRANSITIONS,
    TASK_TRANSITIONS,
    SessionPhase,
    TaskPhase,
    advance_session,
    advance_task,
)

TASK_PAIRS = [(a, b) for a, b in itertools.product(TaskPhase, TaskPhase) if a is not b]
SESSION_PAIRS = [(a, b) for a, b in itertools.product(SessionPhase, SessionPhase) if a is not b]


@pytest.mark.parametrize(("current", "new"), TASK_PAIRS, ids=lambda p: str(p))
def test_a_task_phase_change_is_allowed_iff_the_table_lists_it(
    current: TaskPhase, new: TaskPhase
) -> None:
    if new in TASK_TRANSITIONS[current]:
        assert advance_task(current, new) is new
    else:
        with pytest.raises(IllegalTransition, match=f"{current} -> {new}"):
            advance_task(current, new)


@pytest.mark.parametrize(("current", "new"), SESSION_PAIRS, ids=lambda p: str(p))
def test_a_session_phase_change_is_allowed_iff_the_table_lists_it(
    current: SessionPhase, new: SessionPhase
) -> None:
    if new in SESSION_TRANSITIONS[current]:
        assert advance_session(current, new) is new
    else:
        with pytest.raises(IllegalTransition, match=f"{current} -> {new}"):
            advance_session(current, new)


@pytest.mark.parametrize("phase", list(TaskPhase))
def test_staying_in_the_same_task_phase_is_a_no_op(phase: TaskPhase) -> None:
    assert advance_task(phase, phase) is phase


@pytest.mark.parametrize("phase", list(SessionPhase))
def test_staying_in_the_same_session_phase_is_a_no_op(phase: SessionPhase) -> None:
    assert advance_session(phase, phase) is phase


def test_every_phase_has_a_row_in_its_table() -> None:
    assert set(TASK_TRANSITIONS) == set(TaskPhase)
    assert set(SESSION_TRANSITIONS) == set(SessionPhase)


def test_terminal_task_phases_allow_no_way_out() -> None:
    for phase in TaskPhase:
        assert phase.terminal == (TASK_TRANSITIONS[phase] == frozenset())


def test_the_documented_task_life_cycle_is_allowed() -> None:
    phase = TaskPhase.PENDING
    for step in (TaskPhase.ACTIVE, TaskPhase.WAITING, TaskPhase.ACTIVE, TaskPhase.DONE):
        phase = advance_task(phase, step)
    assert phase is TaskPhase.DONE


def test_the_documented_session_life_cycle_with_a_swap_is_allowed() -> None:
    phase = SessionPhase.ABSENT
    for step in (
        SessionPhase.STARTING,
        SessionPhase.IDLE,
        SessionPhase.BUSY,
        SessionPhase.IDLE,
        SessionPhase.STOPPING,
        SessionPhase.SWAPPED,
        SessionPhase.RESTORING,
        SessionPhase.IDLE,
        SessionPhase.CRASHED,
        SessionPhase.RESTORING,
    ):
        phase = advance_session(phase, step)
    assert phase is SessionPhase.RESTORING


def test_live_and_slot_holding_session_phases() -> None:
    assert {p for p in SessionPhase if p.live} == {SessionPhase.IDLE, SessionPhase.BUSY}
    assert {p for p in SessionPhase if p.holds_slot} == {
        SessionPhase.STARTING,
        SessionPhase.RESTORING,
        SessionPhase.IDLE,
        SessionPhase.BUSY,
        SessionPhase.STOPPING,
    }
