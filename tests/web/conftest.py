"""Fixtures of the HTTP surface tests: a workspace with hand-made task files, a TestClient,
an in-process server (the real service on a free port), and a tiny SSE reader.

Task files are written the way the supervisor writes them (`write_task`, appended JSONL
lines), so the web layer is tested against the formats alone, without a supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from starlette.testclient import TestClient

from meta_harness.base.layout import Workspace
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import TaskRecord, write_task
from meta_harness.web.app import create_app
from meta_harness.web.service import http_service
from tests.support.procs import REPO, Procs, Supervisor

WAIT = 10.0  # bound of every wait on the in-process server or a stream


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.at(tmp_path / "ws")
    workspace.root.mkdir()
    workspace.ensure_dirs()
    return workspace


def make_task(
    ws: Workspace, task_id: str, *, phase: TaskPhase = TaskPhase.WAITING, **fields: Any
) -> TaskRecord:
    paths = ws.task(task_id)
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.inbox.mkdir(exist_ok=True)
    paths.permissions.mkdir(exist_ok=True)
    record = TaskRecord(id=task_id, title=fields.pop("title", task_id), phase=phase, **fields)
    write_task(paths, record)
    return record


def append(path: Path, *records: dict[str, Any]) -> None:
    """Append records in one write, as the supervisor's single writer does."""
    with open(path, "ab") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in records))


def event(etype: str, task: str | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"ts": time.time(), "type": etype}
    if task is not None:
        record["task"] = task
    return record | fields


def note(text: str, **fields: Any) -> dict[str, Any]:
    return {"ts": time.time(), "epoch": 1, "dir": "note", "note": text, **fields}


def pending_request(ws: Workspace, task_id: str, request_id: str, **fields: Any) -> Path:
    """A pending permission request file plus its `permission` event, as the gate writes."""
    record = {
        "id": request_id,
        "task": task_id,
        "session_id": "s-1",
        "status": "pending",
        "kind": "edit",
        "title": "Edit notes.txt",
        "tool": "Edit",
        "tool_call": {"toolCallId": "call-1", "title": "Edit notes.txt", "kind": "edit"},
        "options": [{"optionId": "a", "kind": "allow_once", "name": "Allow"}],
        "created_at": time.time(),
        "expires_at": None,
    } | fields
    path = ws.task(task_id).permissions / f"{request_id}.json"
    path.write_bytes(orjson.dumps(record))
    append(ws.events_file, event("permission", task_id, request=request_id, status="pending"))
    return path


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(ws), base_url="http://127.0.0.1") as test_client:
        yield test_client


# -- the real service, in process ------------------------------------------------------------


@dataclass
class FakeSupervisor:
    """What the service needs of a supervisor: the workspace and the stop event."""

    workspace: Workspace
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Served:
    url: str
    supervisor: FakeSupervisor
    task: asyncio.Task[None]
    lines: list[str]

    async def stop(self) -> None:
        self.supervisor.stop_event.set()
        with anyio.fail_after(WAIT):
            await self.task


@contextlib.asynccontextmanager
async def serve(ws: Workspace, **options: Any) -> AsyncIterator[Served]:
    lines: list[str] = []
    service, endpoints = http_service("127.0.0.1", 0, announce=lines.append, **options)
    supervisor = FakeSupervisor(ws)
    task = asyncio.ensure_future(service(supervisor))
    served = Served(endpoints["http"], supervisor, task, lines)
    try:
        yield served  # the socket listens already: early requests wait in its backlog
    finally:
        if not task.done():
            await served.stop()
        task.result()


@pytest.fixture
async def served(ws: Workspace) -> AsyncIterator[Served]:
    async with serve(ws) as running:
        yield running


# -- reading SSE -----------------------------------------------------------------------------


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class SseReader:
    """Parses an SSE byte stream as a browser does, including id-only messages."""

    last_id: str | None = None
    retry: int | None = None

    async def events(self, response: httpx2.Response) -> AsyncGenerator[SseEvent, None]:
        name, event_id = "message", None
        data: list[str] = []
        async for line in response.aiter_lines():
            if line == "":
                if event_id is not None:
                    self.last_id = event_id  # the cursor moves even without data
                if data:
                    yield SseEvent(name, "\n".join(data), self.last_id)
                name, data, event_id = "message", [], None
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                event_id = value
            elif key == "retry" and value.isdigit():
                self.retry = int(value)


# -- a real supervisor with the HTTP service ---------------------------------------------------

WEB_BOOT = """
import logging, sys
from meta_harness.base.config import load_config
from meta_harness.base.errors import MetaHarnessError
from meta_harness.base.layout import Workspace
from meta_harness.runtime.supervisor import run
from meta_harness.web.service import http_service
logging.basicConfig(
    level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
)
logging.getLogger("watchfiles").setLevel(logging.WARNING)
try:
    ws = Workspace.at(sys.argv[1])
    service, endpoints = http_service("127.0.0.1", 0)
    code = run(ws, load_config(ws), services=[service], endpoints=endpoints)
except MetaHarnessError as e:
    print(f"meta-harness: {e}", file=sys.stderr, flush=True)
    raise SystemExit(e.exit_code) from None
raise SystemExit(code)
"""


@pytest.fixture
def procs(ws: Workspace, tmp_path: Path) -> Iterator[Procs]:
    ws.config_file.write_text("")
    tracker = Procs(ws.root, tmp_path)
    try:
        yield tracker
    finally:
        orphans = tracker.cleanup()
    assert not orphans, f"processes outlived their supervisor: {orphans}"


def start_web_supervisor(procs: Procs) -> tuple[Supervisor, str]:
    """A supervisor with the HTTP service on a free 127.0.0.1 port; returns it and its URL."""
    log = procs.scratch / f"supervisor-{len(procs.supervisors) + 1}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-c", WEB_BOOT, str(procs.ws)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=procs.env(),
            cwd=REPO,
            start_new_session=True,
        )
    procs.popens.append(popen)
    supervisor = Supervisor(procs.ws, popen, log)
    procs.supervisors.append(supervisor)
    supervisor.wait_started()
    info = orjson.loads((procs.ws / ".meta-harness" / "supervisor.json").read_bytes())
    return supervisor, str(info["endpoints"]["http"])
