"""What it takes to start one agent connection: argv, env, cwd, where its files go.

Kept apart from `session` so that the runtime can build launch specs without importing
the ACP SDK (1.7 s): the supervisor reconciles its workspace before that import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meta_harness.agent.process import StopHabits


@dataclass
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stderr_path: Path
    transcript_path: Path
    epoch: int
    roots: list[Path] = field(default_factory=list)
    on_spawn: Callable[[int], None] | None = None  # told the process group id at once
    agent: str = ""  # the agent's config name: what `stop_habits` remembers it by
    stop_habits: StopHabits | None = None
    on_exit: Callable[[int], None] | None = None  # told the group id once the group is ended
