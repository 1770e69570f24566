"""Live SSE streams of a task's transcript and of workspace events, resumable exactly.

An event's id is a cursor of byte offsets, one per followed file, each just past the
last record sent from it: `t:<offset>,e:<offset>` on a task stream (transcript,
events.jsonl), `e:<offset>` on the events stream. A reconnect with `Last-Event-ID` (or
`?last_event_id=`, for a fresh EventSource) resumes at those offsets, so no record is
missed or sent twice. An id-only message moves the cursor past records a stream
filtered out. Files are followed with the shared watcher (`hub.Hub`), never polled.
Event `transcript` and `event` carry `{"offset": <record start>, "record": {...}}`.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
from sse_starlette import EventSourceResponse
from starlette.requests import Request

from meta_harness.base.errors import MetaHarnessError, NotFound, UsageError
from meta_harness.base.layout import validate_task_id
from meta_harness.web.hub import Hub
from meta_harness.web.logs import READ_WINDOW, Line, check_boundary, read_lines, tail_start
from meta_harness.web.state import WebState

PING_SECONDS = 15  # keeps proxies from closing an idle stream
SEND_TIMEOUT = 30.0  # a client that reads nothing for this long is dropped
RETRY_MS = 1000  # how soon a browser reconnects after a dropped connection

KEYS = {"t": "transcript", "e": "events"}


class ServiceUnavailable(MetaHarnessError):
    http_status = 503


@dataclass(frozen=True)
class Source:
    """One followed file: its cursor key, the SSE event name, and which records to send
    (`keep`, named by `scope` so that streams with the same filter can share their reads)."""

    key: str
    path: Path
    event: str
    scope: str
    keep: Callable[[dict[str, Any]], bool]


def parse_cursor(value: str | None, keys: tuple[str, ...]) -> dict[str, int]:
    """`t:12,e:34` -> {"t": 12, "e": 34}. A missing key means "not given"."""
    out: dict[str, int] = {}
    if not value:
        return out
    for part in value.split(","):
        key, sep, number = part.strip().partition(":")
        if not sep or key not in keys or not number.isdigit() or key in out:
            raise UsageError(
                f"bad event id {value!r}: expected " + ",".join(f"{k}:<byte offset>" for k in keys)
            )
        out[key] = int(number)
    return out


def format_cursor(offsets: dict[str, int], keys: tuple[str, ...]) -> str:
    return ",".join(f"{k}:{offsets[k]}" for k in keys)


def start_offsets(request: Request, sources: list[Source], tail: int | None) -> dict[str, int]:
    """Where each file starts: the client's cursor, else the last `tail` bytes, else 0."""
    keys = tuple(s.key for s in sources)
    given = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    cursor = parse_cursor(given, keys)
    offsets: dict[str, int] = {}
    for source in sources:
        if source.key in cursor:
            offsets[source.key] = check_boundary(source.path, cursor[source.key], KEYS[source.key])
        elif tail is not None:
            offsets[source.key] = tail_start(source.path, tail)
        else:
            offsets[source.key] = 0
    return offsets


@dataclass(frozen=True, order=True)
class _Item:
    """One record to send, ordered by time (then by source) when sources are merged."""

    ts: float
    rank: int
    key: str = field(compare=False)
    line: Line = field(compare=False)
    end: int = field(compare=False)  # offset just past this record: the cursor after it


def _batch(
    sources: list[Source], offsets: dict[str, int]
) -> tuple[list[_Item], dict[str, int], bool]:
    """New records of every source (merged by time), the offsets after them, and whether
    a source has more to read right away (a long log is read window by window). Writes
    that land after this read wake the stream again through the watcher."""
    streams: list[list[_Item]] = []
    after = dict(offsets)
    more = False
    for rank, source in enumerate(sources):
        lines, nxt = read_lines(source.path, offsets[source.key])
        items = []
        for i, line in enumerate(lines):
            if source.keep(line.record):
                ts = line.record.get("ts")
                end = lines[i + 1].start if i + 1 < len(lines) else nxt
                items.append(
                    _Item(ts if isinstance(ts, float | int) else 0.0, rank, source.key, line, end)
                )
        if nxt - offsets[source.key] >= READ_WINDOW // 2:
            more = True  # likely a full window: read on without waiting for the watcher
        after[source.key] = nxt
        streams.append(items)
    return list(heapq.merge(*streams)), after, more


def _frame(event: str, cursor: str, line: Line) -> bytes:
    """One SSE event; the record's own bytes are embedded as they are in the file."""
    raw = line.raw if b"\r" not in line.raw else orjson.dumps(line.record)
    return b'event: %s\r\nid: %s\r\ndata: {"offset":%d,"record":%s}\r\n\r\n' % (
        event.encode(),
        cursor.encode(),
        line.start,
        raw,
    )


def _chunk(
    hub: Hub, sources: list[Source], offsets: dict[str, int]
) -> tuple[bytes, dict[str, int], bool]:
    """The SSE bytes for every new record after `offsets`, the offsets after them, and
    whether to read on at once. Memoised in the hub: tabs following the same task at the
    same position share one read and one encoding (the logs are append-only)."""
    memo_key = tuple((s.path, s.scope, offsets[s.key], _stamp(s.path)) for s in sources)
    memo = hub.recall(memo_key)
    if memo is not None:
        chunk, after, more = memo
        return chunk, dict(after), more
    keys = tuple(s.key for s in sources)
    names = {s.key: s.event for s in sources}
    items, after, more = _batch(sources, offsets)
    out = bytearray()
    sent = dict(offsets)
    for item in items:
        sent[item.key] = item.end
        out += _frame(names[item.key], format_cursor(sent, keys), item.line)
    if after != sent:  # records filtered out: move the client's cursor past them
        out += b"id: %s\r\n\r\n" % format_cursor(after, keys).encode()
    chunk = bytes(out)
    hub.remember(memo_key, (chunk, dict(after), more), len(chunk))
    return chunk, after, more


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (0, 0, -1)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


async def _events(hub: Hub, sources: list[Source], offsets: dict[str, int]) -> AsyncIterator[bytes]:
    """The stream body: every batch of new records goes out as one chunk (one send)."""
    if hub.closing.is_set():
        return  # the app closed between the request and its body: an empty, complete stream
    async with hub.subscribe([s.path for s in sources]) as sub:
        yield b"retry: %d\r\n\r\n" % RETRY_MS
        while not hub.closing.is_set():
            sub.clear()
            chunk, offsets, more = _chunk(hub, sources, offsets)
            if chunk:
                yield chunk
            if more:
                continue  # a window was full: read on before waiting
            if not await sub.wait():
                return


class _Stream(EventSourceResponse):
    """An EventSourceResponse whose body ends by itself when the web app closes.

    sse-starlette (3.7) would watch uvicorn's exit signal with a polling task of its own
    and cancel the body mid-response; here the supervisor owns the signals, and the event
    generator returns when the hub closes, so the response completes cleanly.
    """

    def __init__(self, content: AsyncIterator[bytes]) -> None:
        super().__init__(content, ping=PING_SECONDS, send_timeout=SEND_TIMEOUT)

    async def _listen_for_exit_signal_with_grace(self) -> None:
        await anyio.sleep_forever()


def stream(hub: Hub, sources: list[Source], offsets: dict[str, int]) -> EventSourceResponse:
    if hub.closing.is_set():
        raise ServiceUnavailable("the server is shutting down")
    if hub.subscribers >= hub.max_subscribers:
        raise ServiceUnavailable(f"too many open streams ({hub.max_subscribers}); retry later")
    return _Stream(_events(hub, sources, offsets))


# -- routes ------------------------------------------------------------------------------------


def _tail(request: Request) -> int | None:
    raw = request.query_params.get("tail")
    if raw is None:
        return None
    if not raw.isdigit():
        raise UsageError(f"query parameter 'tail' must be a byte count, not {raw!r}")
    return int(raw)


def _all(_: dict[str, Any]) -> bool:
    return True


async def task_stream(request: Request) -> EventSourceResponse:
    """`GET /api/tasks/{task_id}/stream?events=task|all|none&tail=&last_event_id=`."""
    web: WebState = request.app.state.web
    task_id = request.path_params["task_id"]
    paths = web.workspace.task(task_id)
    if web.index.get(task_id) is None:
        raise NotFound(f"no task {task_id!r} in this workspace")
    scope = request.query_params.get("events", "task")
    sources = [Source("t", paths.transcript, "transcript", "all", _all)]
    events = web.workspace.events_file
    if scope == "task":
        sources.append(Source("e", events, "event", f"task:{task_id}", _of_task(task_id)))
    elif scope == "all":
        sources.append(Source("e", events, "event", "all", _all))
    elif scope != "none":
        raise UsageError("query parameter 'events' must be 'task', 'all' or 'none'")
    return stream(web.hub, sources, start_offsets(request, sources, _tail(request)))


async def events_stream(request: Request) -> EventSourceResponse:
    """`GET /api/events?task=&tail=&last_event_id=`: workspace events, optionally of one task."""
    web: WebState = request.app.state.web
    task_id = request.query_params.get("task")
    if task_id is None:
        sources = [Source("e", web.workspace.events_file, "event", "all", _all)]
    else:
        keep = _of_task(validate_task_id(task_id))
        sources = [Source("e", web.workspace.events_file, "event", f"task:{task_id}", keep)]
    return stream(web.hub, sources, start_offsets(request, sources, _tail(request)))


def _of_task(task_id: str) -> Callable[[dict[str, Any]], bool]:
    def keep(record: dict[str, Any]) -> bool:
        return record.get("task") == task_id

    return keep
