"""Per-task secrets: the identity a task's agent presents to the built-in MCP server.

A task's token is `<task-id>.<HMAC-SHA256(workspace secret, task-id)>`; nothing per
task is stored. The workspace secret lives in `.meta-harness/secret` (mode 0600),
made on first use. `task_of(token)` verifies in constant time and returns the task id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from meta_harness.base.errors import InvalidId
from meta_harness.base.layout import Workspace, validate_task_id

SECRET_FILE = "secret"
TOKEN_HEADER = "X-Task-Token"  # how a task's agent presents its token to the MCP server


def workspace_secret(workspace: Workspace) -> bytes:
    path = workspace.state_dir / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()  # another process made it first
    with os.fdopen(fd, "wb") as f:
        f.write(value)
        f.flush()
        os.fsync(f.fileno())
    return value


def task_token(secret: bytes, task_id: str) -> str:
    mac = hmac.new(secret, task_id.encode(), hashlib.sha256).hexdigest()
    return f"{task_id}.{mac}"


def task_of(secret: bytes, token: str) -> str | None:
    """The task id a token speaks for, or None if it is not genuine."""
    task_id, sep, _ = token.rpartition(".")
    if not sep:
        return None
    try:
        validate_task_id(task_id)
    except InvalidId:
        return None
    # compare bytes: compare_digest raises TypeError on a str with non-ASCII characters
    expected = task_token(secret, task_id).encode()
    return task_id if hmac.compare_digest(expected, token.encode("utf-8", "replace")) else None
