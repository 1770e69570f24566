"""Pure tests of `domain.instructions`: SKILL.md front matter and a first prompt's blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta_harness.domain.instructions import (
    MAX_INSTRUCTION_CHARS,
    Skill,
    instruction_blocks,
    parse_skill,
)

SKILL_MD = Path("/ws/skills/review/SKILL.md")
AGENTS_MD = Path("/ws/AGENTS.md")


# -- front matter -----------------------------------------------------------------------------


def test_name_and_description_come_from_the_front_matter() -> None:
    text = "---\nname: code-review\ndescription: Review a diff for bugs\n---\n# Body\n"
    assert parse_skill(SKILL_MD, text) == Skill("code-review", "Review a diff for bugs", SKILL_MD)


def test_quoted_values_lose_their_quotes_and_keep_inner_colons() -> None:
    text = "---\nname: 'review'\ndescription: \"Use when: a diff is ready\"\n---\n"
    skill = parse_skill(SKILL_MD, text)
    assert (skill.name, skill.description) == ("review", "Use when: a diff is ready")


def test_without_front_matter_the_folder_names_the_skill() -> None:
    skill = parse_skill(SKILL_MD, "# Review\n\nname: not front matter\n")
    assert (skill.name, skill.description) == ("review", "")


def test_an_empty_name_falls_back_to_the_folder_name() -> None:
    skill = parse_skill(SKILL_MD, "---\nname:\ndescription: d\n---\n")
    assert (skill.name, skill.description) == ("review", "d")


def test_front_matter_without_a_closing_line_is_not_front_matter() -> None:
    text = "---\n\nSome prose.\ndescription: this is the body, not metadata\n"
    skill = parse_skill(SKILL_MD, text)
    assert (skill.name, skill.description) == ("review", "")


def test_keys_after_the_front_matter_are_ignored() -> None:
    text = "---\nname: review\n---\ndescription: in the body\n"
    assert parse_skill(SKILL_MD, text).description == ""


def test_other_keys_comments_and_nested_keys_are_ignored() -> None:
    text = (
        "---\n# a comment\nname: review\ndescription: top\nlicense: MIT\n"
        "metadata:\n  name: nested\n  description: nested\n---\n"
    )
    skill = parse_skill(SKILL_MD, text)
    assert (skill.name, skill.description) == ("review", "top")


@pytest.mark.parametrize("indicator", [">", "|", ">-", "|+"])
def test_a_description_over_several_lines_is_joined(indicator: str) -> None:
    text = f"---\ndescription: {indicator}\n  Review a diff\n  for bugs.\nname: r\n---\n"
    skill = parse_skill(SKILL_MD, text)
    assert (skill.name, skill.description) == ("r", "Review a diff for bugs.")


def test_a_plain_value_may_go_on_over_indented_lines() -> None:
    text = "---\ndescription: Review a diff\n  for bugs.\n---\n"
    assert parse_skill(SKILL_MD, text).description == "Review a diff for bugs."


def test_a_byte_order_mark_and_crlf_line_ends_do_not_hide_the_front_matter() -> None:
    text = "\ufeff---\r\nname: review\r\ndescription: d\r\n---\r\nbody\r\n"
    skill = parse_skill(SKILL_MD, text)
    assert (skill.name, skill.description) == ("review", "d")


# -- blocks -----------------------------------------------------------------------------------


def test_an_agent_with_embedded_context_gets_each_file_as_a_resource_block() -> None:
    blocks = instruction_blocks([(AGENTS_MD, "Be brief.\n")], [], embedded=True)
    assert blocks == [
        {
            "type": "resource",
            "resource": {
                "uri": "file:///ws/AGENTS.md",
                "mimeType": "text/markdown",
                "text": "Be brief.\n",
            },
        }
    ]


def test_an_agent_without_embedded_context_gets_each_file_as_text_naming_it() -> None:
    blocks = instruction_blocks([(AGENTS_MD, "Be brief.\n")], [], embedded=False)
    assert blocks == [{"type": "text", "text": "[instructions from AGENTS.md]\nBe brief.\n"}]


def test_skills_are_listed_in_one_text_block_after_the_files() -> None:
    skills = [Skill("review", "Review a diff", SKILL_MD), Skill("plain", "", Path("/s/SKILL.md"))]
    for embedded in (True, False):
        blocks = instruction_blocks([(AGENTS_MD, "x")], skills, embedded=embedded)
        assert len(blocks) == 2
        assert blocks[1] == {
            "type": "text",
            "text": "[skills available to you]\n"
            f"- review: Review a diff — read {SKILL_MD} when it applies\n"
            "- plain: (no description) — read /s/SKILL.md when it applies",
        }


def test_nothing_to_send_is_no_blocks() -> None:
    assert instruction_blocks([], [], embedded=True) == []


def test_several_files_keep_their_order() -> None:
    files = [(AGENTS_MD, "a"), (Path("/ws/CONVENTIONS.md"), "b")]
    blocks = instruction_blocks(files, [], embedded=True)
    assert [b["resource"]["text"] for b in blocks] == ["a", "b"]


@pytest.mark.parametrize("embedded", [True, False])
def test_a_long_file_is_cut_with_a_note(embedded: bool) -> None:
    text = "x" * (MAX_INSTRUCTION_CHARS + 10)
    [block] = instruction_blocks([(AGENTS_MD, text)], [], embedded=embedded)
    sent = block["resource"]["text"] if embedded else block["text"]
    assert "x" * MAX_INSTRUCTION_CHARS in sent
    assert "x" * (MAX_INSTRUCTION_CHARS + 1) not in sent
    assert sent.endswith("\n[… cut by meta-harness: file too long]")


def test_a_file_of_exactly_the_limit_is_sent_whole() -> None:
    text = "x" * MAX_INSTRUCTION_CHARS
    [block] = instruction_blocks([(AGENTS_MD, text)], [], embedded=True)
    assert block["resource"]["text"] == text
