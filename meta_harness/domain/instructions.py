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
_BLOCK_SCALARS = frozenset({">", "|", ">-", "|-", ">+", "|+"})  # YAML: the value follows


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    path: Path  # the SKILL.md


def parse_skill(skill_md: Path, text: str) -> Skill:
    """Name and description from a SKILL.md's `---` front matter (folder name as fallback).

    Only the top-level `name:` and `description:` keys are read; a value may go on over
    indented lines (YAML's folded `>` and literal `|` included), which are joined with
    spaces. Without a closing `---` there is no front matter.
    """
    fields = _front_matter(text.removeprefix("\ufeff").splitlines())
    name = fields.get("name") or skill_md.parent.name
    return Skill(name, fields.get("description", ""), skill_md)


def _front_matter(lines: list[str]) -> dict[str, str]:
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        return {}
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[1:end]:
        if line[:1].isspace():  # goes on with the key above (or belongs to one not read)
            if current is not None:
                current.append(line.strip())
            continue
        key, sep, value = line.partition(":")
        current = None
        if sep and key.strip() in ("name", "description"):
            value = value.strip()
            current = fields[key.strip()] = [] if value in _BLOCK_SCALARS else [value]
    return {k: " ".join(p for p in v if p).strip().strip("\"'") for k, v in fields.items()}


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
