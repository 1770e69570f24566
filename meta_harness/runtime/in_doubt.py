"""The messages in doubt after a crash: stamped sent, never acked. Settled on restore.

Before the new connection, the old one's transcript tells which of them the agent had
answered. The `session/load` replay then shows which it received: those are acked
`recovered` (a cut turn gets a "continue" follow-up, profile permitting; a oneshot's
recovered turn finishes it), the others are left pending and sent again with their ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meta_harness.base.config import Profile
from meta_harness.base.jsonl import read_reversed
from meta_harness.domain.drops import header_marker
from meta_harness.domain.events import EventType
from meta_harness.domain.inbox import Message
from meta_harness.domain.interrupted import continuation
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.replay import replayed_answer, user_texts
from meta_harness.domain.tasks import TaskMode
from meta_harness.domain.transcript import turn_stop
from meta_harness.runtime.runner_context import RunnerContext

if TYPE_CHECKING:
    from meta_harness.agent.session import AgentSession


class InDoubt:
    """One task's in-doubt settling; `continue_next` is a follow-up to deliver first."""

    def __init__(self, ctx: RunnerContext, task_id: str, profile: Profile) -> None:
        self.ctx = ctx
        self.task_id = task_id
        self.profile = profile
        self.paths = ctx.workspace.task(task_id)
        self.inbox = ctx.store.inbox(task_id)
        self.continue_next: str | None = None  # a "continue" follow-up to deliver first
        self._answered: set[str] = set()  # in doubt, but the agent had answered them

    def take_follow_up(self) -> str | None:
        """The "continue" follow-up id to deliver before anything else, once."""
        follow_up, self.continue_next = self.continue_next, None
        return follow_up

    def read_answers(self, in_doubt: list[Message]) -> None:
        """Note which of `in_doubt` the agent answered before the crash (from the transcript;
        read before the new connection's frames, maybe a long load replay, are added)."""
        self._answered = {m.id for m in in_doubt if self._answer_before_crash(m.id) is not None}

    def _answer_before_crash(self, message_id: str) -> str | None:
        """The stop reason the agent answered an in-doubt message with, if the transcript
        of the connection that carried it (its last `sent` stamp's epoch) shows one."""
        epoch = next(
            (
                r["epoch"]
                for r in read_reversed(self.paths.wal)
                if r.get("op") == "sent"
                and r.get("id") == message_id
                and isinstance(r.get("epoch"), int)
            ),
            None,
        )
        if epoch is None:
            return None
        return turn_stop(read_reversed(self.paths.transcript), message_id, epoch)

    def settle(
        self, session: AgentSession, replay: list[dict[str, Any]], in_doubt: list[Message]
    ) -> None:
        """Ack as `recovered` each message of `in_doubt` the load replay shows received."""
        seen = user_texts(replay)
        for message in in_doubt:
            marker = header_marker(message.id)
            if any(text.lstrip().startswith(marker) for text in seen):
                # the follow-up first: a crash before the ack repeats both, once
                continued = self._continue_interrupted(session, message)
                self.inbox.ack(message.id, "recovered")
                session.transcript.note("in-doubt-recovered", message=message.id)
                if not continued:
                    self._recovered_oneshot(session, replay, marker)
            else:
                session.transcript.note("in-doubt-resend", message=message.id)

    def _continue_interrupted(self, session: AgentSession, message: Message) -> bool:
        """Queue the "continue" follow-up for a recovered turn whose end the transcript
        does not show (the agent died, or the supervisor, mid-turn), profile permitting.
        A turn that ended and only lost its ack needs none."""
        if self.profile.on_interrupted_turn != "continue" or message.control is not None:
            return False
        if message.id in self._answered:
            return False
        follow_up = continuation(message.id)
        self.inbox.accept([follow_up])
        self.continue_next = follow_up.id
        session.transcript.note("turn-continued", message=message.id, follow_up=follow_up.id)
        self.ctx.store.events.emit(
            EventType.WARNING,
            self.task_id,
            message=f"turn of {message.id} was cut by a restart; asked the agent to continue",
        )
        return True

    def _recovered_oneshot(
        self, session: AgentSession, replay: list[dict[str, Any]], marker: str
    ) -> None:
        """A oneshot task's first turn was recovered from a replay and is not continued
        (`on_interrupted_turn = "leave"`): that turn finishes it.

        Its result is the agent text the replay shows after the message (the end of the
        turn was lost with the previous supervisor, so the runner's turn end never ran).
        """
        record = self.ctx.store.get(self.task_id)
        if record is None or record.phase.terminal or record.mode is not TaskMode.ONESHOT:
            return
        text = replayed_answer(replay, marker)
        session.transcript.note("oneshot-recovered", chars=len(text))
        self.ctx.store.set_phase(self.task_id, TaskPhase.DONE, result=text, finished_by="oneshot")
        self.ctx.on_task_ended(self.task_id)
