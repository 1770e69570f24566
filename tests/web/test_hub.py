"""The shared watcher wakes exactly the streams whose files changed, including files in
task directories created later, releases every stream on close, and bounds its memo."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from meta_harness.web.hub import MEMO_BYTES, Hub

WAIT = 10.0


@pytest.mark.anyio
async def test_the_hub_wakes_only_the_subscribers_of_a_changed_file(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    hub = Hub([root], max_subscribers=10)
    with anyio.fail_after(WAIT):
        async with hub.running():
            async with (
                hub.subscribe([root / "a" / "t.jsonl"]) as sub_a,
                hub.subscribe([root / "b" / "t.jsonl"]) as sub_b,
            ):
                assert hub.subscribers == 2
                await sub_a.wake.wait()  # the watcher armed: everyone re-reads once
                await sub_b.wake.wait()
                sub_a.clear()
                sub_b.clear()
                (root / "a" / "t.jsonl").write_bytes(b"{}\n")
                assert await sub_a.wait()
                assert not sub_b.wake.is_set()
            assert hub.subscribers == 0


@pytest.mark.anyio
async def test_the_hub_wakes_a_subscriber_when_its_task_directory_appears(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    root.mkdir()
    hub = Hub([root], max_subscribers=10)
    target = root / "t-late" / "transcript.jsonl"
    with anyio.fail_after(WAIT):
        async with hub.running(), hub.subscribe([target]) as sub:
            await sub.wake.wait()
            sub.clear()
            target.parent.mkdir()
            target.write_bytes(b"{}\n")
            assert await sub.wait()


@pytest.mark.anyio
async def test_closing_the_hub_releases_every_waiting_stream(tmp_path: Path) -> None:
    hub = Hub([tmp_path], max_subscribers=10)
    with anyio.fail_after(WAIT):
        async with hub.running(), hub.subscribe([tmp_path / "x"]) as sub:
            await sub.wake.wait()
            sub.clear()
            hub.close()
            assert await sub.wait() is False


def test_the_memo_of_encoded_reads_is_bounded_in_bytes(tmp_path: Path) -> None:
    hub = Hub([tmp_path], max_subscribers=1)
    chunk = MEMO_BYTES // 4
    for i in range(10):
        hub.remember(i, f"value-{i}", chunk)
    assert hub.recall(0) is None
    assert hub.recall(9) == "value-9"
    assert sum(size for _, size in hub.memo.values()) <= MEMO_BYTES
