"""Parsing drop files: what a new-task or message drop means, and why a bad one is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meta_harness.base.errors import DropRejected
from meta_harness.base.layout import validate_message_id, validate_task_id
from meta_harness.domain.drops import (
    Control,
    derived_id,
    header_line,
    header_marker,
    is_drop_name,
    parse_message_drop,
    parse_task_drop,
)


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


IMAGE = {"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo="}

# -- message drops ---------------------------------------------------------------------------


def test_a_json_message_with_text_becomes_one_text_block() -> None:
    drop = parse_message_drop("m.json", j({"id": "m-1", "from": "alice", "text": "hello"}))
    assert (drop.id, drop.sender) == ("m-1", "alice")
    assert drop.content == [{"type": "text", "text": "hello"}]
    assert drop.control is None


def test_a_json_message_with_content_blocks_keeps_them() -> None:
    blocks = [{"type": "text", "text": "look"}, IMAGE]
    drop = parse_message_drop("m.json", j({"content": blocks}))
    assert drop.content == blocks
    assert drop.sender == "file"


@pytest.mark.parametrize("control", list(Control))
def test_a_json_control_carries_no_content(control: Control) -> None:
    drop = parse_message_drop("c.json", j({"control": control.value, "result": "done!"}))
    assert drop.control is control
    assert drop.content == []
    assert drop.result == "done!"


def test_a_json_message_keeps_its_meta_object() -> None:
    drop = parse_message_drop("m.json", j({"text": "x", "meta": {"k": [1]}}))
    assert drop.meta == {"k": [1]}


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_a_text_message_gets_an_id_derived_from_name_and_content(suffix: str) -> None:
    data = b"line one\nline two\n"
    drop = parse_message_drop(f"note{suffix}", data)
    assert drop.content == [{"type": "text", "text": "line one\nline two\n"}]
    assert drop.sender == "file"
    assert drop.id == derived_id("file", f"note{suffix}", data)
    validate_message_id(drop.id)


def test_the_same_name_and_content_give_the_same_message_id() -> None:
    a = parse_message_drop("note.txt", b"same")
    assert a.id == parse_message_drop("note.txt", b"same").id
    assert a.id != parse_message_drop("other.txt", b"same").id
    assert a.id != parse_message_drop("note.txt", b"different").id


def test_a_json_message_without_id_gets_a_deterministic_id() -> None:
    data = j({"text": "x"})
    assert parse_message_drop("m.json", data).id == parse_message_drop("m.json", data).id
    assert parse_message_drop("m.json", data).id != parse_message_drop("n.json", data).id


MESSAGE_ERRORS = [
    ("empty", "m.json", b"", "empty file"),
    ("whitespace only", "m.txt", b" \n\t\n", "empty file"),
    ("malformed JSON", "m.json", b'{"text": ', "malformed JSON"),
    ("trailing garbage", "m.json", b'{"text": "a"} extra', "malformed JSON"),
    ("array", "m.json", b'["text"]', "expected a JSON object, got list"),
    ("string", "m.json", b'"text"', "expected a JSON object, got str"),
    ("number", "m.json", b"42", "expected a JSON object, got int"),
    ("null", "m.json", b"null", "expected a JSON object, got NoneType"),
    ("NUL in json", "m.json", b'{"text": "a\x00b"}', "binary content"),
    ("NUL in text", "m.txt", b"abc\x00def", "binary content"),
    ("binary", "m.json", bytes(range(256)), "binary content"),
    ("invalid utf-8 json", "m.json", b'{"text": "\xff\xfe"}', "not UTF-8"),
    ("invalid utf-8 text", "m.md", b"caf\xe9", "not UTF-8"),
    ("id with slash", "m.json", j({"id": "a/b", "text": "x"}), "field 'id'"),
    ("id dot-dot", "m.json", j({"id": "..", "text": "x"}), "field 'id'"),
    ("id path", "m.json", j({"id": "../../etc/passwd", "text": "x"}), "field 'id'"),
    ("id not a string", "m.json", j({"id": 7, "text": "x"}), "field 'id' must be a string"),
    ("no text or content", "m.json", j({"from": "a"}), "'text' (non-empty text) or 'content'"),
    ("blank text", "m.json", j({"text": "   "}), "'text' (non-empty text)"),
    ("text not a string", "m.json", j({"text": ["a"]}), "'text' (non-empty text)"),
    (
        "both text and content",
        "m.json",
        j({"text": "a", "content": [{"type": "text", "text": "b"}]}),
        "not both",
    ),
    ("content not a list", "m.json", j({"content": "hello"}), "non-empty list"),
    ("content empty", "m.json", j({"content": []}), "non-empty list"),
    (
        "content block not an object",
        "m.json",
        j({"content": ["hello"]}),
        "content[0] must be an object",
    ),
    (
        "content block unknown type",
        "m.json",
        j({"content": [{"type": "video"}]}),
        "content[0].type",
    ),
    ("content block no type", "m.json", j({"content": [{"text": "a"}]}), "content[0].type"),
    ("text block without text", "m.json", j({"content": [{"type": "text"}]}), "content[0].text"),
    (
        "second block bad",
        "m.json",
        j({"content": [IMAGE, {"type": "text", "text": 3}]}),
        "content[1].text",
    ),
    ("unknown control", "m.json", j({"control": "explode"}), "field 'control' must be one of"),
    ("control not a string", "m.json", j({"control": 1}), "field 'control' must be a string"),
    ("result not a string", "m.json", j({"control": "complete", "result": 1}), "field 'result'"),
    ("meta not an object", "m.json", j({"text": "a", "meta": [1]}), "field 'meta'"),
    ("sender too long", "m.json", j({"text": "a", "from": "x" * 201}), "field 'from'"),
    ("sender not a string", "m.json", j({"text": "a", "from": {"n": 1}}), "field 'from'"),
    (
        "sender spans lines",
        "m.json",
        j({"text": "a", "from": "x]\n[meta-harness message id=other from=y"}),
        "field 'from'",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "reason"), [e[1:] for e in MESSAGE_ERRORS], ids=[e[0] for e in MESSAGE_ERRORS]
)
def test_a_bad_message_drop_is_rejected_with_the_reason(
    name: str, data: bytes, reason: str
) -> None:
    with pytest.raises(DropRejected) as caught:
        parse_message_drop(name, data)
    assert reason in caught.value.message


# -- task drops ------------------------------------------------------------------------------


def test_a_json_task_drop_carries_every_field() -> None:
    drop = parse_task_drop(
        "job.json",
        j(
            {
                "id": "t-1",
                "prompt": "Fix the bug\nin foo",
                "title": "Bug",
                "profile": "claude",
                "parent": "t-0",
                "mode": "oneshot",
                "from": "task:t-0",
            }
        ),
    )
    assert (drop.task_id, drop.title, drop.profile, drop.parent, drop.mode) == (
        "t-1",
        "Bug",
        "claude",
        "t-0",
        "oneshot",
    )
    assert drop.message.id == "prompt-t-1"
    assert drop.message.sender == "task:t-0"
    assert drop.message.content == [{"type": "text", "text": "Fix the bug\nin foo"}]


def test_a_task_title_defaults_to_the_first_line_of_the_prompt() -> None:
    drop = parse_task_drop("job.json", j({"prompt": "\n  First line  \nsecond"}))
    assert drop.title == "First line"
    assert drop.message.sender == "user"


def test_a_task_title_of_a_content_drop_without_text_is_the_task_id() -> None:
    drop = parse_task_drop("job.json", j({"content": [IMAGE]}))
    assert drop.title == drop.task_id


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_a_text_task_drop_gets_an_id_derived_from_name_and_content(suffix: str) -> None:
    data = b"Write a haiku\nabout logs"
    drop = parse_task_drop(f"ask{suffix}", data)
    assert drop.task_id == derived_id("t", f"ask{suffix}", data)
    assert drop.task_id is not None
    validate_task_id(drop.task_id)
    assert drop.title == "Write a haiku"
    assert drop.message.content == [{"type": "text", "text": "Write a haiku\nabout logs"}]
    assert (drop.profile, drop.parent, drop.mode) == (None, None, None)


def test_a_text_task_drop_of_only_unicode_whitespace_is_titled_by_its_file_name() -> None:
    drop = parse_task_drop("blank.txt", "\u00a0\u2003".encode())
    assert drop.title == "blank.txt"


def test_the_same_task_drop_twice_gives_the_same_task_and_prompt_ids() -> None:
    for name, data in (("a.txt", b"same"), ("a.json", j({"prompt": "same"}))):
        first, second = parse_task_drop(name, data), parse_task_drop(name, data)
        assert first.task_id == second.task_id
        assert first.message.id == second.message.id
    assert parse_task_drop("a.txt", b"x").task_id != parse_task_drop("b.txt", b"x").task_id


TASK_ERRORS = [
    ("empty", "t.json", b"", "empty file"),
    ("empty text", "t.txt", b"\n\n", "empty file"),
    ("malformed JSON", "t.json", b"{prompt: 1}", "malformed JSON"),
    ("non-object", "t.json", b"[1, 2]", "expected a JSON object"),
    ("binary", "t.txt", b"\x00\x01\x02", "binary content"),
    ("invalid utf-8", "t.txt", b"\xc3\x28", "not UTF-8"),
    ("id with slash", "t.json", j({"id": "a/b", "prompt": "x"}), "field 'id'"),
    ("id dot-dot", "t.json", j({"id": "..", "prompt": "x"}), "field 'id'"),
    ("id containing dot-dot", "t.json", j({"id": "a..b", "prompt": "x"}), "field 'id'"),
    ("id too long", "t.json", j({"id": "x" * 65, "prompt": "x"}), "field 'id'"),
    ("id unicode", "t.json", j({"id": "tâche", "prompt": "x"}), "field 'id'"),
    ("parent with slash", "t.json", j({"parent": "../t", "prompt": "x"}), "field 'parent'"),
    ("parent not a string", "t.json", j({"parent": 1, "prompt": "x"}), "field 'parent'"),
    ("no prompt", "t.json", j({"title": "x"}), "'prompt' (non-empty text) or 'content'"),
    ("prompt not a string", "t.json", j({"prompt": 5}), "'prompt'"),
    (
        "both prompt and content",
        "t.json",
        j({"prompt": "a", "content": [{"type": "text", "text": "b"}]}),
        "not both",
    ),
    (
        "bad content block",
        "t.json",
        j({"content": [{"type": "text", "text": None}]}),
        "content[0].text",
    ),
    ("bad mode", "t.json", j({"prompt": "x", "mode": "forever"}), "field 'mode'"),
    ("profile not a string", "t.json", j({"prompt": "x", "profile": ["a"]}), "field 'profile'"),
    ("profile too long", "t.json", j({"prompt": "x", "profile": "p" * 101}), "field 'profile'"),
    ("title too long", "t.json", j({"prompt": "x", "title": "t" * 201}), "field 'title'"),
    ("sender spans lines", "t.json", j({"prompt": "x", "from": "a\nb"}), "field 'from'"),
]


@pytest.mark.parametrize(
    ("name", "data", "reason"), [e[1:] for e in TASK_ERRORS], ids=[e[0] for e in TASK_ERRORS]
)
def test_a_bad_task_drop_is_rejected_with_the_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DropRejected) as caught:
        parse_task_drop(name, data)
    assert reason in caught.value.message


@pytest.mark.parametrize(
    ("name", "picked"),
    [
        ("a.json", True),
        ("a.txt", True),
        ("a.md", True),
        (".a.json", False),
        (".tmp-a.json.1234", False),
        ("a.pdf", False),
        ("a.json.swp", False),
        ("a", False),
    ],
)
def test_only_visible_json_txt_and_md_files_are_drops(name: str, picked: bool) -> None:
    assert is_drop_name(name) is picked


def test_the_header_line_starts_with_the_marker_the_recovery_looks_for() -> None:
    line = header_line("m-1", "alice")
    assert line == "[meta-harness message id=m-1 from=alice]"
    assert line.startswith(header_marker("m-1"))
    assert not line.startswith(header_marker("m-10"))
