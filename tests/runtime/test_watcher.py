"""The drop watcher: files that raised no event of their own are still reported."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import cast

import pytest

from meta_harness.base.layout import Workspace
from meta_harness.runtime.watcher import watch_drops
from tests.support.procs import WAIT


@pytest.mark.anyio
async def test_files_inside_a_task_directory_that_appears_whole_are_reported(
    tmp_path: Path,
) -> None:
    (tmp_path / "meta-harness.toml").touch()
    ws = Workspace.at(tmp_path)
    ws.ensure_dirs()
    staged = tmp_path / "staging" / "t1"
    (staged / "inbox").mkdir(parents=True)
    (staged / "inbox" / "m1.json").write_text('{"text": "hi"}')
    (staged / "notes.txt").write_text("not a drop")
    stop = asyncio.Event()
    batches = cast(AsyncGenerator[set[Path], None], watch_drops(ws, stop))
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # one step: awatch has registered its watches

    os.rename(staged, ws.tasks_dir / "t1")  # one event, for the directory only

    try:
        batch = await asyncio.wait_for(first, WAIT)
    finally:
        stop.set()
        await batches.aclose()
    assert batch == {ws.tasks_dir / "t1" / "inbox" / "m1.json"}
