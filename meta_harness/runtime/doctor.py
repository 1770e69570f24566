"""`agents doctor`: is each configured agent installed, does it start and answer `initialize`?

Each agent is started exactly as a task would start it (same command expansion, explicit
env, own process group, stderr to a file) in a scratch directory, asked to `initialize`,
and ended with the shutdown ladder. The result lists its capabilities (loadSession,
resume, close, MCP transports) so a user knows whether it can be swapped out. Each
agent's stderr goes to `<name>.stderr.log` in a log directory that is kept when a
check fails (the error names the file) and removed when every check passed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meta_harness.agent.session import AgentSession
from meta_harness.agent.spec import LaunchSpec
from meta_harness.base.config import AgentDef, Config, Profile
from meta_harness.base.errors import AgentError
from meta_harness.base.layout import TaskPaths, Workspace
from meta_harness.runtime.launch import agent_env, expand

DOCTOR_TIMEOUT = 90.0  # first `npx -y` start may download the package


@dataclass
class DoctorResult:
    agent: str
    ok: bool
    command: list[str]
    found: str | None = None
    seconds: float | None = None
    agent_info: dict[str, Any] = field(default_factory=dict)
    capabilities: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stderr_tail: str = ""
    stderr_log: str | None = None  # the agent's stderr file (kept if any check failed)


class _NoHooks:
    def on_update(self, session_id: str, update: dict[str, Any]) -> None:
        return None

    async def on_permission(
        self, session_id: str, tool_call: dict[str, Any], options: list[dict[str, Any]]
    ) -> str | None:
        return None


async def check_agent(
    name: str, agent: AgentDef, workspace: Workspace, log_dir: Path
) -> DoctorResult:
    with tempfile.TemporaryDirectory(prefix="mh-doctor-") as scratch:
        fake = TaskPaths(Path(scratch) / "doctor")  # stands in for a task directory
        fake.dir.mkdir(parents=True)
        argv = [expand(a, workspace, fake) for a in agent.command]
        result = DoctorResult(agent=name, ok=False, command=argv, found=shutil.which(argv[0]))
        if result.found is None:
            result.error = f"{argv[0]!r} is not installed or not on PATH"
            return result
        profile = Profile(name="doctor", agent=name)
        spec = LaunchSpec(
            argv=argv,
            env=agent_env(agent, profile, workspace, fake),
            cwd=Path(scratch),
            stderr_path=log_dir / f"{name}.stderr.log",
            transcript_path=fake.dir / "transcript.jsonl",
            epoch=1,
        )
        result.stderr_log = str(spec.stderr_path)
        started = time.monotonic()
        try:
            session = await asyncio.wait_for(AgentSession.open(spec, _NoHooks()), DOCTOR_TIMEOUT)
        except (AgentError, TimeoutError) as e:
            result.error = str(e) or "timed out"
        else:
            result.seconds = time.monotonic() - started
            result.ok = True
            result.agent_info = session.agent_info
            result.capabilities = session.caps.raw
            await session.aclose(reason="doctor")
        try:
            result.stderr_tail = spec.stderr_path.read_text("utf-8", errors="replace")[-2000:]
        except OSError:
            pass
        return result


async def check_agents(
    config: Config, workspace: Workspace, names: list[str]
) -> list[DoctorResult]:
    agents = [(name, config.agent(name)) for name in names]  # an unknown name fails first
    log_dir = Path(tempfile.mkdtemp(prefix="mh-doctor-logs-"))
    results = [await check_agent(name, agent, workspace, log_dir) for name, agent in agents]
    if all(r.ok for r in results):
        shutil.rmtree(log_dir, ignore_errors=True)
        for r in results:
            r.stderr_log = None
    return results
