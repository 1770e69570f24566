"""The slot pool with fake holders: capacity, LRU eviction, the queue, poke, races lost.

No processes: a `FakeHolder` reports its admission flags and, when evicted, gives its
slot back the way a runner does (after an await: the real one waits for its process to
exit). Tasks are observed with `wait_all_tasks_blocked`, never a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint

from meta_harness.domain.admission import Candidate
from meta_harness.runtime.pool import Pool

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0  # bound of every test: a pool that spins or deadlocks fails instead of hanging


class FakeHolder:
    def __init__(self, pool: Pool, task_id: str, last_used: float = 0.0, **flags: bool) -> None:
        self.pool = pool
        self.task_id = task_id
        self.last_used = last_used
        self.flags = dict(flags)
        self.declines = False  # evict() says no although candidate() looked evictable
        self.evictions = 0
        self.evict_calls = 0

    def candidate(self) -> Candidate:
        return Candidate(task_id=self.task_id, last_used=self.last_used, **self.flags)

    async def evict(self) -> bool:
        self.evict_calls += 1
        if self.declines or not self.candidate().evictable:
            return False
        await checkpoint()  # the real runner awaits session/close and the process exit
        self.pool.release(self.task_id)
        self.evictions += 1
        return True


class Acquirer:
    """Runs `acquire` calls in a task group and records the order slots were granted."""

    def __init__(self, tg: TaskGroup, pool: Pool) -> None:
        self.tg = tg
        self.pool = pool
        self.granted: list[str] = []

    def start(self, holder: FakeHolder, priority: int = 0) -> None:
        async def go() -> None:
            await self.pool.acquire(holder, priority)
            self.granted.append(holder.task_id)

        self.tg.start_soon(go, name=f"acquire-{holder.task_id}")


async def with_acquirer(pool: Pool, body: Callable[[Acquirer], Awaitable[Any]]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await body(Acquirer(tg, pool))


async def fill(pool: Pool, *holders: FakeHolder) -> None:
    for holder in holders:
        await pool.acquire(holder)


async def test_under_capacity_a_slot_is_granted_at_once_and_a_second_acquire_is_a_no_op() -> None:
    pool = Pool(max_live=2)
    a = FakeHolder(pool, "a")

    with anyio.fail_after(TIMEOUT):
        await pool.acquire(a)
        waited_again = await pool.acquire(a)

    assert list(pool.holders) == ["a"]
    assert waited_again == 0.0
    assert pool.queue_depth == 0
    assert pool.swaps_out == 0


async def test_a_full_pool_evicts_the_least_recently_used_evictable_holder() -> None:
    pool = Pool(max_live=3)
    busy_oldest = FakeHolder(pool, "busy", last_used=1.0, busy=True)
    older = FakeHolder(pool, "older", last_used=2.0)
    newer = FakeHolder(pool, "newer", last_used=3.0)
    await fill(pool, busy_oldest, older, newer)
    incoming = FakeHolder(pool, "incoming")

    with anyio.fail_after(TIMEOUT):
        await pool.acquire(incoming)

    assert set(pool.holders) == {"busy", "newer", "incoming"}
    assert (busy_oldest.evictions, older.evictions, newer.evictions) == (0, 1, 0)
    assert pool.swaps_out == 1


@pytest.mark.parametrize(
    "flag", ["busy", "awaiting_permission", "has_pending", "pinned", "starting", "stopping"]
)
async def test_with_nothing_evictable_a_newcomer_queues_until_a_slot_is_released(
    flag: str,
) -> None:
    pool = Pool(max_live=1)
    live = FakeHolder(pool, "live", **{flag: True})
    await fill(pool, live)
    waiter = FakeHolder(pool, "waiter")

    async def body(acq: Acquirer) -> None:
        acq.start(waiter)
        await wait_all_tasks_blocked()
        assert acq.granted == []
        assert pool.queue_depth == 1
        assert live.evictions == 0

        pool.release("live")
        await wait_all_tasks_blocked()
        assert acq.granted == ["waiter"]

    await with_acquirer(pool, body)
    assert list(pool.holders) == ["waiter"]
    assert pool.queue_depth == 0
    assert pool.queue_peak == 1


async def test_released_slots_go_to_waiters_by_priority_then_first_come() -> None:
    pool = Pool(max_live=1)
    await fill(pool, FakeHolder(pool, "live", busy=True))
    arrivals = [("low-1", 5), ("high-1", 0), ("low-2", 5), ("high-2", 0), ("mid", 1)]
    order: list[str] = []

    async def body(acq: Acquirer) -> None:
        for task_id, priority in arrivals:
            acq.start(FakeHolder(pool, task_id, busy=True), priority)
            await wait_all_tasks_blocked()
        previous = "live"
        for _ in arrivals:
            pool.release(previous)
            await wait_all_tasks_blocked()
            previous = acq.granted[-1]
            order.append(previous)

    await with_acquirer(pool, body)
    assert order == ["high-1", "high-2", "mid", "low-1", "low-2"]
    assert pool.queue_peak == len(arrivals)


async def test_a_free_slot_is_not_taken_past_a_waiter_that_is_first_in_line() -> None:
    pool = Pool(max_live=2)
    await fill(pool, FakeHolder(pool, "a", busy=True), FakeHolder(pool, "b", busy=True))

    async def body(acq: Acquirer) -> None:
        acq.start(FakeHolder(pool, "urgent", busy=True), priority=0)
        await wait_all_tasks_blocked()
        acq.start(FakeHolder(pool, "later", busy=True), priority=9)
        await wait_all_tasks_blocked()
        pool.release("a")
        await wait_all_tasks_blocked()
        assert acq.granted == ["urgent"]
        assert pool.queue_depth == 1
        pool.release("b")

    await with_acquirer(pool, body)
    assert set(pool.holders) == {"urgent", "later"}


async def test_poke_lets_the_first_waiter_evict_a_holder_that_became_evictable() -> None:
    pool = Pool(max_live=1)
    live = FakeHolder(pool, "live", busy=True)
    await fill(pool, live)
    waiter = FakeHolder(pool, "waiter")

    async def body(acq: Acquirer) -> None:
        acq.start(waiter)
        await wait_all_tasks_blocked()
        live.flags["busy"] = False  # the turn ended; nobody has told the pool yet
        await wait_all_tasks_blocked()
        assert acq.granted == []  # the pool does not poll

        pool.poke()
        await wait_all_tasks_blocked()
        assert acq.granted == ["waiter"]

    await with_acquirer(pool, body)
    assert live.evictions == 1
    assert list(pool.holders) == ["waiter"]


async def test_a_holder_that_declines_eviction_makes_the_waiter_wait_not_spin() -> None:
    """A victim can lose the race (its runner just took its lock to swap out on its own):
    `evict` returns False at once. The waiter must then wait for a release or a poke;
    retrying in a loop without yielding would freeze the event loop."""
    pool = Pool(max_live=1)
    live = FakeHolder(pool, "live")
    live.declines = True
    await fill(pool, live)
    waiter = FakeHolder(pool, "waiter")

    async def body(acq: Acquirer) -> None:
        acq.start(waiter)
        await wait_all_tasks_blocked()
        assert acq.granted == []
        assert live.evict_calls == 1
        assert pool.queue_depth == 1

        pool.release("live")  # the victim's own swap-out finished
        await wait_all_tasks_blocked()
        assert acq.granted == ["waiter"]

    await with_acquirer(pool, body)


async def test_a_release_during_an_eviction_is_not_lost() -> None:
    """While the waiter awaits a victim's eviction (which then fails), another holder
    releases its slot: the waiter must take that slot instead of sleeping on."""
    pool = Pool(max_live=2)
    gate = asyncio.Event()

    class SlowDecliner(FakeHolder):
        async def evict(self) -> bool:
            self.evict_calls += 1
            await gate.wait()
            return False

    slow = SlowDecliner(pool, "slow")
    other = FakeHolder(pool, "other", last_used=5.0, busy=True)
    await fill(pool, slow, other)
    waiter = FakeHolder(pool, "waiter")

    async def body(acq: Acquirer) -> None:
        acq.start(waiter)
        await wait_all_tasks_blocked()
        assert slow.evict_calls == 1
        pool.release("other")
        gate.set()
        await wait_all_tasks_blocked()
        assert acq.granted == ["waiter"]

    await with_acquirer(pool, body)
    assert set(pool.holders) == {"slow", "waiter"}


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_is_served() -> None:
    pool = Pool(max_live=1)
    await fill(pool, FakeHolder(pool, "live", busy=True))
    first = FakeHolder(pool, "first")
    second = FakeHolder(pool, "second")

    with anyio.fail_after(TIMEOUT):
        first_task = asyncio.ensure_future(pool.acquire(first))
        await wait_all_tasks_blocked()
        second_task = asyncio.ensure_future(pool.acquire(second))
        await wait_all_tasks_blocked()
        assert pool.queue_depth == 2

        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        assert pool.queue_depth == 1
        pool.release("live")
        await second_task

    assert list(pool.holders) == ["second"]
    assert pool.queue_depth == 0


async def test_lowering_max_live_evicts_down_to_the_new_limit_on_the_next_acquire() -> None:
    pool = Pool(max_live=3)
    holders = [FakeHolder(pool, name, last_used=float(i)) for i, name in enumerate("abc")]
    await fill(pool, *holders)
    pool.max_live = 2

    with anyio.fail_after(TIMEOUT):
        await pool.acquire(FakeHolder(pool, "d"))

    assert set(pool.holders) == {"c", "d"}
    assert pool.swaps_out == 2
