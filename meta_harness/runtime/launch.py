"""How a task's profile becomes an agent command line, environment and MCP list.

Placeholders in commands and env values: `{python}` (this interpreter), `{workspace}`,
`{task_dir}`, `{task_id}`. The environment is explicit: the agent's passthrough names
from the supervisor's env, `env_from` names (API keys: passed by name, never written by
us), then the agent's and the profile's `env`, then meta-harness markers (the boot
sweep finds leftover processes by `META_HARNESS_WORKSPACE`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from meta_harness.agent.spec import LaunchSpec
from meta_harness.base.config import AgentDef, Profile
from meta_harness.base.layout import TaskPaths, Workspace
from meta_harness.domain.tasks import TaskRecord

WORKSPACE_MARKER = "META_HARNESS_WORKSPACE"
TASK_MARKER = "META_HARNESS_TASK"


def expand(value: str, workspace: Workspace, paths: TaskPaths) -> str:
    return (
        value.replace("{python}", sys.executable)
        .replace("{workspace}", str(workspace.root))
        .replace("{task_dir}", str(paths.dir))
        .replace("{task_id}", paths.id)
    )


def agent_env(
    agent: AgentDef,
    profile: Profile,
    workspace: Workspace,
    paths: TaskPaths,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    for name in (*agent.env_passthrough, *agent.env_from):
        if name in environ:
            env[name] = environ[name]
    for source in (agent.env, profile.env):
        for key, value in source.items():
            env[key] = expand(value, workspace, paths)
    env[WORKSPACE_MARKER] = str(workspace.root)
    env[TASK_MARKER] = paths.id
    return env


def launch_spec(
    agent: AgentDef,
    profile: Profile,
    workspace: Workspace,
    record: TaskRecord,
    epoch: int,
) -> LaunchSpec:
    paths = workspace.task(record.id)
    cwd = Path(record.cwd or str(workspace.root))
    roots = [cwd, *(Path(expand(r, workspace, paths)).expanduser() for r in profile.fs_roots)]
    return LaunchSpec(
        argv=[expand(a, workspace, paths) for a in agent.command],
        env=agent_env(agent, profile, workspace, paths),
        cwd=cwd,
        stderr_path=paths.stderr_log,
        transcript_path=paths.transcript,
        epoch=epoch,
        roots=roots,
    )
