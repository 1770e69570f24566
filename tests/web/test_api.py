"""The JSON API: reads come from the workspace files, writes are published drop/answer files
that the supervisor's own parsers accept; hostile requests get a clear JSON error."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from meta_harness.base.jsonl import read_from
from meta_harness.base.layout import Workspace
from meta_harness.domain.drops import Control, parse_message_drop, parse_task_drop
from meta_harness.domain.permissions import Decision, parse_answer
from meta_harness.domain.phases import TaskPhase
from meta_harness.web.app import STATIC_DIR
from tests.web.conftest import append, event, make_task, note, pending_request

JSON_HEADERS = {"content-type": "application/json"}


def only_file(directory: Path) -> Path:
    [name] = [n for n in os.listdir(directory) if not n.startswith(".")]
    return directory / name


# -- reads -------------------------------------------------------------------------------------


def test_the_task_tree_nests_children_and_shows_session_phases_from_events(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-root", phase=TaskPhase.ACTIVE, created_at=1.0)
    make_task(ws, "t-child", parent="t-root", depth=1, created_at=2.0)
    make_task(ws, "t-grandchild", parent="t-child", depth=2, created_at=3.0)
    make_task(ws, "t-other", phase=TaskPhase.DONE, created_at=4.0, result="ok")
    append(
        ws.events_file,
        event("supervisor", status="started"),
        event("session.phase", "t-root", **{"from": "absent", "to": "starting"}),
        event("session.phase", "t-root", **{"from": "starting", "to": "busy"}),
    )
    pending_request(ws, "t-root", "perm-1")
    body = client.get("/api/tasks").json()
    assert body["count"] == 4
    [root, other] = body["tasks"]
    assert (root["id"], root["phase"], root["session"]) == ("t-root", "active", "busy")
    assert root["pending_permissions"] == 1
    assert root["children"][0]["id"] == "t-child"
    assert root["children"][0]["children"][0]["id"] == "t-grandchild"
    assert (other["id"], other["phase"], other["session"], other["has_result"]) == (
        "t-other",
        "done",
        "absent",
        True,
    )


def test_a_supervisor_restart_resets_session_phases_and_pending_requests(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a")
    append(ws.events_file, event("session.phase", "t-a", to="idle"))
    pending_request(ws, "t-a", "perm-1")
    assert client.get("/api/tasks").json()["tasks"][0]["session"] == "idle"
    assert len(client.get("/api/permissions").json()["requests"]) == 1
    append(ws.events_file, event("supervisor", status="started"))
    assert client.get("/api/tasks").json()["tasks"][0]["session"] == "absent"
    assert client.get("/api/permissions").json()["requests"] == []


def test_a_hand_edited_parent_cycle_still_lists_every_task(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a", parent="t-b")
    make_task(ws, "t-b", parent="t-a")
    body = client.get("/api/tasks").json()
    assert body["count"] == 2
    listed = {t["id"] for t in body["tasks"]} | {
        c["id"] for t in body["tasks"] for c in t["children"]
    }
    assert listed == {"t-a", "t-b"}


def test_a_task_shows_its_record_inbox_permissions_children_and_transcript_size(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a", session_id="s-1")
    make_task(ws, "t-kid", parent="t-a")
    paths = ws.task("t-a")
    append(
        paths.wal,
        {"op": "msg", "id": "m1", "from": "user", "ts": 1.0, "content": []},
        {"op": "sent", "id": "m1", "ts": 2.0, "epoch": 1},
        {"op": "ack", "id": "m1", "ts": 3.0, "stop": "end_turn"},
        {"op": "msg", "id": "m2", "from": "user", "ts": 4.0, "content": []},
    )
    append(paths.transcript, note("spawn"))
    pending_request(ws, "t-a", "perm-1")
    body = client.get("/api/tasks/t-a").json()
    assert body["id"] == "t-a" and body["session_id"] == "s-1"
    assert body["inbox"] == {"accepted": 2, "delivered": 1, "pending": 1, "duplicates": 0}
    assert [r["id"] for r in body["permissions"]] == ["perm-1"]
    assert body["children"] == ["t-kid"]
    assert body["transcript_bytes"] == paths.transcript.stat().st_size


def test_transcript_pages_by_byte_offset_cover_the_file_exactly(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a")
    path = ws.task("t-a").transcript
    append(path, *(note("n", i=i) for i in range(25)))
    with open(path, "ab") as f:
        f.write(b'{"torn": tr')  # a line still being written is not served
    got: list[tuple[int, dict[str, object]]] = []
    offset = 0
    while True:
        page = client.get(f"/api/tasks/t-a/transcript?offset={offset}&limit=7").json()
        got.extend((r["offset"], r["record"]) for r in page["records"])
        assert page["offset"] == offset
        offset = page["next_offset"]
        if not page["more"]:
            break
    assert got == read_from(path)[0]
    assert len(got) == 25


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("offset=3", 400),
        ("offset=-1", 400),
        ("offset=abc", 400),
        ("limit=abc", 400),
        ("limit=999999", 400),
        ("offset=99999999", 400),
    ],
)
def test_bad_transcript_offsets_and_limits_are_refused(
    ws: Workspace, client: TestClient, query: str, status: int
) -> None:
    make_task(ws, "t-a")
    append(ws.task("t-a").transcript, note("n"))
    response = client.get(f"/api/tasks/t-a/transcript?{query}")
    assert response.status_code == status
    assert response.json()["error"]


def test_stats_count_tasks_sessions_and_pending_permissions(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a", phase=TaskPhase.ACTIVE)
    make_task(ws, "t-b", phase=TaskPhase.ACTIVE)
    make_task(ws, "t-c", phase=TaskPhase.DONE)
    append(ws.events_file, event("session.phase", "t-a", to="busy"))
    pending_request(ws, "t-a", "perm-1")
    (ws.state_dir / "stats.json").write_bytes(orjson.dumps({"slots": {"live": 1, "max_live": 8}}))
    body = client.get("/api/stats").json()
    assert body["tasks"] == {"active": 2, "done": 1}
    assert body["sessions"] == {"busy": 1}
    assert body["permissions"] == {"pending": 1}
    assert body["runtime"]["slots"]["max_live"] == 8
    assert body["events_cursor"] == f"e:{ws.events_file.stat().st_size}"


def test_pending_permissions_are_confirmed_by_their_files(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a")
    path = pending_request(ws, "t-a", "perm-1")
    pending_request(ws, "t-a", "perm-2")
    record = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps(record | {"status": "answered", "decision": "allow"}))
    requests = client.get("/api/permissions").json()["requests"]
    assert [r["id"] for r in requests] == ["perm-2"]
    assert requests[0]["answer_published"] is False


# -- writes --------------------------------------------------------------------------------------


def test_submitting_a_task_publishes_a_drop_the_supervisor_accepts(
    ws: Workspace, client: TestClient
) -> None:
    response = client.post(
        "/api/tasks",
        json={"prompt": "hello", "title": "Greet", "profile": "demo", "mode": "oneshot"},
    )
    assert response.status_code == 202
    body = response.json()
    drop_file = only_file(ws.inbox)
    assert body["file"] == f"inbox/{drop_file.name}"
    drop = parse_task_drop(drop_file.name, drop_file.read_bytes())
    assert (drop.task_id, drop.title, drop.profile, drop.mode) == (
        body["task"],
        "Greet",
        "demo",
        "oneshot",
    )
    assert drop.message.sender == "web"
    assert drop.message.content == [{"type": "text", "text": "hello"}]
    assert body["message"] == drop.message.id


def test_a_child_task_names_a_live_parent(ws: Workspace, client: TestClient) -> None:
    make_task(ws, "t-parent")
    make_task(ws, "t-ended", phase=TaskPhase.DONE)
    ok = client.post("/api/tasks", json={"prompt": "x", "parent": "t-parent", "id": "t-kid"})
    assert ok.status_code == 202
    assert parse_task_drop("x.json", only_file(ws.inbox).read_bytes()).parent == "t-parent"
    assert client.post("/api/tasks", json={"prompt": "x", "parent": "t-none"}).status_code == 404
    assert client.post("/api/tasks", json={"prompt": "x", "parent": "t-ended"}).status_code == 409


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": ""}, "'prompt'"),
        ({"prompt": "x", "content": [{"type": "text", "text": "y"}]}, "not both"),
        ({"prompt": "x", "mode": "forever"}, "'mode'"),
        ({"prompt": "x", "promt": "typo"}, "unknown field"),
        ({"prompt": "x", "id": "../../etc"}, "invalid task id"),
        ({"prompt": "x", "id": 7}, "'id' must be a string"),
        ({"prompt": "x", "title": "t" * 500}, "longer than"),
        ({"content": [{"type": "bogus"}]}, "content[0].type"),
        (["prompt", "x"], "JSON object"),
        ("just a string", "JSON object"),
    ],
)
def test_a_bad_task_submission_is_refused_with_the_reason(
    ws: Workspace, client: TestClient, body: object, message: str
) -> None:
    response = client.post("/api/tasks", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert os.listdir(ws.inbox) == []


def test_resubmitting_an_existing_task_id_is_a_conflict(ws: Workspace, client: TestClient) -> None:
    make_task(ws, "t-a")
    assert client.post("/api/tasks", json={"prompt": "x", "id": "t-a"}).status_code == 409
    assert client.post("/api/tasks", json={"prompt": "x", "id": "t-b"}).status_code == 202
    second = client.post("/api/tasks", json={"prompt": "x", "id": "t-b"})
    assert second.status_code == 409 and "waits to be picked up" in second.json()["error"]


def test_a_message_is_published_into_the_task_inbox(ws: Workspace, client: TestClient) -> None:
    make_task(ws, "t-a")
    response = client.post("/api/tasks/t-a/messages", json={"text": "more please"})
    assert response.status_code == 202
    drop_file = only_file(ws.task("t-a").inbox)
    drop = parse_message_drop(drop_file.name, drop_file.read_bytes())
    assert drop.id == response.json()["message"]
    assert (drop.sender, drop.content) == ("web", [{"type": "text", "text": "more please"}])


def test_a_retried_message_with_the_same_id_replaces_its_own_file(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a")
    for _ in range(2):
        response = client.post("/api/tasks/t-a/messages", json={"text": "x", "id": "m-42"})
        assert response.status_code == 202
    assert os.listdir(ws.task("t-a").inbox) == ["m-42.json"]


@pytest.mark.parametrize(
    ("task", "body", "status"),
    [
        ("t-none", {"text": "x"}, 404),
        ("t-done", {"text": "x"}, 409),
        ("t-a", {"text": "   "}, 400),
        ("t-a", {"text": "x", "control": "cancel"}, 400),
        ("t-a", {"text": "x", "id": "bad id with spaces"}, 400),
        ("t-a", {}, 400),
    ],
)
def test_bad_messages_are_refused(
    ws: Workspace, client: TestClient, task: str, body: dict[str, object], status: int
) -> None:
    make_task(ws, "t-a")
    make_task(ws, "t-done", phase=TaskPhase.CANCELLED)
    response = client.post(f"/api/tasks/{task}/messages", json=body)
    assert response.status_code == status
    assert response.json()["error"]
    assert os.listdir(ws.task("t-a").inbox) == []


def test_cancel_publishes_a_cancel_control(ws: Workspace, client: TestClient) -> None:
    make_task(ws, "t-a")
    assert client.post("/api/tasks/t-a/cancel", headers=JSON_HEADERS).status_code == 202
    drop_file = only_file(ws.task("t-a").inbox)
    drop = parse_message_drop(drop_file.name, drop_file.read_bytes())
    assert (drop.control, drop.sender) == (Control.CANCEL, "web")
    assert client.post("/api/tasks/t-a/cancel", json={"now": True}).status_code == 400
    make_task(ws, "t-done", phase=TaskPhase.FAILED)
    assert client.post("/api/tasks/t-done/cancel", json={}).status_code == 409


def test_answering_a_permission_publishes_an_answer_file_the_gate_accepts(
    ws: Workspace, client: TestClient
) -> None:
    make_task(ws, "t-a")
    pending_request(ws, "t-a", "perm-1")
    response = client.post(
        "/api/tasks/t-a/permissions/perm-1", json={"decision": "allow", "always": True}
    )
    assert response.status_code == 202
    answer = ws.task("t-a").permissions / "perm-1.answer.json"
    assert parse_answer(orjson.loads(answer.read_bytes())) == (Decision.ALLOW, True, "web", "")
    again = client.post("/api/tasks/t-a/permissions/perm-1", json={"decision": "reject"})
    assert again.status_code == 409 and "already waiting" in again.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/tasks/t-a/permissions/perm-none", {"decision": "allow"}, 404),
        ("/api/tasks/t-none/permissions/perm-1", {"decision": "allow"}, 404),
        ("/api/tasks/t-a/permissions/perm-1", {"decision": "maybe"}, 400),
        ("/api/tasks/t-a/permissions/perm-1", {"decision": "allow", "always": "yes"}, 400),
        ("/api/tasks/t-a/permissions/perm-1", {"decision": "allow", "by": "root"}, 400),
        ("/api/tasks/t-a/permissions/perm-1", {"decision": "allow", "reason": 5}, 400),
        ("/api/tasks/t-a/permissions/%2e%2e", {"decision": "allow"}, 400),
        ("/api/tasks/t-a/permissions/perm-done", {"decision": "allow"}, 409),
    ],
)
def test_bad_permission_answers_are_refused(
    ws: Workspace, client: TestClient, path: str, body: dict[str, object], status: int
) -> None:
    make_task(ws, "t-a")
    pending_request(ws, "t-a", "perm-1")
    pending_request(ws, "t-a", "perm-done", status="answered", decision="reject")
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert not any(n.endswith(".answer.json") for n in os.listdir(ws.task("t-a").permissions))


# -- hostile requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_id",
    ["%2e%2e", "a..b", ".hidden", "x" * 65, "-dash", "%00", "a%20b", "%2e%2e%5c%2e%2e"],
)
@pytest.mark.parametrize("suffix", ["", "/transcript", "/stream"])
def test_path_traversing_task_ids_are_refused_before_touching_a_file(
    client: TestClient, task_id: str, suffix: str
) -> None:
    response = client.get(f"/api/tasks/{task_id}{suffix}")
    assert response.status_code == 400
    assert "invalid task id" in response.json()["error"]


@pytest.mark.parametrize("suffix", ["", "/transcript", "/stream", "/messages", "/cancel"])
def test_unknown_tasks_are_404(client: TestClient, suffix: str) -> None:
    method = "POST" if suffix in ("/messages", "/cancel") else "GET"
    response = client.request(
        method, f"/api/tasks/t-nope{suffix}", json={"text": "x"} if suffix == "/messages" else {}
    )
    assert response.status_code == 404
    assert response.json() == {"error": "no task 't-nope' in this workspace"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{bad json", "malformed JSON"),
        (b"", "empty"),
        (b'{"prompt": "x"', "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"[1, 2", "malformed JSON"),
    ],
)
def test_malformed_json_is_a_400_with_a_clear_message(
    client: TestClient, data: bytes, message: str
) -> None:
    response = client.post("/api/tasks", content=data, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_huge_body_is_refused_with_413(ws: Workspace, client: TestClient) -> None:
    big = orjson.dumps({"prompt": "x" * (2 << 20)})
    response = client.post("/api/tasks", content=big, headers=JSON_HEADERS)
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        for _ in range(40):
            yield b"x" * 65536

    streamed = client.post("/api/tasks", content=chunks(), headers=JSON_HEADERS)
    assert streamed.status_code == 413
    assert os.listdir(ws.inbox) == []


def test_a_post_that_is_not_json_is_refused(client: TestClient) -> None:
    form = client.post("/api/tasks", data={"prompt": "x"})
    assert form.status_code == 415
    plain = client.post(
        "/api/tasks", content=b'{"prompt":"x"}', headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 415


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = client.delete("/api/tasks")
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_no_response_carries_cors_headers(ws: Workspace, client: TestClient) -> None:
    make_task(ws, "t-a")
    for path in ("/api/tasks", "/api/tasks/t-a", "/api/stats", "/", "/api/openapi.json"):
        response = client.get(path, headers={"origin": "http://127.0.0.1"})
        assert response.status_code == 200
        assert not any(h.lower().startswith("access-control-") for h in response.headers)
    preflight = client.options("/api/tasks", headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in preflight.headers


# -- the page --------------------------------------------------------------------------------------


def test_the_dashboard_page_and_its_assets_are_served_with_a_strict_csp(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "{{" not in page.text
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        assert client.get(asset).status_code == 200


def test_the_dashboard_script_never_writes_html() -> None:
    script = (STATIC_DIR / "dashboard.js").read_text("utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
