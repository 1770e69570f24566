"""Ingest under hostile input: every drop is accepted correctly or set aside with a reason.

`Ingest` is driven directly (no watcher, no supervisor): files are written into a tmp
workspace and handed to `ingest()` or found by `scan_all()`. A rejected file must end up
in `.meta-harness/rejected/` with a `.error` file naming the reason, the good drops of the
same batch must be unaffected, and nothing may raise. Files are aged with `os.utime`
instead of sleeping through `drop_settle`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from meta_harness.base.config import Config, load_config
from meta_harness.base.jsonl import read_records
from meta_harness.base.layout import Workspace
from meta_harness.domain.phases import TaskPhase
from meta_harness.runtime.ingest import Ingest, IngestResult
from meta_harness.runtime.store import EventLog, TaskStore

OLD = 3600.0  # seconds a drop is aged by default: far past any drop_settle in these tests
BIG = 100 * 1024 * 1024  # the "huge drop": sparse, so creating it costs nothing


@dataclass
class Rig:
    ws: Workspace
    config: Config
    events: EventLog
    store: TaskStore
    ingest: Ingest

    # -- making drops ----------------------------------------------------------------------

    def drop(
        self, directory: Path, name: str, data: bytes | dict[str, Any], *, age: float = OLD
    ) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_bytes(data if isinstance(data, bytes) else orjson.dumps(data))
        if age:
            age_file(path, age)
        return path

    def task_drop(self, name: str, data: bytes | dict[str, Any], *, age: float = OLD) -> Path:
        return self.drop(self.ws.inbox, name, data, age=age)

    def message_drop(
        self, task_id: str, name: str, data: bytes | dict[str, Any], *, age: float = OLD
    ) -> Path:
        return self.drop(self.ws.tasks_dir / task_id / "inbox", name, data, age=age)

    def make_task(self, task_id: str = "t1", **fields: Any) -> None:
        path = self.task_drop(f"{task_id}.json", {"id": task_id, "prompt": "start", **fields})
        result = self.ingest.ingest([path])
        assert result.created == [task_id], self.rejected()

    # -- reading the outcome ---------------------------------------------------------------

    def rejected(self) -> dict[str, str]:
        """Original file name -> reason, from every `.error` file in `rejected/`."""
        out: dict[str, str] = {}
        if not self.ws.rejected_dir.is_dir():
            return out
        for entry in sorted(self.ws.rejected_dir.iterdir()):
            if entry.name.endswith(".error"):
                info = json.loads(entry.read_bytes())
                assert os.path.lexists(info["moved_to"]), info
                out[Path(info["file"]).name] = info["reason"]
        return out

    def wal(self, task_id: str) -> list[dict[str, Any]]:
        return [r for r in read_records(self.ws.task(task_id).wal) if r["op"] == "msg"]

    def wal_texts(self, task_id: str) -> list[str]:
        return [b.get("text", "") for r in self.wal(task_id) for b in r["content"]]

    def event_types(self) -> list[str]:
        return [e["type"] for e in read_records(self.ws.events_file)]


def age_file(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(*overrides: str) -> Rig:
        ws = Workspace.at(tmp_path / f"ws{len(rigs)}")
        ws.root.mkdir()
        ws.ensure_dirs()
        config = load_config(ws, env={"HOME": str(tmp_path / "home")}, overrides=overrides)
        events = EventLog(ws)
        store = TaskStore(ws, events)
        rig = Rig(ws, config, events, store, Ingest(ws, store, lambda: config))
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.store.close()
        rig.events.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


# -- hostile files, in both kinds of inbox ---------------------------------------------------

Maker = Callable[[Path, Path], Path]  # (inbox dir, scratch dir) -> the hostile path


def write(name: str, data: bytes) -> Maker:
    def make(inbox: Path, scratch: Path) -> Path:
        path = inbox / name
        path.write_bytes(data)
        age_file(path, OLD)
        return path

    return make


def symlink_to_valid(inbox: Path, scratch: Path) -> Path:
    target = scratch / "valid.json"
    target.write_bytes(b'{"prompt": "hi", "text": "hi"}')
    (inbox / "link.json").symlink_to(target)
    return inbox / "link.json"


def symlink_to_passwd(inbox: Path, scratch: Path) -> Path:
    (inbox / "passwd.txt").symlink_to("/etc/passwd")
    return inbox / "passwd.txt"


def fifo(inbox: Path, scratch: Path) -> Path:
    os.mkfifo(inbox / "pipe.json")
    return inbox / "pipe.json"


def directory(inbox: Path, scratch: Path) -> Path:
    (inbox / "dir.json").mkdir()
    (inbox / "dir.json" / "inner.json").write_bytes(b"{}")
    return inbox / "dir.json"


def huge(inbox: Path, scratch: Path) -> Path:
    path = inbox / "huge.json"
    with open(path, "wb") as f:
        f.truncate(BIG)
    return path


HOSTILE: list[tuple[str, Maker, str]] = [
    ("malformed JSON", write("bad.json", b'{"prompt": "unterminated'), "malformed JSON"),
    ("binary data", write("bin.json", bytes(range(256)) * 16), "binary content"),
    ("invalid UTF-8", write("latin.txt", b"caf\xe9 cr\xe8me"), "not UTF-8"),
    ("non-object JSON", write("list.json", b"[1, 2, 3]"), "expected a JSON object"),
    ("schema violation", write("schema.json", b'{"prompt": 5, "text": 5}'), "non-empty text"),
    (
        "bad content block",
        write("blocks.json", b'{"content": [{"type": "video"}]}'),
        "content[0].type",
    ),
    (
        "id with slash",
        write("slash.json", b'{"id": "a/b", "prompt": "x", "text": "x"}'),
        "field 'id'",
    ),
    (
        "id with dot-dot",
        write("dots.json", b'{"id": "../../evil", "prompt": "x", "text": "x"}'),
        "field 'id'",
    ),
    ("empty file", write("empty.json", b""), "empty file"),
    ("unsupported name", write("notes.pdf", b"%PDF-1.4"), "unsupported file name"),
    ("very long name", write("n" * 245 + ".json", b"{oops"), "malformed JSON"),
    ("symlink to a valid file", symlink_to_valid, "symbolic links"),
    ("symlink to /etc/passwd", symlink_to_passwd, "symbolic links"),
    ("FIFO", fifo, "not a regular file"),
    ("directory", directory, "not a regular file"),
    ("100 MB file", huge, f"too large: {BIG} bytes"),
]


def check_rejected(rig: Rig, path: Path, reason: str) -> None:
    assert not os.path.lexists(path), "a rejected file must leave the inbox"
    rejected = rig.rejected()
    assert reason in rejected.get(path.name, ""), rejected
    moved = [p for p in rig.ws.rejected_dir.iterdir() if not p.name.endswith(".error")]
    assert len(moved) == 1
    assert "rejected" in rig.event_types()


@pytest.mark.timeout(10)  # a FIFO that got opened for reading would block here
@pytest.mark.parametrize(("make", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_task_drop_is_rejected_and_a_good_one_beside_it_is_accepted(
    rig: Rig, tmp_path: Path, make: Maker, reason: str
) -> None:
    good = rig.task_drop("good.json", {"id": "good", "prompt": "do it"})
    bad = make(rig.ws.inbox, tmp_path)
    result = rig.ingest.ingest([bad, good])
    check_rejected(rig, bad, reason)
    assert result.created == ["good"]
    assert rig.wal_texts("good") == ["do it"]
    assert not good.exists()
    assert rig.ws.task_ids() == ["good"]  # nothing else was created, nowhere else
    assert rig.ingest.rejected == 1


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("make", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_message_drop_is_rejected_and_a_good_one_beside_it_is_accepted(
    rig: Rig, tmp_path: Path, make: Maker, reason: str
) -> None:
    rig.make_task("t1")
    good = rig.message_drop("t1", "good.json", {"id": "m-good", "text": "hello"})
    bad = make(rig.ws.task("t1").inbox, tmp_path)
    result = rig.ingest.ingest([bad, good])
    check_rejected(rig, bad, reason)
    assert result.touched == {"t1"}
    assert rig.wal_texts("t1") == ["start", "hello"]
    assert not good.exists()


def test_a_rejected_symlink_moves_the_link_and_leaves_its_target_alone(
    rig: Rig, tmp_path: Path
) -> None:
    before = Path("/etc/passwd").read_bytes()
    link = symlink_to_passwd(rig.ws.inbox, tmp_path)
    rig.ingest.ingest([link])
    assert Path("/etc/passwd").read_bytes() == before
    moved = [p for p in rig.ws.rejected_dir.iterdir() if p.name.endswith("passwd.txt")]
    assert len(moved) == 1 and moved[0].is_symlink()
    assert b"root:" not in rig.ws.events_file.read_bytes()


def test_a_huge_drop_is_rejected_without_being_opened(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    big = huge(rig.ws.inbox, tmp_path)
    rig.ingest.ingest([big])
    monkeypatch.undo()
    assert str(big) not in opened
    assert f"too large: {BIG} bytes (limit 8388608)" in rig.rejected()["huge.json"]


def test_a_file_the_supervisor_cannot_open_is_rejected_not_raised(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = rig.task_drop("locked.json", {"prompt": "x"})
    good = rig.task_drop("good.json", {"id": "good", "prompt": "y"})
    real_open = os.open

    def refusing_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == str(bad):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    result = rig.ingest.ingest([bad, good])
    monkeypatch.undo()
    assert "Permission denied" in rig.rejected()["locked.json"]
    assert result.created == ["good"]


def test_dot_files_and_writer_temps_are_left_alone(rig: Rig) -> None:
    draft = rig.task_drop(".draft.json", b"{half")
    temp = rig.task_drop(".tmp-x.json.1a2b", b"{half")
    result = rig.ingest.scan_all()
    assert draft.exists() and temp.exists()
    assert result == IngestResult()
    assert rig.rejected() == {}


def test_paths_outside_the_drop_folders_are_ignored(rig: Rig, tmp_path: Path) -> None:
    rig.make_task("t1")
    elsewhere = [
        rig.drop(tmp_path / "outside", "x.json", b"{bad"),
        rig.drop(rig.ws.root, "stray.json", b"{bad"),
        rig.drop(rig.ws.task("t1").dir, "notes.json", b"{bad"),
        rig.drop(rig.ws.task("t1").inbox / "sub", "deep.json", b"{bad"),
    ]
    assert rig.ingest.ingest(elsewhere) == IngestResult()
    assert all(p.exists() for p in elsewhere)
    assert rig.rejected() == {}


def test_a_message_to_a_task_directory_with_an_unsafe_name_is_rejected(rig: Rig) -> None:
    bad = rig.message_drop("..evil", "m.json", {"text": "x"})
    rig.ingest.ingest([bad])
    assert "invalid task id" in rig.rejected()["m.json"]


# -- files still being written ---------------------------------------------------------------

# Long enough that a loaded machine never lets a fresh file settle by itself between the write
# and the ingest; the tests age files past it with os.utime instead of waiting.
SETTLE_SECONDS = 30.0
SETTLE = f"supervisor.drop_settle={SETTLE_SECONDS}"


@pytest.mark.parametrize("where", ["task", "message"])
def test_a_half_written_drop_is_given_time_and_accepted_once_complete(
    make_rig: Callable[..., Rig], where: str
) -> None:
    rig = make_rig(SETTLE)
    if where == "task":
        path = rig.task_drop("job.json", b'{"id": "job", "prompt": "hel', age=0)
    else:
        rig.make_task("t1")
        path = rig.message_drop("t1", "m.json", b'{"id": "m1", "text": "hel', age=0)
    first = rig.ingest.ingest([path])
    assert first.retry_at is not None
    assert time.time() < first.retry_at <= time.time() + SETTLE_SECONDS  # due when it settles
    assert path.exists() and rig.rejected() == {}
    path.write_bytes(
        b'{"id": "job", "prompt": "hello"}' if where == "task" else b'{"id": "m1", "text": "hello"}'
    )
    second = rig.ingest.scan_all()
    assert second.retry_at is None
    assert not path.exists()
    assert "hello" in rig.wal_texts("job" if where == "task" else "t1")
    assert rig.rejected() == {}


@pytest.mark.parametrize("where", ["task", "message"])
def test_a_drop_never_completed_is_rejected_after_drop_settle(
    make_rig: Callable[..., Rig], where: str
) -> None:
    rig = make_rig(SETTLE)
    if where == "task":
        path = rig.task_drop("job.json", b'{"prompt": "hel', age=0)
    else:
        rig.make_task("t1")
        path = rig.message_drop("t1", "m.json", b'{"text": "hel', age=0)
    assert rig.ingest.ingest([path]).retry_at is not None
    assert path.exists()
    age_file(path, 2 * SETTLE_SECONDS)  # drop_settle has passed without a change
    result = rig.ingest.scan_all()
    assert result.retry_at is None
    assert "malformed JSON" in rig.rejected()["m.json" if where == "message" else "job.json"]


def test_a_young_empty_file_waits_and_an_old_one_is_rejected(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(SETTLE)
    young = rig.task_drop("young.json", b"", age=0)
    old = rig.task_drop("old.json", b"")
    result = rig.ingest.ingest([young, old])
    assert result.retry_at is not None
    assert young.exists()
    assert rig.rejected() == {"old.json": "empty file"}


def test_with_no_drop_settle_a_bad_drop_is_rejected_at_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("supervisor.drop_settle=0")
    path = rig.task_drop("bad.json", b"{", age=0)
    assert rig.ingest.ingest([path]).retry_at is None
    assert "malformed JSON" in rig.rejected()["bad.json"]


def test_a_message_to_an_unknown_task_settles_then_is_rejected(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(SETTLE)
    path = rig.message_drop("ghost", "m.json", {"text": "anyone?"}, age=0)
    first = rig.ingest.ingest([path])
    assert first.retry_at is not None
    assert path.exists() and rig.rejected() == {}
    age_file(path, 2 * SETTLE_SECONDS)
    rig.ingest.scan_all()  # what the supervisor calls when retry_at comes
    assert "no task 'ghost'" in rig.rejected()["m.json"]
    assert not path.exists()


def test_a_message_for_a_task_created_in_the_same_batch_is_accepted(rig: Rig) -> None:
    message = rig.message_drop("newborn", "m.json", {"id": "m1", "text": "second"})
    task = rig.task_drop("zzz.json", {"id": "newborn", "prompt": "first"})
    result = rig.ingest.ingest([message, task])
    assert result.created == ["newborn"]
    assert rig.wal_texts("newborn") == ["first", "second"]
    assert rig.rejected() == {}


# -- duplicates ------------------------------------------------------------------------------


def test_a_duplicate_message_id_is_dropped_counted_and_its_file_removed(rig: Rig) -> None:
    rig.make_task("t1")
    first = rig.message_drop("t1", "a.json", {"id": "m-1", "text": "original"})
    rig.ingest.ingest([first])
    again = rig.message_drop("t1", "b.json", {"id": "m-1", "text": "impostor"})
    result = rig.ingest.ingest([again])
    assert not again.exists()
    assert result.touched == set()
    assert rig.wal_texts("t1") == ["start", "original"]
    assert rig.store.inbox("t1").state.duplicates == 1
    assert rig.rejected() == {}


def test_two_copies_of_one_id_in_one_batch_are_accepted_once(rig: Rig) -> None:
    rig.make_task("t1")
    a = rig.message_drop("t1", "a.json", {"id": "m-1", "text": "one"})
    b = rig.message_drop("t1", "b.json", {"id": "m-1", "text": "two"})
    rig.ingest.ingest([a, b])
    assert rig.wal_texts("t1") == ["start", "one"]
    assert rig.store.inbox("t1").state.duplicates == 1
    assert not a.exists() and not b.exists()


def test_the_same_text_file_dropped_twice_is_delivered_once(rig: Rig) -> None:
    rig.make_task("t1")
    for _ in range(2):
        path = rig.message_drop("t1", "note.txt", b"please also add tests")
        rig.ingest.ingest([path])
        assert not path.exists()
    assert rig.wal_texts("t1") == ["start", "please also add tests"]
    assert rig.store.inbox("t1").state.duplicates == 1


def test_the_same_task_text_file_dropped_twice_makes_one_task(rig: Rig) -> None:
    for _ in range(2):
        path = rig.task_drop("ask.txt", b"write a haiku")
        rig.ingest.ingest([path])
        assert not path.exists()
    assert len(rig.ws.task_ids()) == 1
    (task_id,) = rig.ws.task_ids()
    assert rig.wal_texts(task_id) == ["write a haiku"]
    assert rig.rejected() == {}


def test_a_new_ingest_over_the_same_workspace_still_deduplicates(
    rig: Rig,
) -> None:
    rig.make_task("t1")
    rig.ingest.ingest([rig.message_drop("t1", "a.json", {"id": "m-1", "text": "x"})])
    rig.store.close()
    store = TaskStore(rig.ws, rig.events)  # as after a restart: state comes from the files
    store.load_all()
    again = Ingest(rig.ws, store, lambda: rig.config)
    try:
        again.ingest([rig.message_drop("t1", "b.json", {"id": "m-1", "text": "x"})])
        assert store.inbox("t1").state.duplicates == 1
    finally:
        store.close()
    assert rig.wal_texts("t1") == ["start", "x"]


# -- group commit ----------------------------------------------------------------------------


def test_a_thousand_messages_across_fifty_tasks_are_accepted_with_one_wal_write_per_task(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_ids = [f"t-{i:02d}" for i in range(50)]
    created = rig.ingest.ingest(
        [rig.task_drop(f"{t}.json", {"id": t, "prompt": "start"}) for t in task_ids]
    )
    assert sorted(created.created) == task_ids
    paths = [
        rig.message_drop(t, f"m{j:02d}.json", {"id": f"{t}-m{j:02d}", "text": f"{t} #{j}"})
        for t in task_ids
        for j in range(20)
    ]
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    result = rig.ingest.ingest(paths)
    monkeypatch.undo()
    assert len(synced) == 50  # group commit: one fdatasync'd write per task
    assert len(set(synced)) == 50
    assert result.touched == set(task_ids)
    for t in task_ids:
        assert rig.wal_texts(t) == ["start", *(f"{t} #{j}" for j in range(20))]
        assert os.listdir(rig.ws.task(t).inbox) == []
    assert rig.ingest.accepted == 50 + 1000
    assert rig.rejected() == {}


# -- task creation rules ---------------------------------------------------------------------


def test_a_task_drop_naming_an_unknown_profile_is_rejected_naming_it(rig: Rig) -> None:
    path = rig.task_drop("job.json", {"prompt": "x", "profile": "no-such-profile"})
    rig.ingest.ingest([path])
    assert "no-such-profile" in rig.rejected()["job.json"]
    assert rig.ws.task_ids() == []


def test_a_task_drop_records_profile_mode_and_origin(rig: Rig) -> None:
    rig.ingest.ingest([rig.task_drop("job.json", {"id": "j", "prompt": "x", "mode": "oneshot"})])
    record = rig.store.get("j")
    assert record is not None
    assert (record.profile, record.mode, record.depth) == ("demo", "oneshot", 0)
    assert record.created_from == "inbox/job.json"
    assert record.cwd == str(rig.ws.root)
    snapshot = json.loads(rig.ws.task("j").profile_snapshot.read_bytes())
    assert snapshot["name"] == "demo"


def test_a_child_drop_whose_parent_does_not_exist_is_rejected(rig: Rig) -> None:
    rig.ingest.ingest([rig.task_drop("c.json", {"id": "c", "prompt": "x", "parent": "nobody"})])
    assert "parent task 'nobody' does not exist" in rig.rejected()["c.json"]


def test_a_child_drop_whose_parent_has_ended_is_rejected(rig: Rig) -> None:
    rig.make_task("p")
    rig.store.set_phase("p", TaskPhase.DONE, result="ok")
    rig.ingest.ingest([rig.task_drop("c.json", {"id": "c", "prompt": "x", "parent": "p"})])
    assert "already ended" in rig.rejected()["c.json"]


def test_a_child_drop_deeper_than_max_depth_is_rejected_naming_the_limit(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig("profiles.demo.limits.max_depth=1")
    rig.make_task("root")
    rig.make_task("child", parent="root")
    assert rig.store.get("child").depth == 1  # type: ignore[union-attr]
    rig.ingest.ingest([rig.task_drop("g.json", {"id": "g", "prompt": "x", "parent": "child"})])
    reason = rig.rejected()["g.json"]
    assert "max_depth 1" in reason and "depth 2" in reason
    assert rig.store.get("g") is None


def test_a_child_drop_beyond_max_children_is_rejected_naming_the_limit(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig("profiles.demo.limits.max_children=2")
    rig.make_task("root")
    rig.make_task("c1", parent="root")
    rig.make_task("c2", parent="root")
    rig.ingest.ingest([rig.task_drop("c3.json", {"id": "c3", "prompt": "x", "parent": "root"})])
    assert "max_children 2" in rig.rejected()["c3.json"]
    assert sorted(r.id for r in rig.store.children("root")) == ["c1", "c2"]


def test_a_task_drop_for_an_existing_task_id_does_not_create_it_again(rig: Rig) -> None:
    rig.make_task("t1")
    path = rig.task_drop("again.json", {"id": "t1", "prompt": "start"})
    rig.ingest.ingest([path])
    assert not path.exists()
    assert rig.wal_texts("t1") == ["start"]
    assert rig.rejected() == {}


# -- permission answers ----------------------------------------------------------------------


def test_answer_files_are_reported_unread_and_other_permission_files_ignored(rig: Rig) -> None:
    rig.make_task("t1")
    permissions = rig.ws.task("t1").permissions
    answer = rig.drop(permissions, "r1.answer.json", {"decision": "allow"})
    request = rig.drop(permissions, "r1.json", {"id": "r1"})
    result = rig.ingest.scan_all()
    assert result.answers == [("t1", "r1", answer)]
    assert answer.exists() and request.exists()
    assert rig.rejected() == {}


# -- hostile workspace contents --------------------------------------------------------------


@pytest.mark.parametrize("where", ["task", "message"])
def test_a_drop_whose_name_is_not_utf8_is_rejected_and_a_good_one_is_accepted(
    rig: Rig, where: str
) -> None:
    if where == "message":
        rig.make_task("t1")
        inbox = rig.ws.task("t1").inbox
    else:
        inbox = rig.ws.inbox
    raw = os.fsencode(inbox) + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"hello")
    bad = Path(os.fsdecode(raw))
    good = rig.drop(inbox, "good.txt", b"fine")
    rig.ingest.scan_all()
    assert not os.path.lexists(raw)
    assert not good.exists()
    (reason,) = rig.rejected().values()
    assert "UTF-8" in reason
    assert bad.name not in rig.ws.events_file.read_text()  # the log stays valid UTF-8
    assert [e["type"] for e in read_records(rig.ws.events_file)].count("rejected") == 1


def test_a_task_drop_cannot_write_through_a_symlink_planted_in_tasks(
    rig: Rig, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (rig.ws.tasks_dir / "planted").symlink_to(elsewhere)
    rig.ingest.ingest([rig.task_drop("p.json", {"id": "planted", "prompt": "x"})])
    assert os.listdir(elsewhere) == []
    assert "planted" in rig.rejected()["p.json"]
    assert rig.store.get("planted") is None


def test_a_task_drop_whose_directory_is_taken_by_a_file_is_rejected(rig: Rig) -> None:
    (rig.ws.tasks_dir / "taken").write_bytes(b"not a directory")
    good = rig.task_drop("good.json", {"id": "good", "prompt": "y"})
    result = rig.ingest.ingest([rig.task_drop("t.json", {"id": "taken", "prompt": "x"}), good])
    assert "taken" in rig.rejected()["t.json"]
    assert result.created == ["good"]


def test_a_task_directory_left_half_made_by_a_crash_is_reused(rig: Rig) -> None:
    rig.ws.task("half").inbox.mkdir(parents=True)  # mkdir happened, task.json did not
    result = rig.ingest.ingest([rig.task_drop("h.json", {"id": "half", "prompt": "x"})])
    assert result.created == ["half"]
    assert rig.rejected() == {}
