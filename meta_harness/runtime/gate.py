"""The permission gate of one task: rules decide, or a request file waits for an answer.

`decide` applies the profile's rules to a `session/request_permission`. *Ask* writes
`permissions/<req>.json` (status pending), emits an event and waits — only that tool
call waits — until an answer file (`<req>.answer.json`, from the CLI, the web page or
any writer) arrives, the request times out (rejected, with the reason), or the task is
cancelled (answered `cancelled`). "Always" answers are remembered for the task. Every
decision is written to the transcript as a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from meta_harness.base.config import Action, Profile
from meta_harness.base.fs import atomic_write
from meta_harness.base.layout import TaskPaths, new_id
from meta_harness.domain.events import EventType
from meta_harness.domain.permissions import (
    Decision,
    RequestStatus,
    choose_option,
    parse_answer,
    request_record,
    rule_for,
    tool_call_facts,
)
from meta_harness.runtime.store import EventLog

logger = logging.getLogger(__name__)

Note = Callable[..., None]  # (note, **fields): one transcript note

# The agent's call was cancelled under the gate (its connection closed: a stop or a crash).
_CANCELLED_BY_STOP: tuple[Decision, bool, str, str] = (
    Decision.CANCELLED,
    False,
    "supervisor",
    "the agent's call ended",
)


class PermissionGate:
    def __init__(self, task_id: str, paths: TaskPaths, profile: Profile, events: EventLog) -> None:
        self.task_id = task_id
        self.paths = paths
        self.profile = profile
        self.events = events
        self._pending: dict[str, asyncio.Future[tuple[Decision, bool, str, str]]] = {}
        self._always: dict[tuple[str, str], Decision] = self._remembered()  # (kind, tool)
        self.note: Note | None = None  # the task's transcript, set by the runner

    def _remembered(self) -> dict[tuple[str, str], Decision]:
        """ "Always" answers given earlier, read back from answered request files."""
        found: dict[tuple[str, str], tuple[float, Decision]] = {}
        with contextlib.suppress(FileNotFoundError):
            for path in self.paths.permissions.iterdir():
                if not path.name.endswith(".json") or path.name.endswith(".answer.json"):
                    continue
                with contextlib.suppress(OSError, ValueError):
                    record = orjson.loads(path.read_bytes())
                    if record.get("always") and record.get("decision") in ("allow", "reject"):
                        key = (str(record.get("kind", "")), str(record.get("tool", "")))
                        when = float(record.get("answered_at", 0))
                        if key not in found or found[key][0] < when:
                            found[key] = (when, Decision(record["decision"]))
        return {key: decision for key, (_, decision) in found.items()}

    @property
    def waiting(self) -> bool:
        return bool(self._pending)

    async def decide(
        self,
        session_id: str,
        tool_call: dict[str, Any],
        options: list[dict[str, Any]],
        note: Note | None = None,
    ) -> str | None:
        """The optionId to answer with (None: cancelled). `note` is the asking session's
        transcript (default `self.note`): a decision made while that session is being
        swapped out is still written to it."""
        note = note or self.note
        kind, _, tool = tool_call_facts(tool_call)
        ruling = rule_for(self.profile.permissions, tool_call)
        if ruling.action is Action.ALLOW:
            return self._answer(note, tool_call, options, Decision.ALLOW, False, ruling.rule, "")
        if ruling.action is Action.REJECT:
            return self._answer(note, tool_call, options, Decision.REJECT, False, ruling.rule, "")
        # A remembered "always" answer stands in for asking; it never overrides a rule.
        remembered = self._always.get((kind, tool))
        if remembered is not None:
            by = "remembered always-answer"
            return self._answer(note, tool_call, options, remembered, True, by, "")
        try:
            decision, always, by, reason = await self._ask(session_id, tool_call, options, note)
        except asyncio.CancelledError:  # the agent's call ended with its connection
            self._answer(note, tool_call, options, *_CANCELLED_BY_STOP)
            raise
        if always and decision is not Decision.CANCELLED:
            self._always[(kind, tool)] = decision
        return self._answer(note, tool_call, options, decision, always, by, reason)

    def _answer(
        self,
        note: Note | None,
        tool_call: dict[str, Any],
        options: list[dict[str, Any]],
        decision: Decision,
        always: bool,
        by: str,
        reason: str,
    ) -> str | None:
        # Always a *_once option when offered: "always" is remembered here, so every later
        # call still reaches the gate (rules apply, each decision is noted) instead of being
        # waved through by the agent's own memory, which may outlive the task.
        option_id = choose_option(options, decision, always=False)
        if option_id is None and decision is not Decision.CANCELLED:
            reason = reason or f"the agent offered no {decision.value} option"
        if note is not None:
            note(
                "permission",
                tool_call=tool_call.get("toolCallId"),
                title=tool_call.get("title"),
                decision=decision.value,
                always=always,
                by=by,
                reason=reason,
                option=option_id,
            )
        return option_id

    async def _ask(
        self,
        session_id: str,
        tool_call: dict[str, Any],
        options: list[dict[str, Any]],
        note: Note | None,
    ) -> tuple[Decision, bool, str, str]:
        request_id = new_id("perm")
        timeout = self.profile.permissions.timeout
        record = request_record(request_id, self.task_id, session_id, tool_call, options, timeout)
        self.paths.permissions.mkdir(parents=True, exist_ok=True)
        path = self.paths.permissions / f"{request_id}.json"
        atomic_write(path, orjson.dumps(record, option=orjson.OPT_INDENT_2))
        future: asyncio.Future[tuple[Decision, bool, str, str]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[request_id] = future
        self.events.emit(
            EventType.PERMISSION,
            self.task_id,
            request=request_id,
            status="pending",
            title=record["title"],
            kind=record["kind"],
        )
        if note is not None:
            note("permission-asked", request=request_id, title=record["title"])
        try:
            if timeout:
                try:
                    result = await asyncio.wait_for(asyncio.shield(future), timeout)
                except TimeoutError:
                    result = (Decision.REJECT, False, "timeout", f"no answer within {timeout:g} s")
            else:
                result = await future
        except asyncio.CancelledError:
            self._finish(path, record, _CANCELLED_BY_STOP)
            raise
        finally:
            self._pending.pop(request_id, None)
        self._finish(path, record, result)
        return result

    def _finish(
        self, path: Path, record: dict[str, Any], result: tuple[Decision, bool, str, str]
    ) -> None:
        decision, always, by, reason = result
        record = dict(record)
        record.update(
            status=RequestStatus.ANSWERED.value,
            decision=decision.value,
            always=always,
            answered_by=by,
            reason=reason,
            answered_at=time.time(),
        )
        with contextlib.suppress(OSError):
            atomic_write(path, orjson.dumps(record, option=orjson.OPT_INDENT_2))
        self.events.emit(
            EventType.PERMISSION,
            self.task_id,
            request=record["id"],
            status="answered",
            decision=decision.value,
            by=by,
        )

    def on_answer_file(self, request_id: str, answer: Path) -> None:
        """An answer file arrived; resolve the waiting call (or explain why not)."""
        try:
            data = answer.read_bytes()
            decision, always, by, reason = parse_answer(orjson.loads(data))
        except (OSError, ValueError) as e:
            logger.warning("task %s: bad permission answer %s: %s", self.task_id, answer.name, e)
            self._set_aside(answer, f"invalid answer: {e}")
            return
        future = self._pending.get(request_id)
        if future is None or future.done():
            self._set_aside(answer, "no pending request with this id (already answered or expired)")
            return
        future.set_result((decision, always, by, reason))
        with contextlib.suppress(OSError):
            answer.unlink()

    def _set_aside(self, answer: Path, reason: str) -> None:
        with contextlib.suppress(OSError):
            answer.rename(answer.with_name(answer.name + ".rejected"))
        self.events.emit(EventType.REJECTED, self.task_id, file=answer.name, reason=reason)

    def cancel_all(self, reason: str) -> None:
        for future in list(self._pending.values()):
            if not future.done():
                future.set_result((Decision.CANCELLED, False, "supervisor", reason))
