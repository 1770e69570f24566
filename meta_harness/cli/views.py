"""Read commands over the whole workspace: `ls` (tasks as a tree) and `show` (one task).

Both read files only (task records, WALs, inbox drop files, permission requests, the
events log) and work the same with or without a running supervisor; they say which.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import click

from meta_harness.base.errors import NotFound
from meta_harness.base.layout import Workspace
from meta_harness.cli.context import CliContext, pass_cli
from meta_harness.cli.output import age, clip, print_json, stamp, table
from meta_harness.cli.state import (
    SupervisorStatus,
    TaskRow,
    read_json,
    requests,
    session_phases,
    supervisor_status,
    task_row,
    task_rows,
)
from meta_harness.cli.taskref import QueuedTask, queued_tasks, resolve_task

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
TITLE_WIDTH = 60
QUEUED = "(queued)"


@dataclass
class Line:
    """One row of `ls`: a task, or a task drop still waiting in inbox/."""

    id: str
    parent: str | None
    phase: str
    session: str
    profile: str
    title: str
    pending: int
    created: float
    ended: bool = False
    children: list[Line] = field(default_factory=list)

    def as_json(self, depth: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent,
            "depth": depth,
            "phase": self.phase,
            "session": self.session,
            "profile": self.profile,
            "title": self.title,
            "pending": self.pending,
            "created_at": self.created,
        }


def _task_line(row: TaskRow, phases: dict[str, str], running: bool) -> Line:
    record = row.record
    return Line(
        id=row.id,
        parent=row.parent,
        phase=row.phase,
        session=phases.get(row.id, "absent") if running else "-",
        profile=str(record.get("profile", "")),
        title=str(record.get("title", "")),
        pending=row.unsent,
        created=float(record.get("created_at") or 0.0),
        ended=row.ended,
    )


def _queued_line(queued: QueuedTask) -> Line:
    if queued.id is None:
        return Line(
            f"inbox/{queued.name}",
            None,
            "(invalid)",
            "-",
            "",
            queued.error or "",
            0,
            queued.created,
        )
    return Line(
        queued.id,
        queued.parent,
        QUEUED,
        "-",
        queued.profile or "-",
        queued.title,
        1,
        queued.created,
    )


def _tree(lines: list[Line], show_all: bool) -> tuple[list[tuple[int, Line]], int]:
    """Depth-first rows (children under parents); ended subtrees hidden unless `show_all`."""
    by_id = {line.id: line for line in lines}
    roots: list[Line] = []
    for line in sorted(lines, key=lambda x: (x.created, x.id)):
        parent = by_id.get(line.parent) if line.parent else None
        (parent.children if parent is not None and parent is not line else roots).append(line)
    visible_cache: dict[str, bool] = {}

    def visible(line: Line) -> bool:
        if line.id not in visible_cache:
            visible_cache[line.id] = show_all or not line.ended or any(map(visible, line.children))
        return visible_cache[line.id]

    out: list[tuple[int, Line]] = []
    stack = [(0, line) for line in reversed(roots)]
    while stack:
        depth, line = stack.pop()
        if not visible(line):
            continue
        out.append((depth, line))
        stack.extend((depth + 1, child) for child in reversed(line.children))
    return out, len(lines) - len(out)


def describe_supervisor(status: SupervisorStatus) -> str:
    if status.running:
        since = f", up {age(status.started_at)}" if status.started_at else ""
        return f"supervisor: running (pid {status.pid}{since})"
    if status.stale:
        return f"supervisor: not running (last one was pid {status.pid}); messages wait in inboxes"
    return "supervisor: not running; messages wait in inboxes until `meta-harness up`"


@click.command("ls")
@click.option("-a", "--all", "show_all", is_flag=True, help="Also list tasks that have ended.")
@json_option
@pass_cli
def ls(cli: CliContext, show_all: bool, as_json: bool) -> None:
    """List tasks as a tree, with task phase, session phase and unanswered messages."""
    workspace = cli.workspace()
    status = supervisor_status(workspace)
    phases = session_phases(workspace) if status.running else {}
    lines = [_task_line(row, phases, status.running) for row in task_rows(workspace)]
    known = {line.id for line in lines}
    lines += [_queued_line(q) for q in queued_tasks(workspace) if q.id not in known]
    rows, hidden = _tree(lines, show_all)
    if as_json:
        print_json(
            {
                "workspace": str(workspace.root),
                "supervisor": status.as_json(),
                "tasks": [line.as_json(depth) for depth, line in rows],
                "hidden": hidden,
            }
        )
        return
    click.echo(describe_supervisor(status))
    if not rows and not hidden:
        click.echo('no tasks yet: meta-harness submit "your prompt"')
    elif rows:
        cells = [
            [
                "  " * depth + line.id,
                line.phase,
                line.session,
                line.profile,
                str(line.pending),
                clip(line.title, TITLE_WIDTH),
            ]
            for depth, line in rows
        ]
        click.echo(table(["ID", "PHASE", "SESSION", "PROFILE", "PENDING", "TITLE"], cells))
    if hidden:
        click.echo(f"({hidden} ended task{'s' if hidden != 1 else ''} hidden; --all lists them)")


def _children(workspace: Workspace, task_id: str) -> list[str]:
    return [
        other
        for other in workspace.task_ids()
        if (read_json(workspace.task(other).record) or {}).get("parent") == task_id
    ]


@click.command()
@click.argument("task")
@json_option
@pass_cli
def show(cli: CliContext, task: str, as_json: bool) -> None:
    """Show TASK: its record, delivery counts, pending permission requests and result."""
    workspace = cli.workspace()
    task_id = resolve_task(workspace, task)
    row = task_row(workspace, task_id)
    if row is None:
        raise NotFound(f"task {task_id} has no readable task.json")
    status = supervisor_status(workspace)
    session = session_phases(workspace).get(task_id, "absent") if status.running else "-"
    pending = [r for r in requests(workspace, task_id) if r.pending]
    children = _children(workspace, task_id)
    paths = workspace.task(task_id)
    if as_json:
        print_json(
            {
                "task": row.record,
                "session": session,
                "messages": row.counts,
                "permissions": [r.as_json() for r in pending],
                "children": children,
                "transcript": str(paths.transcript),
                "supervisor": status.as_json(),
            }
        )
        return
    record = row.record
    counts = row.counts
    created = float(record.get("created_at") or 0.0)
    fields: list[tuple[str, str]] = [
        ("task", task_id),
        ("title", str(record.get("title", ""))),
        ("phase", f"{row.phase}   session: {session}"),
        ("profile", f"{record.get('profile')}   mode: {record.get('mode')}"),
        ("parent", str(record.get("parent") or "-")),
        ("children", ", ".join(children) or "-"),
        ("created", f"{stamp(created)} ({age(created)} ago)"),
        (
            "session id",
            f"{record.get('session_id') or '-'}   epoch: {record.get('epoch', 0)}"
            f"   last load: {record.get('last_load') or '-'}",
        ),
        (
            "messages",
            f"{counts['accepted']} accepted, {counts['delivered']} delivered, "
            f"{counts['pending']} pending, {counts['duplicates']} duplicates"
            + (
                f", {counts['waiting_files']} file(s) waiting in inbox/"
                if counts["waiting_files"]
                else ""
            ),
        ),
    ]
    for key in ("pinned_reason", "finished_by", "error", "result"):
        if record.get(key):
            fields.append((key.replace("_", " "), str(record[key])))
    fields.append(("transcript", str(paths.transcript)))
    for label, value in fields:
        click.echo(f"{label + ':':<12} {value}")
    if pending:
        click.echo("permission requests waiting for an answer:")
        now = time.time()
        for request in pending:
            title = request.record.get("title", "")
            kind = request.record.get("kind", "")
            waiting = (
                "  (answer written; the supervisor has not taken it yet)"
                if request.answer_waiting
                else ""
            )
            asked = float(request.record.get("created_at") or now)
            click.echo(f"  {request.id}  {kind}  {title}  ({age(asked, now)} ago){waiting}")
        click.echo(f"  answer: meta-harness approve {task_id} <request> | meta-harness reject …")
