"""Prompt headers, what a load replay shows, and the conversation a transcript holds."""

from __future__ import annotations

from typing import Any

from meta_harness.domain.drops import header_line, header_marker
from meta_harness.domain.inbox import Message
from meta_harness.domain.replay import (
    CONTEXT_TAIL_CHARS,
    conversation,
    replayed_answer,
    transcript_context,
    user_texts,
    with_header,
)


def _message(content: list[dict[str, Any]]) -> Message:
    return Message(id="m1", sender="user", content=content, ts=0.0)


def _chunk(kind: str, text: str) -> dict[str, Any]:
    """One replayed `session/update` params object."""
    return {"update": {"sessionUpdate": kind, "content": {"type": "text", "text": text}}}


def _user(text: str) -> dict[str, Any]:
    return _chunk("user_message_chunk", text)


def _agent(text: str) -> dict[str, Any]:
    return _chunk("agent_message_chunk", text)


def _prompt(*texts: str) -> dict[str, Any]:
    blocks = [{"type": "text", "text": t} for t in texts]
    frame = {"jsonrpc": "2.0", "id": 3, "method": "session/prompt", "params": {"prompt": blocks}}
    return {"epoch": 1, "dir": "out", "frame": frame}


def _update(params: dict[str, Any], *, load: bool = False) -> dict[str, Any]:
    record = {"epoch": 1, "dir": "in", "frame": {"method": "session/update", "params": params}}
    if load:
        record["load"] = True
    return record


def test_the_header_opens_the_first_text_block_without_touching_the_message() -> None:
    message = _message([{"type": "text", "text": "hello"}, {"type": "text", "text": "more"}])
    blocks = with_header(message)
    assert blocks[0]["text"] == f"{header_line('m1', 'user')}\nhello"
    assert blocks[1] == {"type": "text", "text": "more"}
    assert message.content[0]["text"] == "hello"


def test_a_prompt_that_opens_with_another_block_gets_the_header_as_its_own_block() -> None:
    image = {"type": "image", "data": "AAAA", "mimeType": "image/png"}
    assert with_header(_message([image])) == [
        {"type": "text", "text": header_line("m1", "user")},
        image,
    ]
    assert with_header(_message([])) == [{"type": "text", "text": header_line("m1", "user")}]


def test_user_texts_are_the_replayed_user_chunks_only() -> None:
    replay = [_user("[meta-harness message id=m1 from=user]\nhi"), _agent("hello"), _user("x")]
    replay.append({"update": {"sessionUpdate": "tool_call", "toolCallId": "c1"}})
    assert user_texts(replay) == ["[meta-harness message id=m1 from=user]\nhi", "x"]


def test_the_replayed_answer_is_the_agent_text_after_the_prompt_until_the_next_one() -> None:
    replay = [
        _user(header_line("m0", "user") + "\nfirst"),
        _agent("not this"),
        _user("  " + header_line("m1", "user") + "\nsecond"),
        _agent("the "),
        _user("instructions sent with the prompt"),
        _agent("answer"),
        _user(header_line("m2", "user") + "\nthird"),
        _agent("not this either"),
    ]
    assert replayed_answer(replay, header_marker("m1")) == "the answer"
    assert replayed_answer(replay, header_marker("m9")) == ""


def test_a_prompt_replayed_twice_yields_the_answer_after_its_last_copy() -> None:
    marker = header_marker("m1")
    replay = [_user(marker + "from=user]"), _agent("old"), _user(marker + "from=user]")]
    replay.append(_agent("new"))
    assert replayed_answer(replay, marker) == "new"


def test_the_conversation_joins_each_sides_chunks_and_skips_load_replays() -> None:
    records = [
        _prompt("[header]", "question"),
        _update(_user("replayed user text"), load=True),
        _update(_agent("replayed answer"), load=True),
        _update(_agent("An ")),
        _update(_agent("answer.")),
        _update({"update": {"sessionUpdate": "tool_call", "toolCallId": "c1"}}),
        {"epoch": 1, "dir": "note", "note": "crash"},
        _prompt("next"),
        _prompt("and more"),
    ]
    assert conversation(records) == [
        ("user", "[header]\nquestion"),
        ("agent", "An answer."),
        ("user", "next\nand more"),
    ]


def test_the_context_for_a_fresh_session_is_the_tail_of_the_conversation() -> None:
    assert transcript_context([]) == ""
    context = transcript_context([_prompt("hi"), _update(_agent(" hello "))])
    assert context.startswith("The previous session of this task could not be restored.")
    assert context.endswith("user: hi\n\nagent: hello")
    long = transcript_context([_prompt("x" * (CONTEXT_TAIL_CHARS + 500)), _update(_agent("end"))])
    body = long.split("transcript:\n\n", 1)[1]
    assert len(body) == CONTEXT_TAIL_CHARS and body.endswith("agent: end")
