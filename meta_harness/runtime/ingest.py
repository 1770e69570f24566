"""Ingest: turn drop files into durable WAL records, or set them aside with a reason.

Given paths the watcher reported (or a full scan at boot), classify each: a new task
(`inbox/`), a message or control for a task (`tasks/<id>/inbox/`), or a permission
answer (`tasks/<id>/permissions/<req>.answer.json`). File-system checks happen before
any read (`lstat`: regular file, size limit; opened with O_NOFOLLOW|O_NONBLOCK so a
FIFO never blocks). Messages of one task found in one pass share a single fdatasync'd
write (group commit); a drop file is unlinked only after its record is durable. A file
that does not parse yet may still be being written: it gets `drop_settle` seconds of
no change, then it is rejected.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from meta_harness.base.config import Config
from meta_harness.base.errors import Conflict, DropRejected, MetaHarnessError
from meta_harness.base.fs import TMP_PREFIX, atomic_write
from meta_harness.base.layout import Workspace, validate_request_id, validate_task_id
from meta_harness.domain.drops import (
    MessageDrop,
    TaskDrop,
    is_drop_name,
    parse_message_drop,
    parse_task_drop,
)
from meta_harness.domain.events import EventType, event
from meta_harness.domain.tasks import TaskMode, TaskRecord
from meta_harness.runtime.store import TaskStore

logger = logging.getLogger(__name__)

ANSWER_SUFFIX = ".answer.json"
REJECTED_NAME_KEEP = 120  # chars of a drop's name kept in rejected/ (NAME_MAX is 255)


class Deferred(Exception):
    """Not ready yet (still being written, or its task not created yet); try again later."""


@dataclass
class IngestResult:
    touched: set[str] = field(default_factory=set)  # tasks with new WAL records
    created: list[str] = field(default_factory=list)
    answers: list[tuple[str, str, Path]] = field(default_factory=list)  # task, request, file
    retry_at: float | None = None


class Ingest:
    def __init__(
        self,
        workspace: Workspace,
        store: TaskStore,
        config: Callable[[], Config],
    ) -> None:
        self.workspace = workspace
        self.store = store
        self._config = config
        self._first_bad: dict[Path, tuple[float, float]] = {}  # path -> (first seen, mtime)
        self._inbox_dir = workspace.inbox  # built once: _classify runs for every drop
        self._tasks_dir = workspace.tasks_dir
        self.rejected = 0
        self.accepted = 0

    # -- entry points ----------------------------------------------------------------------

    def scan_all(self) -> IngestResult:
        """Every drop and answer file in the workspace (boot, and after settle timers)."""
        paths: list[Path] = []
        paths.extend(_list(self.workspace.inbox))
        for task_id in self.workspace.task_ids():
            task = self.workspace.task(task_id)
            paths.extend(_list(task.inbox))
            paths.extend(p for p in _list(task.permissions) if p.name.endswith(ANSWER_SUFFIX))
        # files still settling, including ones for tasks that do not exist (not listed above)
        paths.extend(self._first_bad)
        return self.ingest(paths)

    def ingest(self, paths: Iterable[Path]) -> IngestResult:
        result = IngestResult()
        task_drops: list[Path] = []
        message_drops: dict[str, list[Path]] = {}
        for path in sorted(set(paths), key=str):  # str keys: Path.__lt__ is ~5x slower
            kind = self._classify(path)
            if kind is None:
                continue
            what, task_id = kind
            if what == "task":
                task_drops.append(path)
            elif what == "message":
                message_drops.setdefault(task_id, []).append(path)
            elif what == "answer":
                request_id = path.name[: -len(ANSWER_SUFFIX)]
                result.answers.append((task_id, request_id, path))
        for path in task_drops:  # tasks first: a message may be for a task in this batch
            self._ingest_task(path, result)
        for task_id, group in message_drops.items():
            self._ingest_messages(task_id, group, result)
        return result

    # -- classification --------------------------------------------------------------------

    def _classify(self, path: Path) -> tuple[str, str] | None:
        name = path.name
        if name.startswith((".", TMP_PREFIX)):
            return None
        parent = path.parent
        if parent == self._inbox_dir:
            return ("task", "") if self._acceptable_name(path) else None
        grand = parent.parent
        if grand.parent != self._tasks_dir:
            return None
        task_id = grand.name
        if parent.name == "inbox":
            return ("message", task_id) if self._acceptable_name(path) else None
        if parent.name == "permissions" and name.endswith(ANSWER_SUFFIX):
            return ("answer", task_id)
        return None

    def _acceptable_name(self, path: Path) -> bool:
        if _shown(path.name) != path.name:
            problem = "the file name is not valid UTF-8; rename it"
        elif not is_drop_name(path.name):
            problem = f"unsupported file name {path.name!r}: use .json, .txt or .md"
        else:
            return True
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        # Anything else that appears in an inbox is set aside, so nobody waits on it.
        self._reject(path, problem, st)
        return False

    # -- reading -----------------------------------------------------------------------------

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes, after the checks that must happen before reading."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._first_bad.pop(path, None)
            return None
        if stat.S_ISLNK(st.st_mode):
            self._reject(path, "symbolic links are not accepted; drop a regular file", st)
            return None
        if not stat.S_ISREG(st.st_mode):
            self._reject(path, "not a regular file (FIFO, device, socket or directory)", st)
            return None
        limit = self._config().settings.supervisor.max_drop_bytes
        if st.st_size > limit:
            self._reject(path, f"too large: {st.st_size} bytes (limit {limit})", st)
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                self._reject(path, "symbolic links are not accepted", st)
            else:
                self._reject(path, f"cannot open: {e.strerror}", st)
            return None
        try:
            # Sized by the lstat, not by the limit (a read of limit + 1 would allocate 8 MiB
            # for every drop); a file that grew since the lstat is read on to the limit.
            chunks = [os.read(fd, st.st_size + 1)]
            size = len(chunks[0])
            while size > st.st_size and size <= limit and (chunk := os.read(fd, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
        except OSError as e:
            self._reject(path, f"unreadable: {e.strerror}", st)
            return None
        finally:
            os.close(fd)
        if len(data) > limit:  # it grew after the lstat
            self._reject(path, f"too large: more than {limit} bytes (limit {limit})", st)
            return None
        return data

    def _settle_or_reject(self, path: Path, reason: str, result: IngestResult) -> None:
        """A file that does not parse may still be being written: give it time, then reject."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._first_bad.pop(path, None)
            return
        settle = self._config().settings.supervisor.drop_settle
        now = time.time()
        first, mtime = self._first_bad.get(path, (now, st.st_mtime))
        if mtime != st.st_mtime:
            first = now  # it changed: the writer is still at work
        if now - first >= settle or now - st.st_mtime >= settle:
            self._first_bad.pop(path, None)
            self._reject(path, reason, st)
            return
        self._first_bad[path] = (first, st.st_mtime)
        due = first + settle
        result.retry_at = due if result.retry_at is None else min(result.retry_at, due)

    # -- tasks ---------------------------------------------------------------------------------

    def _ingest_task(self, path: Path, result: IngestResult) -> None:
        data = self._read(path)
        if data is None:
            return
        try:
            drop = parse_task_drop(path.name, data)
            created = self._create_task(drop, path)
        except DropRejected as e:
            self._settle_or_reject(path, e.message, result)
            return
        except MetaHarnessError as e:
            self._reject(path, e.message, None)
            return
        self._first_bad.pop(path, None)
        task_id = created.id
        accepted = self.store.inbox(task_id).accept([drop.message])
        self.accepted += len(accepted)
        if accepted:
            result.touched.add(task_id)
            self.store.events.emit(
                EventType.MESSAGE, task_id, id=drop.message.id, status="accepted"
            )
        result.created.append(task_id)
        _unlink(path)

    def _create_task(self, drop: TaskDrop, path: Path) -> TaskRecord:
        assert drop.task_id is not None
        existing = self.store.get(drop.task_id)
        if existing is not None:
            return existing  # re-ingest after a crash, or a duplicate drop: idempotent
        task_dir = self.workspace.task(drop.task_id).dir
        with contextlib.suppress(FileNotFoundError):
            # a real directory without task.json is a creation cut short by a crash: reuse it
            if not stat.S_ISDIR(os.lstat(task_dir).st_mode):
                raise Conflict(f"tasks/{drop.task_id} exists and is not a task directory")
        config = self._config()
        profile_name = drop.profile or config.settings.supervisor.default_profile
        profile = config.profile(profile_name)
        depth = 0
        if drop.parent is not None:
            parent = self.store.get(drop.parent)
            if parent is None:
                raise DropRejected(f"parent task {drop.parent!r} does not exist")
            if parent.phase.terminal:
                raise DropRejected(f"parent task {drop.parent} has already ended ({parent.phase})")
            parent_profile = config.profiles.get(parent.profile, profile)
            depth = parent.depth + 1
            if depth > parent_profile.limits.max_depth:
                raise DropRejected(
                    f"too deep: task depth {depth} exceeds max_depth "
                    f"{parent_profile.limits.max_depth} of profile {parent.profile}"
                )
            siblings = len(self.store.children(parent.id))
            if siblings >= parent_profile.limits.max_children:
                raise DropRejected(
                    f"too many children: {parent.id} already has {siblings} "
                    f"(max_children {parent_profile.limits.max_children})"
                )
        mode = TaskMode(drop.mode or profile.mode)
        cwd = profile.cwd.replace("{workspace}", str(self.workspace.root))
        record = TaskRecord(
            id=drop.task_id,
            title=drop.title,
            parent=drop.parent,
            depth=depth,
            profile=profile_name,
            mode=mode,
            cwd=cwd,
            created_from=str(path.relative_to(self.workspace.root)),
        )
        self.store.create(record, profile.model_dump_json(indent=2).encode())
        return record

    # -- messages ------------------------------------------------------------------------------

    def _ingest_messages(self, task_id: str, paths: list[Path], result: IngestResult) -> None:
        try:
            validate_task_id(task_id)
        except MetaHarnessError as e:
            for path in paths:
                self._reject(path, e.message, None)
            return
        if self.store.get(task_id) is None:
            for path in paths:
                self._settle_or_reject(path, f"no task {task_id!r} in this workspace", result)
            return
        drops: list[tuple[Path, MessageDrop]] = []
        for path in paths:
            data = self._read(path)
            if data is None:
                continue
            try:
                drops.append((path, parse_message_drop(path.name, data)))
            except DropRejected as e:
                self._settle_or_reject(path, e.message, result)
        if not drops:
            return
        inbox = self.store.inbox(task_id)
        accepted = inbox.accept([d for _, d in drops])  # one write, one fdatasync
        self.accepted += len(accepted)
        self.store.events.emit_all(
            [event(EventType.MESSAGE, task_id, id=d.id, status="accepted") for d in accepted]
        )
        if len(accepted) < len(drops):
            duplicates = len(drops) - len(accepted)
            logger.info("task %s: %d duplicate message(s) dropped", task_id, duplicates)
        if accepted:
            result.touched.add(task_id)
        for path, _ in drops:
            self._first_bad.pop(path, None)
            _unlink(path)

    # -- rejection -------------------------------------------------------------------------------

    def _reject(self, path: Path, reason: str, st: os.stat_result | None) -> None:
        self.rejected += 1
        self._first_bad.pop(path, None)
        rejected = self.workspace.rejected_dir
        rejected.mkdir(parents=True, exist_ok=True)
        root = self.workspace.root
        rel = _shown(str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
        reason = _shown(reason)
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self.rejected}"
        target = rejected / f"{stamp}-{_shown(path.name)[:REJECTED_NAME_KEEP]}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return
        except OSError as e:
            logger.error("cannot move rejected %s aside (%s); deleting it", path, e)
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rename(target)
                else:
                    path.unlink()
        info = {"file": rel, "reason": reason, "ts": time.time(), "moved_to": str(target)}
        try:
            atomic_write(
                target.with_name(target.name + ".error"),
                orjson.dumps(info, option=orjson.OPT_INDENT_2),
            )
        except OSError:
            logger.exception("cannot write the reason for rejected %s", rel)
        logger.warning("rejected %s: %s", rel, reason)
        self.store.events.emit(
            EventType.REJECTED, None, file=rel, reason=reason, moved_to=target.name
        )


def _list(directory: Path) -> list[Path]:
    try:
        return [directory / name for name in os.listdir(directory)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _shown(text: str) -> str:
    """`text` as valid UTF-8 for logs and `.error` files (names may hold undecodable bytes)."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def request_id_of(answer: Path) -> str:
    return validate_request_id(answer.name[: -len(ANSWER_SUFFIX)])
