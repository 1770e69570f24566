"""The preamble of a new session's first prompt: the profile's instructions and skills.

Reads the instruction files and each skill's SKILL.md (docs/design.md §Instructions) and
builds the prompt blocks with `domain.instructions`; an absent instruction file is not
sent, a skill without its SKILL.md is a warning event. The runner decides when it is due.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from meta_harness.base.config import Profile
from meta_harness.domain.events import EventType
from meta_harness.domain.instructions import Skill, instruction_blocks, parse_skill
from meta_harness.runtime.runner_context import RunnerContext

if TYPE_CHECKING:
    from meta_harness.agent.session import AgentSession


def preamble(
    ctx: RunnerContext, task_id: str, profile: Profile, session: AgentSession
) -> list[dict[str, Any]]:
    """The profile's instruction files and skill list (docs/design.md §Instructions)."""
    root = ctx.workspace.root
    files: list[tuple[Path, str]] = []
    for name in profile.instructions:
        path = (root / name).resolve()
        try:
            files.append((path, path.read_text("utf-8", errors="replace")))
        except OSError:
            continue  # an instruction file that is absent is simply not sent
    skills: list[Skill] = []
    for name in profile.skills:
        skill_md = (ctx.workspace.skills_dir / name / "SKILL.md").resolve()
        try:
            skills.append(parse_skill(skill_md, skill_md.read_text("utf-8", errors="replace")))
        except OSError:
            ctx.store.events.emit(
                EventType.WARNING, task_id, message=f"skill {name!r} has no {skill_md}"
            )
    embedded = bool((session.caps.raw.get("promptCapabilities") or {}).get("embeddedContext"))
    blocks = instruction_blocks(files, skills, embedded=embedded)
    if blocks:
        session.transcript.note(
            "instructions", files=[str(p) for p, _ in files], skills=[s.name for s in skills]
        )
    return blocks
