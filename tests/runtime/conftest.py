"""Fixtures of the real-process runtime tests: a fresh workspace and a process tracker.

`procs` starts supervisors for the workspace; at teardown it stops every one, kills
every process group the test started, and fails the test if any process carrying the
workspace's `META_HARNESS_WORKSPACE` marker outlived its supervisor (an orphan).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import Procs


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "meta-harness.toml").write_text("")
    (ws / "inbox").mkdir()
    return ws.resolve()


@pytest.fixture
def procs(workspace: Path, tmp_path: Path) -> Iterator[Procs]:
    tracker = Procs(workspace, tmp_path)
    try:
        yield tracker
    finally:
        orphans = tracker.cleanup()
    assert not orphans, f"processes outlived their supervisor: {orphans}"
