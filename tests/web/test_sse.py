"""SSE streams resume exactly: across random disconnects, every record arrives once, in order.

The writer appends transcript and event lines (some written in two parts, so readers meet
torn tails) while a reader disconnects at random points and reconnects with the last
event id. The union of what it received must equal the file's records exactly.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest

from meta_harness.base.jsonl import read_from
from meta_harness.base.layout import Workspace
from tests.web.conftest import (
    WAIT,
    Served,
    SseEvent,
    SseReader,
    append,
    event,
    make_task,
    note,
    serve,
)

pytestmark = pytest.mark.anyio

RESUME_WAIT = 60.0  # bound of a whole random-disconnect run (hundreds of reconnects)


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab", buffering=0) as f:
        f.write(data)


class Writer:
    """Appends records in random bursts; some lines land in two writes (a torn tail)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def line(self, path: Path, record: dict[str, Any]) -> None:
        data = orjson.dumps(record) + b"\n"
        if self.rng.random() < 0.3:
            cut = self.rng.randint(1, len(data) - 1)
            append_bytes(path, data[:cut])
            await anyio.lowlevel.checkpoint()  # let the server read the torn line
            append_bytes(path, data[cut:])
        else:
            append_bytes(path, data)


class Received:
    """What a reader got so far, with a way to wait until it has at least n events."""

    def __init__(self) -> None:
        self.items: list[SseEvent] = []
        self.connections = 0
        self._progress = anyio.Event()

    def add(self, item: SseEvent) -> None:
        self.items.append(item)
        self._progress.set()
        self._progress = anyio.Event()

    async def wait_for(self, count: int) -> None:
        while len(self.items) < count:
            await self._progress.wait()


async def read_some(
    http: httpx2.AsyncClient, url: str, reader: SseReader, budget: int, sink: Received
) -> None:
    """One connection: resume from the reader's last id, take `budget` events, disconnect."""
    headers = {"last-event-id": reader.last_id} if reader.last_id else {}
    sink.connections += 1
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        taken = 0
        while taken < budget:
            async with contextlib.aclosing(reader.events(response)) as events:
                async for item in events:
                    sink.add(item)
                    taken += 1
                    if taken >= budget:
                        return


def records_of(items: list[SseEvent], name: str) -> list[tuple[int, dict[str, Any]]]:
    return [(e.json()["offset"], e.json()["record"]) for e in items if e.event == name]


async def run_resume(
    served: Served,
    ws: Workspace,
    path: str,
    *,
    seed: int,
    with_transcript: bool,
    keep_event: Any,
) -> Received:
    """Write 40 random bursts while a reader reconnects at random points; return what it got."""
    rng = random.Random(seed)
    writer = Writer(rng)
    transcript = ws.task("t-main").transcript
    received = Received()

    def expected() -> int:
        events = sum(1 for _, r in read_from(ws.events_file)[0] if keep_event(r))
        return events + (len(read_from(transcript)[0]) if with_transcript else 0)

    async def read_forever() -> None:
        reader = SseReader()
        async with httpx2.AsyncClient(timeout=WAIT) as http:
            while True:
                await read_some(http, served.url + path, reader, rng.randint(0, 9), received)

    with anyio.fail_after(RESUME_WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_forever)
            for burst in range(40):
                for i in range(rng.randint(1, 12)):
                    if with_transcript and rng.random() < 0.6:
                        pad = "x" * rng.randint(0, 300)
                        await writer.line(transcript, note("n", burst=burst, i=i, pad=pad))
                    task = rng.choice(["t-main", "t-other", None])
                    await writer.line(ws.events_file, event("task.phase", task, burst=burst, i=i))
                if rng.random() < 0.5:  # half the bursts wait until the reader has them all
                    await received.wait_for(expected())
            await received.wait_for(expected())
            tg.cancel_scope.cancel()
    assert received.connections > 10, "the reader should have reconnected many times"
    return received


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_a_task_stream_resumes_exactly_across_random_disconnects(
    ws: Workspace, served: Served, seed: int
) -> None:
    make_task(ws, "t-main")
    make_task(ws, "t-other")
    received = await run_resume(
        served,
        ws,
        "/api/tasks/t-main/stream",
        seed=seed,
        with_transcript=True,
        keep_event=lambda r: r.get("task") == "t-main",
    )
    transcript = read_from(ws.task("t-main").transcript)[0]
    events = [(o, r) for o, r in read_from(ws.events_file)[0] if r.get("task") == "t-main"]
    assert transcript and events
    assert records_of(received.items, "transcript") == transcript
    assert records_of(received.items, "event") == events
    assert len(received.items) == len(transcript) + len(events)


@pytest.mark.parametrize("seed", [5, 6])
async def test_the_events_stream_resumes_exactly_with_and_without_a_task_filter(
    ws: Workspace, served: Served, seed: int
) -> None:
    make_task(ws, "t-main")
    filtered = await run_resume(
        served,
        ws,
        "/api/events?task=t-main",
        seed=seed,
        with_transcript=False,
        keep_event=lambda r: r.get("task") == "t-main",
    )
    mine = [(o, r) for o, r in read_from(ws.events_file)[0] if r.get("task") == "t-main"]
    assert records_of(filtered.items, "event") == mine
    everything = await read_until(served.url + "/api/events", len(read_from(ws.events_file)[0]))
    assert records_of(everything, "event") == read_from(ws.events_file)[0]


async def read_until(url: str, count: int, headers: dict[str, str] | None = None) -> list[SseEvent]:
    out: list[SseEvent] = []
    reader = SseReader()
    with anyio.fail_after(WAIT):
        async with (
            httpx2.AsyncClient(timeout=WAIT) as http,
            http.stream("GET", url, headers=headers or {}) as response,
        ):
            assert response.status_code == 200
            async with contextlib.aclosing(reader.events(response)) as events:
                async for item in events:
                    out.append(item)
                    if len(out) >= count:
                        break
    return out


async def test_many_tabs_on_one_task_receive_the_same_records(
    ws: Workspace, served: Served
) -> None:
    make_task(ws, "t-main")
    path = ws.task("t-main").transcript
    results: list[list[SseEvent]] = []

    async def tab() -> None:
        results.append(await read_until(served.url + "/api/tasks/t-main/stream?events=none", 50))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(tab)
        for i in range(50):
            append(path, note("n", i=i))
            await anyio.lowlevel.checkpoint()
    expected = read_from(path)[0]
    assert len(results) == 8
    for got in results:
        assert records_of(got, "transcript") == expected


async def test_a_stream_opened_before_its_transcript_exists_follows_it_once_written(
    ws: Workspace, served: Served
) -> None:
    make_task(ws, "t-new")
    path = ws.task("t-new").transcript
    assert not path.exists()

    async with anyio.create_task_group() as tg:
        got: list[SseEvent] = []

        async def read() -> None:
            got.extend(await read_until(served.url + "/api/tasks/t-new/stream?events=none", 2))

        tg.start_soon(read)
        await anyio.lowlevel.checkpoint()
        append(path, note("spawn"))
        append(path, note("exit"))
    assert [e.json()["record"]["note"] for e in got] == ["spawn", "exit"]


async def test_a_fresh_event_source_resumes_from_the_last_event_id_query_parameter(
    ws: Workspace, served: Served
) -> None:
    make_task(ws, "t-main")
    path = ws.task("t-main").transcript
    for i in range(5):
        append(path, note("n", i=i))
    first = await read_until(served.url + "/api/tasks/t-main/stream?events=none", 2)
    cursor = first[-1].id
    assert cursor is not None and cursor.startswith("t:")
    rest = await read_until(
        served.url + f"/api/tasks/t-main/stream?events=none&last_event_id={cursor}", 3
    )
    assert [e.json()["record"]["i"] for e in first + rest] == [0, 1, 2, 3, 4]
    # the header wins over the query parameter (a browser's own reconnect sends the header)
    again = await read_until(
        served.url + "/api/tasks/t-main/stream?events=none&last_event_id=t:0",
        1,
        headers={"last-event-id": rest[-2].id or ""},
    )
    assert again[0].json()["record"]["i"] == 4


async def test_tail_starts_at_a_record_boundary_near_the_end(ws: Workspace, served: Served) -> None:
    make_task(ws, "t-main")
    path = ws.task("t-main").transcript
    for i in range(100):
        append(path, note("n", i=i, pad="y" * 50))
    starts = [offset for offset, _ in read_from(path)[0]]
    size = path.stat().st_size
    # a tail reaching into record 96 starts at 97; one reaching exactly to 97 starts there too
    for tail in (size - starts[97] + 5, size - starts[97]):
        got = await read_until(served.url + f"/api/tasks/t-main/stream?events=none&tail={tail}", 3)
        assert [e.json()["record"]["i"] for e in got] == [97, 98, 99]


@pytest.mark.parametrize(
    ("cursor", "reason"),
    [
        ("t:5", "not the start of a record"),
        ("t:999999", "beyond the end"),
        ("x:1", "bad event id"),
        ("t:1,t:2", "bad event id"),
        ("t:-1", "bad event id"),
        ("garbage", "bad event id"),
    ],
)
async def test_a_cursor_that_is_not_a_record_boundary_is_refused(
    ws: Workspace, served: Served, cursor: str, reason: str
) -> None:
    make_task(ws, "t-main")
    append(ws.task("t-main").transcript, note("n"))
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        response = await http.get(
            served.url + "/api/tasks/t-main/stream", headers={"last-event-id": cursor}
        )
    assert response.status_code == 400
    assert reason in response.json()["error"]


async def test_streams_of_unknown_or_hostile_task_ids_are_refused(
    ws: Workspace, served: Served
) -> None:
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        missing = await http.get(served.url + "/api/tasks/t-nope/stream")
        hostile = await http.get(served.url + "/api/tasks/%2e%2e/stream")
        bad_scope = await http.get(served.url + "/api/events?task=..")
    assert missing.status_code == 404
    assert hostile.status_code == 400 and "invalid task id" in hostile.json()["error"]
    assert bad_scope.status_code == 400


async def test_stopping_the_service_ends_open_streams_promptly(ws: Workspace) -> None:
    make_task(ws, "t-main")
    async with serve(ws) as running:
        ended: list[int] = []

        async def hold(task_status: anyio.abc.TaskStatus[None]) -> None:
            async with (
                httpx2.AsyncClient(timeout=WAIT) as http,
                http.stream("GET", running.url + "/api/events") as response,
            ):
                assert response.status_code == 200
                task_status.started()
                async for _ in response.aiter_bytes():
                    pass
            ended.append(response.status_code)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    await tg.start(hold)  # each stream is open before the next starts
                await running.stop()
    assert ended == [200, 200, 200]
