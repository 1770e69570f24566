"""Admission as tables: which live session gives up its slot, in which order waiters are served."""

from __future__ import annotations

import itertools
import random

import pytest

from meta_harness.domain.admission import Candidate, Waiter, choose_victim, next_waiter

PROTECTING = ("busy", "awaiting_permission", "has_pending", "pinned", "starting", "stopping")


def idle(task_id: str, last_used: float) -> Candidate:
    return Candidate(task_id=task_id, last_used=last_used)


# (what, live sessions as (id, last_used, protecting flags), expected victim)
VICTIM_TABLE: list[tuple[str, list[tuple[str, float, tuple[str, ...]]], str | None]] = [
    ("no live session", [], None),
    ("the only idle session", [("a", 7.0, ())], "a"),
    ("oldest last use", [("a", 3.0, ()), ("b", 1.0, ()), ("c", 2.0, ())], "b"),
    ("equal last use: smallest id", [("b", 1.0, ()), ("c", 1.0, ()), ("a", 1.0, ())], "a"),
    ("a protected oldest is skipped", [("a", 1.0, ("busy",)), ("b", 2.0, ())], "b"),
    ("stopping is never chosen twice", [("a", 1.0, ("stopping",)), ("b", 2.0, ())], "b"),
    ("all protected", [("a", 1.0, ("pinned",)), ("b", 2.0, ("starting",))], None),
    (
        "two flags at once still protect",
        [("a", 1.0, ("busy", "awaiting_permission")), ("b", 5.0, ())],
        "b",
    ),
]


@pytest.mark.parametrize(
    ("live", "victim"), [row[1:] for row in VICTIM_TABLE], ids=[row[0] for row in VICTIM_TABLE]
)
def test_the_victim_is_the_least_recently_used_unprotected_session(
    live: list[tuple[str, float, tuple[str, ...]]], victim: str | None
) -> None:
    candidates = [
        Candidate(task_id=t, last_used=used, **dict.fromkeys(flags, True))
        for t, used, flags in live
    ]
    assert choose_victim(candidates) == victim


@pytest.mark.parametrize(
    "flags", [(), *itertools.combinations(PROTECTING, 1), *itertools.combinations(PROTECTING, 2)]
)
def test_a_session_is_evictable_exactly_when_no_protecting_flag_is_set(
    flags: tuple[str, ...],
) -> None:
    candidate = Candidate(task_id="t", last_used=0.0, **dict.fromkeys(flags, True))
    assert candidate.evictable is (not flags)
    assert choose_victim([candidate]) == (None if flags else "t")


def test_the_choice_does_not_depend_on_the_order_sessions_are_listed() -> None:
    sessions = [idle(f"t{i}", float(i % 4)) for i in range(12)]
    expected = choose_victim(sessions)
    shuffler = random.Random(7)
    for _ in range(20):
        shuffler.shuffle(sessions)
        assert choose_victim(sessions) == expected == "t0"


# (priority, seq, id) in arrival order → the order they are served
WAITER_TABLE: list[tuple[str, list[Waiter], list[str]]] = [
    (
        "fifo among equals",
        [Waiter(0, 1, "a"), Waiter(0, 2, "b"), Waiter(0, 3, "c")],
        ["a", "b", "c"],
    ),
    (
        "lower priority value first",
        [Waiter(2, 1, "x"), Waiter(0, 2, "y"), Waiter(1, 3, "z")],
        ["y", "z", "x"],
    ),
    (
        "priority, then arrival",
        [Waiter(1, 1, "p1"), Waiter(0, 2, "q"), Waiter(1, 3, "p2"), Waiter(0, 4, "r")],
        ["q", "r", "p1", "p2"],
    ),
    ("negative priorities jump the queue", [Waiter(0, 1, "a"), Waiter(-1, 2, "vip")], ["vip", "a"]),
]


@pytest.mark.parametrize(
    ("waiters", "served"), [row[1:] for row in WAITER_TABLE], ids=[row[0] for row in WAITER_TABLE]
)
def test_waiters_are_served_by_priority_then_arrival(
    waiters: list[Waiter], served: list[str]
) -> None:
    queue = list(waiters)
    order: list[str] = []
    while (first := next_waiter(queue)) is not None:
        order.append(first.task_id)
        queue.remove(first)
    assert order == served
    assert [w.task_id for w in sorted(waiters)] == served
