"""What the supervisor hands every task runner: the shared services and the callbacks up.

One `RunnerContext` per supervisor: workspace, task store, slot pool, the current config,
stats, and the hooks by which a runner reports a task's end, asks for its MCP servers,
registers agent process groups with the reaper and runs short background steps.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meta_harness.agent.process import StopHabits
from meta_harness.base.config import Config
from meta_harness.base.layout import Workspace
from meta_harness.runtime.pool import Pool
from meta_harness.runtime.stats import Stats
from meta_harness.runtime.store import TaskStore

if TYPE_CHECKING:
    from meta_harness.agent.session import AgentSession


@dataclass
class RunnerContext:
    workspace: Workspace
    store: TaskStore
    pool: Pool
    config: Callable[[], Config]
    on_task_ended: Callable[[str], None]
    mcp_servers: Callable[[str, AgentSession], list[dict[str, Any]]]
    stats: Stats
    on_spawn: Callable[[int], None] | None = None
    # runs a short coroutine in the supervisor's task group (never fire-and-forget)
    background: Callable[[Coroutine[Any, Any, None]], None] = lambda c: c.close()
    stop_habits: StopHabits = field(default_factory=StopHabits)
    on_exit: Callable[[int], None] | None = None
