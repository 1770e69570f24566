"""Permission requests: `permissions` lists the pending ones, `approve`/`reject` answer one.

A request is `tasks/<id>/permissions/<req>.json` (written by the supervisor, status
pending until answered); an answer is a new file `<req>.answer.json` beside it, which
the supervisor's permission gate takes. Only a running supervisor has an agent waiting
on a request: one left from an earlier run is cancelled when the next run boots.
"""

from __future__ import annotations

import time

import click

from meta_harness.base.errors import Conflict
from meta_harness.base.layout import Workspace
from meta_harness.cli.context import CliContext, pass_cli
from meta_harness.cli.output import age, clip, note, print_json, table
from meta_harness.cli.publish import publish_answer
from meta_harness.cli.state import PENDING, pending_requests, read_json, supervisor_status
from meta_harness.cli.taskref import resolve_request, resolve_task

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
TITLE_WIDTH = 50


@click.command()
@json_option
@pass_cli
def permissions(cli: CliContext, as_json: bool) -> None:
    """List every permission request waiting for an answer, in all tasks."""
    workspace = cli.workspace()
    found = pending_requests(workspace)
    running = supervisor_status(workspace).running
    if as_json:
        print_json({"supervisor_running": running, "requests": [r.as_json() for r in found]})
        return
    if not found:
        click.echo("no permission requests are waiting")
        return
    now = time.time()
    rows = [
        [
            r.task,
            r.id,
            str(r.record.get("kind", "")),
            age(float(r.record.get("created_at") or now), now),
            clip(str(r.record.get("title", "")), TITLE_WIDTH)
            + ("  (answered; not taken yet)" if r.answer_waiting else ""),
        ]
        for r in found
    ]
    click.echo(table(["TASK", "REQUEST", "KIND", "AGE", "TITLE"], rows))
    if not running:
        note(
            "note: no supervisor is running, so no agent is waiting on these; "
            "they are cancelled when it next starts"
        )


def answer_request(
    workspace: Workspace,
    task_ref: str,
    request_ref: str,
    *,
    allow: bool,
    always: bool,
    reason: str = "",
) -> tuple[str, str]:
    """Check that the request is pending and answerable, then publish the answer file.

    Returns `(task id, request id)`. Used by `approve`, `reject` and the demo.
    """
    task_id = resolve_task(workspace, task_ref)
    request_id = resolve_request(workspace, task_id, request_ref)
    directory = workspace.task(task_id).permissions
    record = read_json(directory / f"{request_id}.json")
    if record is None:
        raise Conflict(f"request {request_id} of task {task_id} is unreadable")
    if record.get("status") != PENDING:
        decision = record.get("decision", "?")
        by = record.get("answered_by", "?")
        raise Conflict(
            f"request {request_id} is not pending: already answered ({decision}, by {by})"
        )
    if (directory / f"{request_id}.answer.json").exists():
        raise Conflict(f"request {request_id} already has an answer waiting for the supervisor")
    if not supervisor_status(workspace).running:
        raise Conflict(
            f"no supervisor is running, so no agent is waiting on {request_id}; "
            "it is cancelled when the supervisor next starts"
        )
    publish_answer(workspace, task_id, request_id, allow=allow, always=always, reason=reason)
    return task_id, request_id


def _answered(task_id: str, request_id: str, decision: str, always: bool, as_json: bool) -> None:
    if as_json:
        print_json({"task": task_id, "request": request_id, "decision": decision, "always": always})
    else:
        remembered = " (always: remembered for this task)" if always else ""
        click.echo(f"{decision}: {request_id} of {task_id}{remembered}")


always_option = click.option(
    "--always", is_flag=True, help="Answer the same way for this kind of tool call from now on."
)


@click.command()
@click.argument("task")
@click.argument("request")
@always_option
@json_option
@pass_cli
def approve(cli: CliContext, task: str, request: str, always: bool, as_json: bool) -> None:
    """Allow the tool call of REQUEST (an id or unique prefix) of TASK."""
    task_id, request_id = answer_request(cli.workspace(), task, request, allow=True, always=always)
    _answered(task_id, request_id, "allow", always, as_json)


@click.command()
@click.argument("task")
@click.argument("request")
@always_option
@click.option("--reason", default="", help="Why (recorded in the transcript).")
@json_option
@pass_cli
def reject(
    cli: CliContext, task: str, request: str, always: bool, reason: str, as_json: bool
) -> None:
    """Reject the tool call of REQUEST (an id or unique prefix) of TASK."""
    task_id, request_id = answer_request(
        cli.workspace(), task, request, allow=False, always=always, reason=reason
    )
    _answered(task_id, request_id, "reject", always, as_json)
