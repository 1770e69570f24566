"""`demo`: the scripted tour on the built-in demo agent, with a live view of every event.

A scratch workspace, a real supervisor subprocess, and the same paths the other commands
use (`publish_*`, `answer_request`, `wait_reply`): three tasks (an echo, a plan with a
streamed reply, an edit that asks permission), a follow-up streamed as it arrives, an
approval, a SIGKILL of the supervisor mid-turn and a restart, then SIGTERM and a summary
read from the files. Every wait is bounded by one overall deadline.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from meta_harness.base.errors import UsageError
from meta_harness.base.jsonl import read_records
from meta_harness.base.layout import Workspace
from meta_harness.cli.demo_support import Console, DemoSupervisor, EventPrinter, wait_until
from meta_harness.cli.permissions import answer_request
from meta_harness.cli.publish import publish_message, publish_task
from meta_harness.cli.setup import copy_template
from meta_harness.cli.state import pending_requests, read_json
from meta_harness.cli.turn import Offsets, Reply, TurnFollower, TurnTracker, wait_reply
from meta_harness.domain.inbox import InboxState
from meta_harness.domain.interrupted import continuation_id

DEMO_TIMEOUT = 120.0  # the whole scenario; a healthy run takes a few seconds
PROFILE = "demo"


@dataclass
class Scenario:
    ws: Workspace
    console: Console
    supervisor: DemoSupervisor
    deadline: float
    labels: dict[str, str] = field(default_factory=dict)

    # -- helpers -------------------------------------------------------------------------------

    def submit(self, label: str, prompt: str) -> str:
        task_id = publish_task(self.ws, prompt, title=label, profile=PROFILE).task_id
        assert task_id is not None
        self.labels[task_id] = label
        self.console.line(f"    submitted {task_id} [{label}]: {prompt.splitlines()[0]}")
        return task_id

    def created(self, task_id: str) -> None:
        wait_until(
            lambda: True if self.ws.task(task_id).record.is_file() else None,
            f"task {task_id} to be accepted",
            self.ws,
            self.deadline,
            self.supervisor.check_alive,
        )

    def reply(
        self, task_id: str, message_id: str, offsets: Offsets, *, quiet: bool = False
    ) -> Reply:
        """Wait for the reply to `message_id`, streaming it (or just counting it)."""
        prefix = f"    {self.labels[task_id]}> "
        seen: list[str] = []

        def show(text: str) -> None:
            seen.append(text)
            if not quiet:
                self.console.stream(text, prefix)

        paths = self.ws.task(task_id)
        reply = wait_reply(
            paths, TurnTracker(message_id), offsets, deadline=self.deadline, on_text=show
        )
        self.console.end()
        if quiet:
            text = "".join(seen)
            self.console.line(f"{prefix}({len(seen)} chunks streamed, {len(text)} characters)")
        reply.raise_for_outcome()
        return reply

    # -- the scenario --------------------------------------------------------------------------

    def run(self) -> None:
        c = self.console
        c.head(f"starting a supervisor on {self.ws.root}")
        self.supervisor.start(self.deadline)
        c.line(f"    supervisor pid {self.supervisor.pid}; its log: {self.ws.supervisor_log}")

        c.head(
            "1. three tasks: an echo, a plan with a streamed reply, an edit that needs permission"
        )
        echo = self.submit("echo", "Hello! Please say this back to me.")
        plan = self.submit("plan", "/plan read the code; write the fix; run the tests\n/stream 3")
        edit = self.submit("edit", "/edit notes.txt written by the demo agent, with your approval")
        for task_id in (echo, plan):
            self.created(task_id)
            self.reply(task_id, f"prompt-{task_id}", Offsets(0, 0), quiet=task_id == plan)

        c.head(f"2. a follow-up to {echo}, its reply streamed as it arrives (like `send --wait`)")
        paths = self.ws.task(echo)
        offsets = Offsets.now(paths)
        text = (
            "/say Still here. This reply streams word by word,\\nas the agent writes it.\n"
            "and echo this"
        )
        message = publish_message(self.ws, echo, text)
        c.line(f"    sent {message.id}")
        self.reply(echo, message.id, offsets)

        c.head(f"3. {edit} asks permission to edit notes.txt: approve it")
        self.created(edit)
        request = wait_until(
            lambda: next(iter(pending_requests(self.ws, [edit])), None),
            "the permission request",
            self.ws,
            self.deadline,
            self.supervisor.check_alive,
        )
        c.line(f"    pending: {request.id}: {request.record.get('title')}")
        c.line(f"    answering as `meta-harness approve {edit} {request.id}` does")
        answer_request(self.ws, edit, request.id, allow=True, always=False)
        self.reply(edit, f"prompt-{edit}", Offsets(0, 0))
        notes = self.ws.root / "notes.txt"
        c.line(f"    notes.txt now holds: {notes.read_text('utf-8').strip()!r}")

        self.crash(plan)

        c.head("5. SIGTERM: sessions are swapped out to disk, then the supervisor exits")
        code = self.supervisor.stop()
        c.line(f"    supervisor exited with code {code}")

    def crash(self, task_id: str) -> None:
        c = self.console
        c.head(f"4. SIGKILL the supervisor while {task_id} is mid-turn, then run it again")
        paths = self.ws.task(task_id)
        offsets = Offsets.now(paths)
        sleeper = publish_message(self.ws, task_id, "/sleep 2000\nwoke up")
        tracker = TurnTracker(sleeper.id)
        follower = TurnFollower(paths, tracker, offsets, lambda _: None)

        def reached() -> bool | None:
            follower.poll()
            return True if tracker.attempts else None

        wait_until(
            reached,
            f"{sleeper.id} to reach the agent",
            self.ws,
            self.deadline,
            self.supervisor.check_alive,
        )
        c.line(
            f"    {sleeper.id} ('/sleep 2000') is with the agent; SIGKILL pid {self.supervisor.pid}"
        )
        self.supervisor.kill()
        c.line("    supervisor gone; its reaper ends the agent processes")
        offsets = Offsets.now(paths)
        later = publish_message(self.ws, task_id, "Are you still there after the crash?")
        c.line(
            f"    sent {later.id} while no supervisor runs: "
            f"it waits as tasks/{task_id}/inbox/{later.id}.json"
        )
        self.supervisor.start(self.deadline)
        c.line(f"    supervisor restarted: pid {self.supervisor.pid}")
        self.reply(task_id, later.id, offsets)
        state = InboxState.fold(read_records(paths.wal))
        stop = state.acked.get(sleeper.id)
        if stop == "recovered":
            c.line(
                f"    {sleeper.id} was in flight at the kill: the agent's session replay shows "
                "it had arrived, so it was acked as recovered and not sent twice"
            )
            if state.knows(continuation_id(sleeper.id)):
                c.line(f"    the cut turn was continued ({continuation_id(sleeper.id)})")
        else:
            c.line(
                f"    {sleeper.id} was in flight at the kill: sent again with the same id ({stop})"
            )

    def summary(self, *, kept: bool) -> None:
        c = self.console
        c.head("summary")
        totals = {"accepted": 0, "delivered": 0, "pending": 0, "duplicates": 0}
        resent = 0
        for task_id in self.ws.task_ids():
            paths = self.ws.task(task_id)
            state = InboxState.fold(read_records(paths.wal))
            counts = state.counts()
            for key in totals:
                totals[key] += counts[key]
            resent += state.resent
            record = read_json(paths.record) or {}
            label = self.labels.get(task_id, "")
            c.line(
                f"    {task_id} [{label}] {record.get('phase')}: "
                f"{counts['delivered']} delivered, {counts['pending']} pending"
            )
        crashes = sum(
            1
            for e in read_records(self.ws.events_file)
            if e.get("type") == "session.phase" and e.get("to") == "crashed"
        )
        c.line(
            f"    messages: {totals['accepted']} accepted, {totals['delivered']} delivered, "
            f"{totals['pending']} pending; duplicates dropped: {totals['duplicates']}; "
            f"sent more than once: {resent}"
        )
        c.line(
            f"    supervisor runs: {self.supervisor.starts} ({self.supervisor.kills} SIGKILLed); "
            f"agent crashes seen: {crashes}"
        )
        c.line(f"    transcripts: {self.ws.tasks_dir}/<task>/transcript.jsonl")
        if kept:
            c.line(
                f"    read one: meta-harness -w {self.ws.root} logs {next(iter(self.labels), '')}"
            )


def _prepare(directory: str | None) -> tuple[Path, bool]:
    """The demo workspace and whether it is a temp dir of ours."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="meta-harness-demo-")), True
    root = Path(directory).expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"--dir {root} is not empty; give a new or empty directory")
    return root, False


def _supervisor_env(root: Path) -> dict[str, str]:
    """The caller's environment without meta-harness settings; an empty user config layer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("META_HARNESS_")}
    config_home = root / ".meta-harness" / "demo-config"
    config_home.mkdir(parents=True, exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(config_home)
    return env


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Workspace to create (new or empty).",
)
@click.option("--keep", is_flag=True, help="Keep the scratch workspace afterwards.")
@click.option(
    "--timeout",
    type=float,
    default=DEMO_TIMEOUT,
    show_default=True,
    help="Seconds for the whole demo.",
)
def demo(directory: str | None, keep: bool, timeout: float) -> None:
    """Run a scripted tour on the built-in demo agent (no keys, no network)."""
    root, scratch = _prepare(directory)
    copy_template(root)
    ws = Workspace.at(root)
    console = Console()
    supervisor = DemoSupervisor(ws, _supervisor_env(root))
    scenario = Scenario(ws, console, supervisor, time.monotonic() + timeout)
    events = EventPrinter(ws, console, scenario.labels)
    events.start()
    ok = False
    try:
        scenario.run()
        events.stop()
        scenario.summary(kept=keep or not scratch)
        ok = True
    finally:
        supervisor.cleanup()
        events.stop()
        if ok and scratch and not keep:
            shutil.rmtree(root, ignore_errors=True)
            console.line(f"    (the scratch workspace {root} was removed; --keep keeps it)")
        else:
            console.line(f"    workspace kept: {root}")
