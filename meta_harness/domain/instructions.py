"""How instructions and skills reach an agent, given that ACP has no system prompt.

The first prompt of every *new* session (not a loaded or resumed one: the agent already
has them in its history) carries, after the message itself, one block per instruction
file of the profile (AGENTS.md by default) and one listing the profile's skills by name,
description and path to their SKILL.md, so the agent reads a skill only when it needs it.
Blocks are embedded `resource` blocks when the agent advertises `embeddedContext`, else
plain text. Pure: the runtime reads the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_INSTRUCTION_CHARS = 200_000  # per file; longer files are cut with a note


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    path: Path  # the SKILL.md


def parse_skill(skill_md: Path, text: str) -> Skill:
    """Name and description from a SKILL.md's `---` front matter (folder name as fallback)."""
    name, description = skill_md.parent.name, ""
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        for line in lines[1:]:
            if line.strip() == "---":
                break
            key, sep, value = line.partition(":")
            if not sep:
                continue
            if key.strip() == "name" and value.strip():
                name = value.strip().strip("\"'")
            elif key.strip() == "description":
                description = value.strip().strip("\"'")
    return Skill(name, description, skill_md)


def instruction_blocks(
    files: list[tuple[Path, str]], skills: list[Skill], *, embedded: bool
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for path, text in files:
        if len(text) > MAX_INSTRUCTION_CHARS:
            text = text[:MAX_INSTRUCTION_CHARS] + "\n[… cut by meta-harness: file too long]"
        if embedded:
            blocks.append(
                {
                    "type": "resource",
                    "resource": {"uri": path.as_uri(), "mimeType": "text/markdown", "text": text},
                }
            )
        else:
            blocks.append({"type": "text", "text": f"[instructions from {path.name}]\n{text}"})
    if skills:
        listing = "\n".join(
            f"- {s.name}: {s.description or '(no description)'} — read {s.path} when it applies"
            for s in skills
        )
        blocks.append({"type": "text", "text": f"[skills available to you]\n{listing}"})
    return blocks
