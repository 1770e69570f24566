"""On SIGINT/SIGTERM the agents stop before the services do (runtime/supervisor.py).

Agents close their MCP sessions as they exit: an MCP server stopped first made
claude-agent-acp hang on stdin EOF until SIGTERM. So services (the MCP server, the web
surface) see `stop_event` only once every runner has swapped its session out and every
agent process has exited. The supervisor runs in-process here, with the demo agent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest
import watchfiles

from meta_harness.base.config import load_config
from meta_harness.base.layout import Workspace
from meta_harness.runtime.supervisor import Supervisor
from tests.support.procs import acks, agent_pids, drop_task

pytestmark = pytest.mark.anyio

WAIT = 30.0  # one demo-agent task from drop to ack, on a loaded box


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def _wait_ack(ws: Path, task_id: str, message_id: str) -> None:
    async with asyncio.timeout(WAIT):
        if message_id in acks(ws, task_id):
            return
        async for _ in watchfiles.awatch(ws, rust_timeout=250, yield_on_timeout=True):
            if message_id in acks(ws, task_id):
                return


async def test_services_see_the_stop_only_after_every_agent_has_exited(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "inbox").mkdir(parents=True)
    (root / "meta-harness.toml").write_text("")
    workspace = Workspace.at(root)
    workspace.ensure_dirs()
    config = load_config(workspace, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    seen: dict[str, object] = {}

    async def service(supervisor: Supervisor) -> None:
        await supervisor.stop_event.wait()
        seen["runners"] = sorted(supervisor.runners)
        seen["alive"] = [pid for pid in agent_pids(root, "t1") if _alive(pid)]

    supervisor = Supervisor(workspace, config, services=[service])
    ready = asyncio.Event()
    serving = asyncio.ensure_future(supervisor.serve(ready))
    try:
        async with asyncio.timeout(WAIT):
            await ready.wait()
        drop_task(root, "t1", "hello")
        await _wait_ack(root, "t1", "prompt-t1")
        assert [pid for pid in agent_pids(root, "t1") if _alive(pid)], "the agent is not live"
        supervisor.stop_requested.set()  # what SIGTERM does
        async with asyncio.timeout(WAIT):
            await serving
    finally:
        supervisor.stop_event.set()
        if not serving.done():
            serving.cancel()
    assert seen == {"runners": [], "alive": []}
