"""The slot pool with fake holders: capacity, per-profile caps, LRU eviction, the queue, poke.

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
    def __init__(
        self, pool: Pool, task_id: str, last_used: float = 0.0, profile: str = "", **flags: bool
    ) -> None:
        self.pool = pool
        self.task_id = task_id
        self.profile_name = profile
        self.last_used = last_used
        self.flags = dict(flags)
        self.declines = False  # evict() says no although candidate() looked evictable
        self.evictions = 0
        self.evict_calls = 0

    def candidate(self) -> Candidate:
        return Candidate(
            task_id=self.task_id, last_used=self.last_used, profile=self.profile_name, **self.flags
        )

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
    live = FakeHolder(pool, "live")
    live.flags[flag] = True
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


# -- per-profile caps ---------------------------------------------------------------------------


async def test_a_profile_at_its_cap_waits_while_other_profiles_take_the_free_slots() -> None:
    pool = Pool(max_live=8, caps={"claude": 2})
    await fill(
        pool,
        FakeHolder(pool, "c1", profile="claude", busy=True),
        FakeHolder(pool, "c2", profile="claude", busy=True),
    )

    async def body(acq: Acquirer) -> None:
        acq.start(FakeHolder(pool, "c3", profile="claude", busy=True))
        await wait_all_tasks_blocked()
        acq.start(FakeHolder(pool, "o1", profile="other", busy=True))
        acq.start(FakeHolder(pool, "o2", profile="other", busy=True))
        await wait_all_tasks_blocked()
        assert acq.granted == ["o1", "o2"]  # not held up behind the capped c3
        assert pool.live_by_profile() == {"claude": 2, "other": 2}

        pool.release("o1")  # a workspace slot, but not a claude one
        await wait_all_tasks_blocked()
        assert acq.granted == ["o1", "o2"]

        pool.release("c1")
        await wait_all_tasks_blocked()
        assert acq.granted == ["o1", "o2", "c3"]

    await with_acquirer(pool, body)
    assert pool.live_by_profile() == {"claude": 2, "other": 1}
    assert pool.swaps_out == 0


async def test_a_capped_waiter_evicts_only_an_idle_session_of_its_own_profile() -> None:
    pool = Pool(max_live=3, caps={"claude": 1})
    oldest_other = FakeHolder(pool, "o1", last_used=0.0, profile="other")
    own = FakeHolder(pool, "c1", last_used=5.0, profile="claude")
    await fill(pool, oldest_other, own)

    with anyio.fail_after(TIMEOUT):
        await pool.acquire(FakeHolder(pool, "c2", profile="claude"))

    assert (own.evictions, oldest_other.evictions) == (1, 0)
    assert set(pool.holders) == {"o1", "c2"}


async def test_under_its_cap_a_waiter_in_a_full_workspace_evicts_the_lru_of_any_profile() -> None:
    pool = Pool(max_live=2, caps={"claude": 2})
    other = FakeHolder(pool, "o1", last_used=0.0, profile="other")
    own = FakeHolder(pool, "c1", last_used=5.0, profile="claude")
    await fill(pool, other, own)

    with anyio.fail_after(TIMEOUT):
        await pool.acquire(FakeHolder(pool, "c2", profile="claude"))

    assert (other.evictions, own.evictions) == (1, 0)
    assert set(pool.holders) == {"c1", "c2"}


async def test_a_capped_waiter_gets_in_once_its_own_session_becomes_evictable() -> None:
    pool = Pool(max_live=4, caps={"claude": 1})
    own = FakeHolder(pool, "c1", profile="claude", busy=True)
    await fill(pool, own, FakeHolder(pool, "o1", profile="other"))

    async def body(acq: Acquirer) -> None:
        acq.start(FakeHolder(pool, "c2", profile="claude"))
        await wait_all_tasks_blocked()
        assert acq.granted == []
        own.flags["busy"] = False
        pool.poke()
        await wait_all_tasks_blocked()
        assert acq.granted == ["c2"]

    await with_acquirer(pool, body)
    assert own.evictions == 1
    assert set(pool.holders) == {"o1", "c2"}


async def test_a_capped_profile_keeps_priority_then_fifo_among_its_own_waiters() -> None:
    pool = Pool(max_live=8, caps={"claude": 1})
    await fill(pool, FakeHolder(pool, "c0", profile="claude", busy=True))
    arrivals = [("low-1", 5), ("high", 0), ("low-2", 5)]
    granted: list[str] = []

    async def body(acq: Acquirer) -> None:
        for task_id, priority in arrivals:
            acq.start(FakeHolder(pool, task_id, profile="claude", busy=True), priority)
            await wait_all_tasks_blocked()
        acq.start(FakeHolder(pool, "other", profile="other", busy=True), priority=9)
        await wait_all_tasks_blocked()
        previous = "c0"
        for _ in arrivals:
            pool.release(previous)
            await wait_all_tasks_blocked()
            previous = acq.granted[-1]
            assert pool.live_by_profile()["claude"] == 1
        granted.extend(acq.granted)

    await with_acquirer(pool, body)
    assert granted == ["other", "high", "low-1", "low-2"]


async def test_raising_a_cap_on_reload_admits_the_waiters_it_held_back_on_the_next_wake() -> None:
    pool = Pool(max_live=8, caps={"claude": 1})
    await fill(pool, FakeHolder(pool, "c1", profile="claude", busy=True))

    async def body(acq: Acquirer) -> None:
        acq.start(FakeHolder(pool, "c2", profile="claude", busy=True))
        await wait_all_tasks_blocked()
        assert acq.granted == []
        pool.caps = {}  # the profile's limit was removed from the config
        pool.poke()
        await wait_all_tasks_blocked()
        assert acq.granted == ["c2"]

    await with_acquirer(pool, body)


async def test_lowering_a_cap_evicts_nothing_busy_and_admits_no_more_of_that_profile() -> None:
    pool = Pool(max_live=8)
    busy = [FakeHolder(pool, f"c{i}", profile="claude", busy=True) for i in range(3)]
    await fill(pool, *busy)
    pool.caps = {"claude": 2}

    async def body(acq: Acquirer) -> None:
        acq.start(FakeHolder(pool, "c3", profile="claude", busy=True))
        acq.start(FakeHolder(pool, "o1", profile="other", busy=True))
        await wait_all_tasks_blocked()
        assert acq.granted == ["o1"]
        pool.release("c0")  # 2 live: still at the cap
        await wait_all_tasks_blocked()
        assert acq.granted == ["o1"]
        pool.release("c1")
        await wait_all_tasks_blocked()
        assert acq.granted == ["o1", "c3"]

    await with_acquirer(pool, body)
    assert all(h.evict_calls == 0 for h in busy)
    assert pool.live_by_profile() == {"claude": 2, "other": 1}


async def test_several_waiters_swap_out_several_sessions_side_by_side() -> None:
    """Three slow swap-outs for three waiters run at once, not one after another."""
    pool = Pool(max_live=3)
    gate = asyncio.Event()
    started: list[str] = []

    class SlowEvictee(FakeHolder):
        async def evict(self) -> bool:
            started.append(self.task_id)
            await gate.wait()  # the process takes a while to end
            self.pool.release(self.task_id)
            return True

    idle = [SlowEvictee(pool, f"idle{i}", last_used=float(i)) for i in range(3)]
    await fill(pool, *idle)
    waiters = [FakeHolder(pool, f"w{i}") for i in range(3)]

    async def body(acq: Acquirer) -> None:
        for waiter in waiters:
            acq.start(waiter)
        await wait_all_tasks_blocked()
        assert sorted(started) == ["idle0", "idle1", "idle2"]  # all three under way
        assert acq.granted == []
        gate.set()
        await wait_all_tasks_blocked()
        assert sorted(acq.granted) == ["w0", "w1", "w2"]

    await with_acquirer(pool, body)
    assert set(pool.holders) == {"w0", "w1", "w2"}
