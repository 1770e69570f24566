"""Choosing which idle session gives up its slot, and which waiting task gets one."""

from __future__ import annotations

from typing import Any

import pytest

from meta_harness.domain.admission import (
    Admission,
    Candidate,
    Waiter,
    admit,
    choose_victim,
    next_waiter,
)


def c(task_id: str, last_used: float, **flags: Any) -> Candidate:
    return Candidate(task_id=task_id, last_used=last_used, **flags)


VICTIMS = [
    ("empty pool", [], None),
    ("one idle", [c("a", 5)], "a"),
    ("least recently used wins", [c("a", 5), c("b", 1), c("c", 3)], "b"),
    ("ties broken by id", [c("b", 1), c("a", 1)], "a"),
    ("busy never", [c("a", 1, busy=True), c("b", 9)], "b"),
    ("awaiting permission never", [c("a", 1, awaiting_permission=True), c("b", 9)], "b"),
    ("pending messages never", [c("a", 1, has_pending=True), c("b", 9)], "b"),
    ("pinned never", [c("a", 1, pinned=True), c("b", 9)], "b"),
    ("starting never", [c("a", 1, starting=True), c("b", 9)], "b"),
    (
        "none evictable",
        [
            c("a", 1, busy=True),
            c("b", 2, awaiting_permission=True),
            c("c", 3, has_pending=True),
            c("d", 4, pinned=True),
            c("e", 5, starting=True),
        ],
        None,
    ),
    (
        "lru among the evictable only",
        [c("a", 1, busy=True), c("b", 3), c("c", 2, pinned=True), c("d", 4)],
        "b",
    ),
]


@pytest.mark.parametrize(("live", "victim"), [v[1:] for v in VICTIMS], ids=[v[0] for v in VICTIMS])
def test_choose_victim_picks_the_lru_evictable_session_or_none(
    live: list[Candidate], victim: str | None
) -> None:
    assert choose_victim(live) == victim


@pytest.mark.parametrize(
    "flag", ["busy", "awaiting_permission", "has_pending", "pinned", "starting"]
)
def test_any_one_protecting_flag_makes_a_session_unevictable(flag: str) -> None:
    assert c("a", 0).evictable
    assert not c("a", 0, **{flag: True}).evictable


def test_next_waiter_is_the_highest_priority_then_the_oldest() -> None:
    waiters = [Waiter(1, 0, "late-prio"), Waiter(0, 5, "b"), Waiter(0, 2, "a"), Waiter(2, 1, "x")]
    assert next_waiter(waiters) == Waiter(0, 2, "a")
    assert next_waiter([]) is None


# -- admit: per-profile caps --------------------------------------------------------------------


def p(task_id: str, profile: str, last_used: float = 0.0, **flags: Any) -> Candidate:
    return Candidate(task_id=task_id, last_used=last_used, profile=profile, **flags)


def w(task_id: str, profile: str, seq: int, priority: int = 0) -> Waiter:
    return Waiter(priority, seq, task_id, profile)


# (what, live, waiters, workspace max_live, caps, expected (waiter, victim) or None)
ADMIT: list[
    tuple[str, list[Candidate], list[Waiter], int, dict[str, int], tuple[str, str | None] | None]
] = [
    ("nobody waits", [p("a", "x")], [], 4, {}, None),
    (
        "a free slot goes to the first waiter",
        [],
        [w("n2", "x", 2), w("n1", "x", 1)],
        4,
        {},
        ("n1", None),
    ),
    (
        "priority before arrival",
        [],
        [w("late", "x", 1, priority=5), w("urgent", "x", 2, priority=0)],
        4,
        {},
        ("urgent", None),
    ),
    (
        "full workspace, no caps: lru across profiles",
        [p("a", "x", 2.0), p("b", "y", 1.0)],
        [w("n", "x", 1)],
        2,
        {},
        ("n", "b"),
    ),
    (
        "full workspace, nothing evictable: everybody waits",
        [p("a", "x", busy=True), p("b", "y", pinned=True)],
        [w("n", "x", 1), w("m", "z", 2)],
        2,
        {"x": 1},
        None,
    ),
    (
        "under its cap a waiter may evict another profile's session",
        [p("a", "x", 1.0), p("b", "y", 2.0)],
        [w("n", "y", 1)],
        2,
        {"y": 2},
        ("n", "a"),
    ),
    (
        "at its cap with free slots: evict its own lru session",
        [p("c1", "c", 3.0), p("c2", "c", 1.0), p("o", "o", 0.0)],
        [w("n", "c", 1)],
        8,
        {"c": 2},
        ("n", "c2"),
    ),
    (
        "at its cap never evicts another profile's session",
        [p("c1", "c", 3.0, busy=True), p("o", "o", 0.0)],
        [w("n", "c", 1)],
        2,
        {"c": 1},
        None,
    ),
    (
        "a capped waiter does not block another profile (free slot)",
        [p("c1", "c", busy=True)],
        [w("capped", "c", 1), w("other", "o", 2)],
        8,
        {"c": 1},
        ("other", None),
    ),
    (
        "a capped waiter does not block another profile (eviction)",
        [p("c1", "c", busy=True), p("o1", "o", 1.0)],
        [w("capped", "c", 1, priority=-1), w("other", "o", 2)],
        2,
        {"c": 1},
        ("other", "o1"),
    ),
    (
        "a capped waiter that can evict its own goes first",
        [p("c1", "c", 5.0), p("o1", "o", 1.0)],
        [w("capped", "c", 1), w("other", "o", 2)],
        2,
        {"c": 1},
        ("capped", "c1"),
    ),
    (
        "within one capped profile: priority then fifo",
        [p("c1", "c", 1.0)],
        [w("c-late", "c", 3), w("c-first", "c", 2), w("c-urgent", "c", 4, priority=-1)],
        8,
        {"c": 1},
        ("c-urgent", "c1"),
    ),
    (
        "a cap lowered below the live count admits nothing more of that profile",
        [p("c1", "c", busy=True), p("c2", "c", busy=True), p("c3", "c", busy=True)],
        [w("n", "c", 1)],
        8,
        {"c": 2},
        None,
    ),
    (
        "an over-cap profile gives way to another profile",
        [p("c1", "c", busy=True), p("c2", "c", busy=True), p("c3", "c", busy=True)],
        [w("n", "c", 1), w("m", "o", 2)],
        8,
        {"c": 2},
        ("m", None),
    ),
    (
        "a cap on another profile changes nothing",
        [p("a", "x", 1.0)],
        [w("n", "x", 1)],
        1,
        {"y": 1},
        ("n", "a"),
    ),
    (
        "stopping sessions still count towards the cap",
        [p("c1", "c", stopping=True)],
        [w("n", "c", 1)],
        8,
        {"c": 1},
        None,
    ),
    (
        "an unnamed profile (old callers) is uncapped",
        [p("a", "")],
        [w("n", "", 1)],
        2,
        {"c": 1},
        ("n", None),
    ),
]


@pytest.mark.parametrize(
    ("live", "waiters", "max_live", "caps", "expected"),
    [row[1:] for row in ADMIT],
    ids=[row[0] for row in ADMIT],
)
def test_admit_serves_the_first_waiter_that_can_proceed_within_the_workspace_and_profile_caps(
    live: list[Candidate],
    waiters: list[Waiter],
    max_live: int,
    caps: dict[str, int],
    expected: tuple[str, str | None] | None,
) -> None:
    decision = admit(live, waiters, max_live, caps)
    assert (None if decision is None else (decision.waiter, decision.victim)) == expected


def test_admit_without_caps_is_the_plain_workspace_rule() -> None:
    live = [p("a", "x", 2.0), p("b", "y", 1.0, busy=True), p("c", "z", 3.0)]
    waiters = [w("n", "x", 1)]
    assert admit(live, waiters, 3) == Admission("n", choose_victim(live))
    assert admit(live, waiters, 4) == Admission("n", None)
