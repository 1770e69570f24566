"""Choosing which idle session gives up its slot, and which waiting task gets one."""

from __future__ import annotations

import pytest

from meta_harness.domain.admission import Candidate, Waiter, choose_victim, next_waiter


def c(task_id: str, last_used: float, **flags: bool) -> Candidate:
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
