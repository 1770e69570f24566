"""Permission rules and answers: which rule decides a tool call, which option an answer picks."""

from __future__ import annotations

from typing import Any

import pytest

from meta_harness.base.config import Action, PermissionPolicy, PermissionRule
from meta_harness.domain.permissions import (
    Decision,
    choose_option,
    parse_answer,
    request_record,
    rule_for,
    tool_call_facts,
)


def policy(*rules: dict[str, Any], default: Action = Action.ASK) -> PermissionPolicy:
    return PermissionPolicy(default=default, rules=[PermissionRule(**r) for r in rules])


def call(kind: str | None = None, title: str | None = None, meta: Any = None) -> dict[str, Any]:
    tool_call: dict[str, Any] = {"toolCallId": "tc1"}
    if kind is not None:
        tool_call["kind"] = kind
    if title is not None:
        tool_call["title"] = title
    if meta is not None:
        tool_call["_meta"] = meta
    return tool_call


@pytest.mark.parametrize(
    ("tool_call", "facts"),
    [
        (call("read", "Read /etc/hosts"), ("read", "Read /etc/hosts", "Read")),
        (call(), ("other", "", "")),
        (call("execute", "ls -la", {"toolName": "Bash"}), ("execute", "ls -la", "Bash")),
        (call("edit", "x", {"tool_name": "Write"}), ("edit", "x", "Write")),
        (call("edit", "x", {"claudeCode": {"toolName": "Edit"}}), ("edit", "x", "Edit")),
        (call("edit", "Edit foo", {"claudeCode": {"other": 1}}), ("edit", "Edit foo", "Edit")),
        (call("edit", "Edit foo", ["not", "a", "dict"]), ("edit", "Edit foo", "Edit")),
    ],
    ids=[
        "title-word",
        "bare",
        "meta-toolName",
        "meta-tool_name",
        "claude-meta",
        "claude-meta-without-name",
        "meta-not-a-dict",
    ],
)
def test_tool_call_facts_are_kind_title_and_tool_name(
    tool_call: dict[str, Any], facts: tuple[str, str, str]
) -> None:
    assert tool_call_facts(tool_call) == facts


RULES = policy(
    {"kind": "read", "action": "allow"},
    {"tool": "Bash", "title": "rm *", "action": "reject"},
    {"tool": "Bash", "action": "ask"},
    {"title": "git *", "action": "allow"},
    {"kind": "execute", "action": "allow"},
    default=Action.REJECT,
)

MATCHES = [
    ("kind matches", call("read", "Read a"), Action.ALLOW, "rule 1 (kind=read)"),
    (
        "tool and title glob",
        call("execute", "rm -rf /", {"toolName": "Bash"}),
        Action.REJECT,
        "rule 2 (title=rm *, tool=Bash)",
    ),
    (
        "first match wins",
        call("execute", "ls", {"toolName": "Bash"}),
        Action.ASK,
        "rule 3 (tool=Bash)",
    ),
    ("title glob alone", call("execute", "git status"), Action.ALLOW, "rule 4 (title=git *)"),
    ("kind after title misses", call("execute", "make"), Action.ALLOW, "rule 5 (kind=execute)"),
    ("glob is case sensitive", call("edit", "GIT status"), Action.REJECT, "default"),
    ("nothing matches", call("fetch", "GET /"), Action.REJECT, "default"),
    ("missing kind is other", call(None, "thing"), Action.REJECT, "default"),
]


@pytest.mark.parametrize(
    ("tool_call", "action", "rule"), [m[1:] for m in MATCHES], ids=[m[0] for m in MATCHES]
)
def test_the_first_matching_rule_decides_else_the_default(
    tool_call: dict[str, Any], action: Action, rule: str
) -> None:
    ruling = rule_for(RULES, tool_call)
    assert (ruling.action, ruling.rule) == (action, rule)


def test_a_rule_without_conditions_matches_everything() -> None:
    ruling = rule_for(policy({"action": "allow"}), call("delete", "rm x"))
    assert (ruling.action, ruling.rule) == (Action.ALLOW, "rule 1 (any)")


def test_an_empty_policy_uses_its_default() -> None:
    assert rule_for(policy(), call("read")).action is Action.ASK


ALL_OPTIONS = [
    {"optionId": "a1", "kind": "allow_once", "name": "Allow"},
    {"optionId": "a2", "kind": "allow_always", "name": "Always allow"},
    {"optionId": "r1", "kind": "reject_once", "name": "Reject"},
    {"optionId": "r2", "kind": "reject_always", "name": "Always reject"},
]
ONCE_ONLY = [o for o in ALL_OPTIONS if o["kind"].endswith("_once")]
ALWAYS_ONLY = [o for o in ALL_OPTIONS if o["kind"].endswith("_always")]

CHOICES = [
    (ALL_OPTIONS, Decision.ALLOW, False, "a1"),
    (ALL_OPTIONS, Decision.ALLOW, True, "a2"),
    (ALL_OPTIONS, Decision.REJECT, False, "r1"),
    (ALL_OPTIONS, Decision.REJECT, True, "r2"),
    (ONCE_ONLY, Decision.ALLOW, True, "a1"),  # falls back to once
    (ALWAYS_ONLY, Decision.REJECT, False, "r2"),  # falls back to always
    (ALL_OPTIONS, Decision.CANCELLED, False, None),
    ([o for o in ALL_OPTIONS if o["kind"].startswith("reject")], Decision.ALLOW, False, None),
    ([], Decision.ALLOW, False, None),
    (
        [{"optionId": 5, "kind": "allow_once"}, {"optionId": "ok", "kind": "allow_once"}],
        Decision.ALLOW,
        False,
        "ok",
    ),
    ([{"kind": "allow_once"}, {"name": "x"}], Decision.ALLOW, False, None),
]


@pytest.mark.parametrize(("options", "decision", "always", "expected"), CHOICES)
def test_an_option_is_chosen_by_kind_preferring_the_asked_persistence(
    options: list[dict[str, Any]], decision: Decision, always: bool, expected: str | None
) -> None:
    assert choose_option(options, decision, always=always) == expected


def test_parse_answer_reads_a_full_answer() -> None:
    assert parse_answer({"decision": "reject", "always": True, "by": "web", "reason": "no"}) == (
        Decision.REJECT,
        True,
        "web",
        "no",
    )


def test_parse_answer_defaults_and_caps_lengths() -> None:
    decision, always, by, reason = parse_answer(
        {"decision": "allow", "reason": "r" * 5000, "by": "b" * 500}
    )
    assert (decision, always) == (Decision.ALLOW, False)
    assert (len(by), len(reason)) == (200, 1000)
    assert parse_answer({"decision": "allow"})[2:] == ("file", "")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([], "JSON object"),
        ("allow", "JSON object"),
        (None, "JSON object"),
        ({}, "'decision'"),
        ({"decision": "maybe"}, "'decision'"),
        ({"decision": "cancelled"}, "'decision'"),
        ({"decision": True}, "'decision'"),
        ({"decision": "allow", "always": "yes"}, "'always'"),
        ({"decision": "allow", "always": 1}, "'always'"),
        ({"decision": "allow", "by": 3}, "'by' and 'reason'"),
        ({"decision": "allow", "reason": ["x"]}, "'by' and 'reason'"),
    ],
)
def test_a_malformed_answer_raises_value_error_saying_why(answer: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_answer(answer)


def test_a_request_record_says_what_is_asked_and_when_it_expires() -> None:
    record = request_record("r1", "t1", "s1", call("edit", "Edit x"), ALL_OPTIONS, timeout=60)
    assert (record["id"], record["task"], record["status"]) == ("r1", "t1", "pending")
    assert (record["kind"], record["tool"]) == ("edit", "Edit")
    assert record["expires_at"] == pytest.approx(record["created_at"] + 60)
    assert request_record("r", "t", "s", call(), [], timeout=0)["expires_at"] is None
