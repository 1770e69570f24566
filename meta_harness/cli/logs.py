"""`logs TASK`: a task's transcript, as readable lines or as the stored JSONL, optionally live.

The human view uses `domain.transcript.render` for every record, except that the agent's
streamed text chunks are joined on one line as they arrive. `--raw` copies the stored
lines byte for byte. `-f` keeps following (same follower as `send --wait`) until Ctrl-C (exit 130).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from meta_harness.base.jsonl import read_records
from meta_harness.cli.context import CliContext, pass_cli
from meta_harness.cli.follow import Waker, follow_lines, follow_records, read_lines
from meta_harness.cli.output import clock
from meta_harness.cli.taskref import resolve_task
from meta_harness.domain.transcript import Direction, render, session_update, update_text

Echo = Callable[..., None]


class TranscriptPrinter:
    """Prints transcript records as lines; consecutive agent text chunks share a line."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.open_line = False

    def feed(self, record: dict[str, Any]) -> None:
        update = session_update(record)
        ts = clock(float(record.get("ts") or 0.0))
        if (
            update is not None
            and record.get("dir") == Direction.IN
            and update.get("sessionUpdate") == "agent_message_chunk"
        ):
            if not self.open_line:
                replay = "(replay) " if record.get("load") else ""
                self.echo(f"{ts} {replay}agent: ", nl=False)
                self.open_line = True
            text = update_text(update)
            self.echo(text, nl=False)
            if text.endswith("\n"):
                self.open_line = False
            return
        line = render(record)
        if line is None:
            return
        self.end_line()
        self.echo(f"{ts} {line.rstrip()}")

    def end_line(self) -> None:
        if self.open_line:
            self.echo("")
            self.open_line = False


def _echo(text: str = "", nl: bool = True) -> None:
    click.echo(text, nl=nl)
    if not nl:
        sys.stdout.flush()


@click.command()
@click.argument("task")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new records until Ctrl-C.")
@click.option("--raw", is_flag=True, help="Print the stored JSON lines, byte for byte.")
@click.option("--json", "as_json", is_flag=True, help="Same as --raw.")
@pass_cli
def logs(cli: CliContext, task: str, follow: bool, raw: bool, as_json: bool) -> None:
    """Print the transcript of TASK: every ACP frame both ways, plus supervisor notes."""
    workspace = cli.workspace()
    paths = workspace.task(resolve_task(workspace, task))
    with Waker(paths.dir) as waker:
        if raw or as_json:
            out = sys.stdout.buffer
            lines: Iterable[bytes] = (
                follow_lines(paths.transcript, 0, waker)
                if follow
                else read_lines(paths.transcript, 0)[0]
            )
            for line in lines:
                out.write(line)
                out.flush()
            return
        printer = TranscriptPrinter(_echo)
        records: Iterable[dict[str, Any]] = (
            (record for _, record in follow_records(paths.transcript, 0, waker))
            if follow
            else read_records(paths.transcript)
        )
        try:
            for record in records:
                printer.feed(record)
        finally:
            printer.end_line()
