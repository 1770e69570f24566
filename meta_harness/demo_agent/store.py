"""Session persistence under `<state>/sessions/`: the atomic meta file and the fsynced JSONL logs.

Owns the file formats (`<sid>.meta.json`, the `<sid>.jsonl` updates, `<sid>.received.jsonl`),
cutting a torn last line before appending and skipping torn lines on replay. Paths use os.path
on purpose: pathlib alone costs ~6 ms of the startup budget.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

from .protocol import Json, dumps

logger = logging.getLogger(__name__)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class AppendLog:
    """An append-only JSONL file; each record is written whole and fsynced before returning."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: Json) -> None:
        data = memoryview(dumps(record) + b"\n")
        with self._lock:
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)

    def sync(self) -> None:
        with self._lock:
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


class SessionStore:
    """The files of all sessions under `<state>/sessions/`."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "sessions")

    def meta_path(self, session_id: str) -> str:
        return os.path.join(self.dir, f"{session_id}.meta.json")

    def log_path(self, session_id: str) -> str:
        return os.path.join(self.dir, f"{session_id}.jsonl")

    def received_path(self, session_id: str) -> str:
        return os.path.join(self.dir, f"{session_id}.received.jsonl")

    def exists(self, session_id: str) -> bool:
        return os.path.isfile(self.meta_path(session_id)) and os.path.isfile(
            self.log_path(session_id)
        )

    def create(self, session_id: str, cwd: str, mcp_servers: list[Json]) -> None:
        os.makedirs(self.dir, exist_ok=True)
        for path in (self.log_path(session_id), self.received_path(session_id)):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        stamp = now_iso()
        self.write_meta(
            session_id,
            {
                "sessionId": session_id,
                "cwd": cwd,
                "mcpServers": mcp_servers,
                "createdAt": stamp,
                "updatedAt": stamp,
            },
        )

    def read_meta(self, session_id: str) -> Json:
        try:
            meta = json.loads(read_bytes(self.meta_path(session_id)))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def write_meta(self, session_id: str, meta: Json) -> None:
        """Atomic: temp file, fsync, rename, fsync the directory."""
        path = self.meta_path(session_id)
        tmp = os.path.join(self.dir, f".{session_id}.meta.json.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, dumps(meta))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_updates(self, session_id: str) -> list[Json]:
        """Every stored update in order; a torn or corrupt line is skipped and logged."""
        updates: list[Json] = []
        for number, line in enumerate(read_bytes(self.log_path(session_id)).split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                update = json.loads(line)
            except ValueError:
                logger.warning("skipping torn line %d of %s.jsonl", number, session_id)
                continue
            if isinstance(update, dict):
                updates.append(update)
        return updates

    def open_log(self, session_id: str) -> AppendLog:
        """Open the update log for appending (a torn last line is cut first)."""
        return open_clean(self.log_path(session_id))

    def open_received(self, session_id: str) -> AppendLog:
        return open_clean(self.received_path(session_id))

    def list_ids(self) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        suffix = ".meta.json"
        return sorted(
            name[: -len(suffix)]
            for name in os.listdir(self.dir)
            if name.endswith(suffix) and not name.startswith(".")
        )


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def open_clean(path: str) -> AppendLog:
    """Open a JSONL file for appending, cutting a torn last line so new records start clean."""
    if os.path.isfile(path):
        data = read_bytes(path)
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            logger.warning("cutting a torn tail of %d bytes from %s", len(data) - keep, path)
            os.truncate(path, keep)
    return AppendLog(path)
