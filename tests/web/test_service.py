"""The HTTP service in the supervisor: bound before boot (port 0 works), token announced
once, stopped by the stop event; and end to end with a real supervisor and demo agent."""

from __future__ import annotations

import contextlib
import socket
import stat
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest

from meta_harness.base.errors import UsageError
from meta_harness.base.layout import Workspace
from meta_harness.web.service import http_service, url_of
from tests.support.procs import Procs
from tests.web.conftest import WAIT, SseEvent, SseReader, serve, start_web_supervisor

pytestmark = pytest.mark.anyio

TURN_WAIT = 30.0  # a supervisor boot, an agent spawn and a few demo turns on a loaded box


async def test_port_zero_binds_a_free_port_before_the_service_runs(ws: Workspace) -> None:
    _, endpoints = http_service("127.0.0.1", 0)
    url = endpoints["http"]
    port = int(url.rsplit(":", 1)[1])
    assert url == f"http://127.0.0.1:{port}" and port > 0
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT):
        pass  # already listening: clients queue in the backlog until uvicorn runs


async def test_a_busy_port_is_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match="cannot listen"):
            http_service("127.0.0.1", port)


async def test_the_mcp_endpoint_is_published_beside_the_http_one() -> None:
    class FakeMcp:
        pass

    _, endpoints = http_service("127.0.0.1", 0, mcp=FakeMcp())  # type: ignore[arg-type]
    assert endpoints["mcp"] == endpoints["http"] + "/mcp"


def test_wildcard_binds_publish_a_loopback_url() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        assert url_of(sock).startswith("http://127.0.0.1:")


async def test_a_loopback_service_serves_without_a_token(ws: Workspace) -> None:
    async with serve(ws) as running, httpx2.AsyncClient(timeout=WAIT) as http:
        response = await http.get(running.url + "/api/stats")
        assert response.status_code == 200
    assert running.lines == [f"meta-harness: dashboard at {running.url}/"]
    assert not ws.http_token_file.exists()


async def test_a_token_service_announces_a_new_token_once_and_requires_it(ws: Workspace) -> None:
    async with serve(ws, require_token=True) as first, httpx2.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(first.url + "/api/tasks")).status_code == 401  # waits for startup
        token = ws.http_token_file.read_text().strip()
        assert stat.S_IMODE(ws.http_token_file.stat().st_mode) == 0o600
        assert first.lines == [
            f"meta-harness: dashboard at {first.url}/?token={token} "
            f"(token saved in {ws.http_token_file}; shown once)"
        ]
        authorized = {"authorization": f"Bearer {token}"}
        assert (await http.get(first.url + "/api/tasks", headers=authorized)).status_code == 200
        stream = await http.get(first.url + "/api/events?token=wrong")
        assert stream.status_code == 401
    async with serve(ws, require_token=True) as second, httpx2.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(second.url + "/api/tasks")).status_code == 401
    assert len(second.lines) == 1 and token not in second.lines[0]


# -- end to end: a real supervisor, the demo agent, the API and one stream ----------------------


class TaskStream:
    """Follows one task's SSE stream in the background, collecting agent text and events."""

    def __init__(self) -> None:
        self.text = ""
        self.events: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    def take(self, item: SseEvent) -> None:
        record = item.json()["record"]
        if item.event == "event":
            self.events.append(record)
        frame = record.get("frame")
        if isinstance(frame, dict) and frame.get("method") == "session/update":
            update = frame["params"]["update"]
            if update.get("sessionUpdate") == "agent_message_chunk" and not record.get("load"):
                self.text += update["content"].get("text", "")
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, check: Any) -> None:
        while not check(self):
            await self._changed.wait()


@contextlib.asynccontextmanager
async def following(http: httpx2.AsyncClient, url: str) -> AsyncIterator[TaskStream]:
    stream = TaskStream()

    async def run() -> None:
        reader = SseReader()
        async with http.stream("GET", url) as response:
            assert response.status_code == 200
            async for item in reader.events(response):
                stream.take(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        yield stream
        tg.cancel_scope.cancel()


async def test_a_task_submitted_over_http_streams_asks_and_takes_messages(
    ws: Workspace, procs: Procs
) -> None:
    _, url = start_web_supervisor(procs)
    with anyio.fail_after(TURN_WAIT):
        async with httpx2.AsyncClient(timeout=WAIT) as http:
            cursor = (await http.get(url + "/api/stats")).json()["events_cursor"]
            async with following(http, f"{url}/api/events?last_event_id={cursor}") as events:
                submitted = await http.post(
                    url + "/api/tasks", json={"prompt": "/edit notes.txt hi", "id": "t-e2e"}
                )
                assert submitted.status_code == 202
                await events.until(
                    lambda s: any(
                        e["type"] == "task.created" and e["task"] == "t-e2e" for e in s.events
                    )
                )
            async with following(http, url + "/api/tasks/t-e2e/stream") as task:
                await task.until(
                    lambda s: any(
                        e["type"] == "permission" and e.get("status") == "pending" for e in s.events
                    )
                )
                [request] = (await http.get(url + "/api/permissions")).json()["requests"]
                assert request["task"] == "t-e2e" and request["kind"] == "edit"
                answer = await http.post(
                    f"{url}/api/tasks/t-e2e/permissions/{request['id']}",
                    json={"decision": "allow"},
                )
                assert answer.status_code == 202
                await task.until(lambda s: "edited " + str(ws.root / "notes.txt") in s.text)
                sent = await http.post(
                    url + "/api/tasks/t-e2e/messages", json={"text": "hello web"}
                )
                assert sent.status_code == 202
                await task.until(lambda s: "echo: hello web" in s.text)
                await task.until(  # both turns acked: the task waits again
                    lambda s: sum(e.get("to") == "waiting" for e in s.events) == 2
                )
            detail = (await http.get(url + "/api/tasks/t-e2e")).json()
    assert (ws.root / "notes.txt").read_text() == "hi"
    assert detail["phase"] == "waiting" and detail["inbox"]["delivered"] == 2
    assert [r["status"] for r in detail["permissions"]] == ["answered"]
    assert detail["permissions"][0]["answered_by"] == "web"
