"""Where every file of a workspace lives, and which names are safe to become paths.

This module is the map of the workspace tree (docs/design.md §Workspace tree). Nothing
else builds workspace paths by hand. Ids that become path parts are validated here.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from meta_harness.base.errors import InvalidId, WorkspaceError

CONFIG_FILE = "meta-harness.toml"
STATE_DIR = ".meta-harness"

_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,199}$")
_REQUEST_ID = _TASK_ID
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def validate_task_id(value: str) -> str:
    """Return `value` if it is a safe task id, else raise InvalidId saying why."""
    if not isinstance(value, str) or not _TASK_ID.fullmatch(value) or ".." in value:
        raise InvalidId(
            f"invalid task id {value!r}: use 1-64 letters, digits, '_', '-', '.', "
            "starting with a letter or digit, no '..'"
        )
    return value


def validate_message_id(value: str) -> str:
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise InvalidId(
            f"invalid message id {value!r}: use 1-200 letters, digits or '_.:@+=-', "
            "starting with a letter or digit"
        )
    return value


def validate_request_id(value: str) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value) or ".." in value:
        raise InvalidId(f"invalid permission request id {value!r}")
    return value


def _base32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ID_ALPHABET[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """A short, time-sortable, unique id such as `t-0k3f9x2ab7q4m2x9`: 40 random bits
    after the milliseconds, so ids made in the same millisecond do not collide."""
    ms = int(time.time() * 1000)
    return f"{prefix}-{_base32(ms, 9)}{_base32(secrets.randbits(40), 8)}"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace tree."""

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> Workspace:
        return cls(Path(path).expanduser().resolve())

    @classmethod
    def find(cls, start: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace at `start` or its nearest ancestor holding a config or state dir."""
        here = Path(start or os.getcwd()).expanduser().resolve()
        for candidate in (here, *here.parents):
            if (candidate / CONFIG_FILE).is_file() or (candidate / STATE_DIR).is_dir():
                return cls(candidate)
        raise WorkspaceError(
            f"{here} is not inside a meta-harness workspace; "
            "run `meta-harness init DIR` or pass --workspace DIR"
        )

    def require(self) -> Workspace:
        if not self.root.is_dir():
            raise WorkspaceError(f"workspace {self.root} does not exist; run `meta-harness init`")
        return self

    # top level
    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def agents_md(self) -> Path:
        return self.root / "AGENTS.md"

    @property
    def skills_dir(self) -> Path:
        return self.root / "skills"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    # supervisor state
    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "supervisor.lock"

    @property
    def supervisor_file(self) -> Path:
        return self.state_dir / "supervisor.json"

    @property
    def events_file(self) -> Path:
        return self.state_dir / "events.jsonl"

    @property
    def rejected_dir(self) -> Path:
        return self.state_dir / "rejected"

    @property
    def http_token_file(self) -> Path:
        return self.state_dir / "http-token"

    @property
    def supervisor_log(self) -> Path:
        return self.state_dir / "supervisor.log"

    # per task
    def task(self, task_id: str) -> TaskPaths:
        return TaskPaths(self.tasks_dir / validate_task_id(task_id))

    def task_ids(self) -> list[str]:
        """Ids of every task directory that holds a task record, sorted (ids sort by time)."""
        try:
            names = os.listdir(self.tasks_dir)
        except FileNotFoundError:
            return []
        return sorted(
            n
            for n in names
            if _TASK_ID.fullmatch(n) and (self.tasks_dir / n / "task.json").is_file()
        )

    def ensure_dirs(self) -> None:
        for d in (self.inbox, self.tasks_dir, self.state_dir, self.rejected_dir):
            d.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class TaskPaths:
    """Paths of one task directory `tasks/<id>/`."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def record(self) -> Path:
        return self.dir / "task.json"

    @property
    def inbox(self) -> Path:
        return self.dir / "inbox"

    @property
    def wal(self) -> Path:
        return self.dir / "inbox.wal.jsonl"

    @property
    def transcript(self) -> Path:
        return self.dir / "transcript.jsonl"

    @property
    def mcp_config(self) -> Path:
        return self.dir / "mcp.json"

    @property
    def permissions(self) -> Path:
        return self.dir / "permissions"

    @property
    def stderr_log(self) -> Path:
        return self.dir / "agent.stderr.log"

    @property
    def agent_home(self) -> Path:
        """Scratch state the profile may hand the agent (e.g. the demo agent's sessions)."""
        return self.dir / "agent"

    @property
    def profile_snapshot(self) -> Path:
        return self.dir / "profile.json"
