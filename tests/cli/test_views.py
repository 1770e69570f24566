"""`ls` and `show`: tasks as a tree, phases, pending counts, queued drops, supervisor liveness."""

from __future__ import annotations

import orjson

from meta_harness.base.layout import Workspace
from meta_harness.domain.phases import TaskPhase
from tests.cli.conftest import Cli, append, make_task


def wal_msg(mid: str) -> dict[str, object]:
    return {
        "op": "msg",
        "id": mid,
        "from": "cli",
        "ts": 1.0,
        "content": [{"type": "text", "text": "x"}],
    }


def test_ls_shows_children_indented_under_their_parents(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-1root", title="the root")
    make_task(ws, "t-2child", parent="t-1root", title="a child")
    make_task(ws, "t-3grand", parent="t-2child", title="a grandchild")
    make_task(ws, "t-4other", title="another root")
    lines = run.ok("ls").stdout.splitlines()
    assert lines[0].startswith("supervisor: not running")
    ids = [line.split()[0] for line in lines[2:]]
    assert ids == ["t-1root", "t-2child", "t-3grand", "t-4other"]
    assert lines[3].startswith("  t-2child") and lines[4].startswith("    t-3grand")


def test_ls_counts_pending_messages_in_the_wal_and_in_the_inbox(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-busy")
    paths = ws.task("t-busy")
    append(
        paths.wal,
        [wal_msg("a"), wal_msg("b"), {"op": "ack", "id": "a", "ts": 2.0, "stop": "end_turn"}],
    )
    run.ok("send", "t-busy", "one more")
    (row,) = run.json("ls")["tasks"]
    assert (row["id"], row["phase"], row["pending"]) == ("t-busy", "waiting", 2)


def test_ls_hides_ended_tasks_unless_all_but_keeps_live_descendants(
    run: Cli, ws: Workspace
) -> None:
    make_task(ws, "t-1gone", phase=TaskPhase.DONE)
    make_task(ws, "t-2done", phase=TaskPhase.DONE)
    make_task(ws, "t-3live", parent="t-2done")
    listing = run.json("ls")
    assert [t["id"] for t in listing["tasks"]] == ["t-2done", "t-3live"]
    assert listing["hidden"] == 1
    assert "(1 ended task hidden; --all lists them)" in run.ok("ls").stdout
    assert len(run.json("ls", "--all")["tasks"]) == 3


def test_ls_lists_task_drops_still_queued_in_the_inbox(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-parent")
    queued = run.ok("submit", "later", "--title", "queued one").stdout.strip()
    child = run.ok("submit", "child work", "--parent", "t-parent").stdout.strip()
    (ws.inbox / "broken.json").write_text("{not json")
    rows = {t["id"]: t for t in run.json("ls")["tasks"]}
    assert rows[queued]["phase"] == "(queued)" and rows[queued]["title"] == "queued one"
    assert rows[child]["parent"] == "t-parent" and rows[child]["depth"] == 1
    assert rows["inbox/broken.json"]["phase"] == "(invalid)"


def test_ls_shows_session_phases_of_the_running_supervisor_only(
    run: Cli, ws: Workspace, supervisor_running: None
) -> None:
    make_task(ws, "t-a")
    make_task(ws, "t-b")
    events = ws.events_file
    old = {"ts": 0.5, "type": "session.phase", "task": "t-b", "from": "idle", "to": "busy"}
    events.write_bytes(orjson.dumps(old) + b"\n" + events.read_bytes())  # before the start
    append(
        events,
        [
            {"ts": 2.0, "type": "session.phase", "task": "t-a", "from": "absent", "to": "starting"},
            {"ts": 3.0, "type": "session.phase", "task": "t-a", "from": "starting", "to": "idle"},
        ],
    )
    listing = run.json("ls")
    assert listing["supervisor"]["running"] is True
    assert {t["id"]: t["session"] for t in listing["tasks"]} == {"t-a": "idle", "t-b": "absent"}
    assert run.ok("ls").stdout.startswith("supervisor: running (pid ")


def test_a_supervisor_json_of_a_dead_process_is_not_running(run: Cli, ws: Workspace) -> None:
    ws.supervisor_file.write_bytes(orjson.dumps({"pid": 999_999_999, "create_time": 1.0}))
    make_task(ws, "t-a")
    listing = run.json("ls")
    assert listing["supervisor"]["running"] is False
    assert listing["tasks"][0]["session"] == "-"


def test_show_gives_record_counts_requests_and_result(
    run: Cli, ws: Workspace, supervisor_running: None
) -> None:
    make_task(ws, "t-parent")
    make_task(ws, "t-kid", parent="t-parent")
    paths = ws.task("t-parent")
    append(
        paths.wal,
        [wal_msg("a"), wal_msg("a"), {"op": "ack", "id": "a", "ts": 2.0, "stop": "end_turn"}],
    )
    request = {
        "id": "perm-1",
        "status": "pending",
        "kind": "edit",
        "title": "Edit x",
        "created_at": 1.0,
    }
    (paths.permissions / "perm-1.json").write_bytes(orjson.dumps(request))
    answered = {**request, "id": "perm-0", "status": "answered"}
    (paths.permissions / "perm-0.json").write_bytes(orjson.dumps(answered))
    out = run.json("show", "t-par")
    assert out["task"]["id"] == "t-parent"
    assert out["messages"] == {
        "accepted": 1,
        "delivered": 1,
        "pending": 0,
        "duplicates": 1,
        "waiting_files": 0,
    }
    assert [r["id"] for r in out["permissions"]] == ["perm-1"]
    assert out["children"] == ["t-kid"]
    text = run.ok("show", "t-parent").stdout
    assert "messages:    1 accepted, 1 delivered, 0 pending, 1 duplicates" in text
    assert "  perm-1  edit  Edit x" in text


def test_show_prints_the_result_of_a_finished_task(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-fin", phase=TaskPhase.DONE)
    record = orjson.loads(ws.task("t-fin").record.read_bytes())
    record.update(result="42 files fixed", finished_by="agent")
    ws.task("t-fin").record.write_bytes(orjson.dumps(record))
    text = run.ok("show", "t-fin").stdout
    assert "result:      42 files fixed" in text and "finished by: agent" in text
