"""Commands that publish into inboxes: `submit`, `send` (with `--wait`), `cancel`, `complete`.

They write drop files and return; the supervisor (now or when it next runs) does the
rest. `send --wait` then follows the task's transcript and prints the agent's reply as
it streams. None of them loads anything heavy: `send --wait` is one short process.
"""

from __future__ import annotations

import sys
import time

import click

from meta_harness.base.errors import Conflict, UsageError
from meta_harness.base.layout import Workspace, validate_task_id
from meta_harness.cli.context import CliContext, pass_cli
from meta_harness.cli.output import note, print_json
from meta_harness.cli.publish import publish_control, publish_message, publish_task
from meta_harness.cli.state import read_json, supervisor_status
from meta_harness.cli.taskref import resolve_task
from meta_harness.cli.turn import RECOVERED, Offsets, Reply, TurnTracker, wait_reply
from meta_harness.domain.drops import Control
from meta_harness.domain.phases import TaskPhase

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def read_text_arg(value: str, what: str) -> str:
    """The argument itself, or stdin when it is `-`."""
    text = sys.stdin.read() if value == "-" else value
    if not text.strip():
        raise UsageError(f"the {what} is empty")
    return text


def live_task(workspace: Workspace, ref: str) -> str:
    """The task `ref` names, which must not have ended (anything sent to it would be dropped)."""
    task_id = resolve_task(workspace, ref)
    record = read_json(workspace.task(task_id).record) or {}
    try:
        phase = TaskPhase(str(record.get("phase")))
    except ValueError:
        return task_id
    if phase.terminal:
        raise Conflict(
            f"task {task_id} has already ended ({phase}); nothing more can be sent to it"
        )
    return task_id


def _no_supervisor_note(workspace: Workspace, where: str) -> bool:
    if supervisor_status(workspace).running:
        return True
    note(
        f"note: no supervisor is running on {workspace.root}; this waits in {where} until one does"
    )
    return False


@click.command()
@click.argument("prompt")
@click.option(
    "-p", "--profile", help="Profile to run the task with (default: supervisor.default_profile)."
)
@click.option("-t", "--title", help="A short title (default: the prompt's first line).")
@click.option(
    "--oneshot",
    is_flag=True,
    help="End the task after its first turn; that turn's text is the result.",
)
@click.option("--parent", metavar="TASK", help="Make it a child of TASK (its result goes to TASK).")
@click.option("--id", "task_id", metavar="ID", help="The task id (default: a fresh t-… id).")
@json_option
@pass_cli
def submit(
    cli: CliContext,
    prompt: str,
    profile: str | None,
    title: str | None,
    oneshot: bool,
    parent: str | None,
    task_id: str | None,
    as_json: bool,
) -> None:
    """Create a task from PROMPT ('-' reads stdin); prints its id."""
    workspace = cli.workspace()
    text = read_text_arg(prompt, "prompt")
    config = cli.config(workspace)
    if profile is not None and profile not in config.profiles:
        known = ", ".join(sorted(config.profiles))
        raise UsageError(f"no profile named {profile!r} (known: {known})")
    parent_id = live_task(workspace, parent) if parent else None
    if task_id is not None:
        validate_task_id(task_id)
        if workspace.task(task_id).dir.exists() or (workspace.inbox / f"{task_id}.json").exists():
            raise Conflict(f"a task with id {task_id} already exists")
    drop = publish_task(
        workspace,
        text,
        task_id=task_id,
        title=title,
        profile=profile,
        parent=parent_id,
        oneshot=oneshot,
    )
    running = _no_supervisor_note(workspace, "inbox/")
    if as_json:
        print_json(
            {
                "id": drop.task_id,
                "title": drop.title,
                "profile": profile or config.settings.supervisor.default_profile,
                "parent": parent_id,
                "mode": "oneshot" if oneshot else None,
                "file": f"inbox/{drop.task_id}.json",
                "supervisor_running": running,
            }
        )
    else:
        click.echo(drop.task_id)


@click.command()
@click.argument("task")
@click.argument("text")
@click.option("--wait", is_flag=True, help="Stream the agent's reply; return when its turn ends.")
@click.option(
    "--timeout", type=float, metavar="S", help="With --wait: give up after S seconds (exit 124)."
)
@json_option
@pass_cli
def send(
    cli: CliContext, task: str, text: str, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Send TEXT to TASK; prints the message id.

    TASK is a task id or a unique prefix of one; TEXT '-' reads stdin. With --wait, the
    agent's reply is streamed as it arrives and the command returns when the turn ends
    (exit 0 when it ended normally).
    """
    if timeout is not None and not wait:
        raise UsageError("--timeout only applies with --wait")
    workspace = cli.workspace()
    task_id = live_task(workspace, task)
    body = read_text_arg(text, "message")
    paths = workspace.task(task_id)
    offsets = Offsets.now(paths)  # before publishing: the prompt frame comes after this
    drop = publish_message(workspace, task_id, body)
    running = _no_supervisor_note(workspace, f"tasks/{task_id}/inbox/")
    if not wait:
        if as_json:
            print_json({"task": task_id, "message": drop.id, "supervisor_running": running})
        else:
            click.echo(drop.id)
        return
    deadline = time.monotonic() + timeout if timeout is not None else None
    printer = _Printer(enabled=not as_json)
    try:
        reply = wait_reply(paths, TurnTracker(drop.id), offsets, deadline=deadline, on_text=printer)
    finally:
        printer.finish()
    _report(task_id, reply, as_json)


class _Printer:
    """Streams reply text to stdout as it arrives; ends it with a newline."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.last = "\n"

    def __call__(self, chunk: str) -> None:
        if self.enabled:
            click.echo(chunk, nl=False)
            sys.stdout.flush()
            self.last = chunk[-1]

    def finish(self) -> None:
        if self.enabled and self.last != "\n":
            click.echo()


def _report(task_id: str, reply: Reply, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "task": task_id,
                "message": reply.message_id,
                "stop": reply.stop,
                "error": reply.error,
                "dropped": reply.dropped,
                "text": reply.text,
            }
        )
    if reply.stop == RECOVERED:
        note(
            "note: the supervisor restarted mid-turn; the agent had already received this "
            "message, so it was not sent again (its reply, if any, ended with the crash)"
        )
    reply.raise_for_outcome()


@click.command()
@click.argument("task")
@json_option
@pass_cli
def cancel(cli: CliContext, task: str, as_json: bool) -> None:
    """Cancel TASK (and its children): its turn is cancelled, queued messages are dropped."""
    workspace = cli.workspace()
    task_id = live_task(workspace, task)
    drop = publish_control(workspace, task_id, Control.CANCEL)
    running = _no_supervisor_note(workspace, f"tasks/{task_id}/inbox/")
    if as_json:
        print_json(
            {
                "task": task_id,
                "message": drop.id,
                "control": "cancel",
                "supervisor_running": running,
            }
        )
    else:
        click.echo(f"cancel requested for {task_id}")


@click.command()
@click.argument("task")
@click.argument("result", required=False)
@json_option
@pass_cli
def complete(cli: CliContext, task: str, result: str | None, as_json: bool) -> None:
    """Mark TASK done with RESULT ('-' reads stdin); a parent task receives the result."""
    workspace = cli.workspace()
    task_id = live_task(workspace, task)
    text = read_text_arg(result, "result") if result == "-" else (result or "")
    drop = publish_control(workspace, task_id, Control.COMPLETE, text)
    running = _no_supervisor_note(workspace, f"tasks/{task_id}/inbox/")
    if as_json:
        print_json(
            {
                "task": task_id,
                "message": drop.id,
                "control": "complete",
                "supervisor_running": running,
            }
        )
    else:
        click.echo(f"completion requested for {task_id}")
