"""The `meta-harness` command: global options, lazily imported subcommands, errors as one line.

Subcommand modules are imported only when their command runs (`send` must not pay for
`up`'s runtime or the config models). Every `MetaHarnessError` becomes one line
`error: <message>` on stderr and its `exit_code`; an `OSError` on a workspace file
becomes one line too (exit 74); Ctrl-C exits 130 quietly. Tracebacks are for bugs only.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any, NoReturn

import click

from meta_harness import __version__
from meta_harness.base.errors import MetaHarnessError
from meta_harness.cli.context import CliContext

EX_IOERR = 74  # sysexits: an I/O error on a file
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report an interrupted command

# name -> (module, attribute); the order is the order of `--help`
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("meta_harness.cli.setup", "init"),
    "up": ("meta_harness.cli.setup", "up"),
    "demo": ("meta_harness.cli.demo", "demo"),
    "submit": ("meta_harness.cli.tasks", "submit"),
    "send": ("meta_harness.cli.tasks", "send"),
    "cancel": ("meta_harness.cli.tasks", "cancel"),
    "complete": ("meta_harness.cli.tasks", "complete"),
    "ls": ("meta_harness.cli.views", "ls"),
    "show": ("meta_harness.cli.views", "show"),
    "logs": ("meta_harness.cli.logs", "logs"),
    "permissions": ("meta_harness.cli.permissions", "permissions"),
    "approve": ("meta_harness.cli.permissions", "approve"),
    "reject": ("meta_harness.cli.permissions", "reject"),
    "config": ("meta_harness.cli.config_cmd", "config"),
    "agents": ("meta_harness.cli.config_cmd", "agents"),
    "stats": ("meta_harness.cli.stats_cmd", "stats"),
}


def _fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    ctx.exit(code)


def _os_message(e: OSError) -> str:
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or e}{where}"


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        command = getattr(importlib.import_module(target[0]), target[1])
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MetaHarnessError as e:
            _fail(ctx, e.message, e.exit_code)
        except KeyboardInterrupt:
            # Ctrl-C ends `logs -f` and `send --wait`: not an error, and no "Aborted!"
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # the reader went away (`meta-harness ls | head`): not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)
        except OSError as e:
            _fail(ctx, _os_message(e), EX_IOERR)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-w",
    "--workspace",
    metavar="DIR",
    help="Workspace directory (default: the one around the current directory).",
)
@click.option(
    "--set",
    "overrides",
    metavar="KEY=VALUE",
    multiple=True,
    help="Override a config value (TOML value), e.g. --set supervisor.max_live=4. Repeatable.",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv: debug).")
@click.version_option(__version__, "-V", "--version", prog_name="meta-harness")
@click.pass_context
def cli(
    ctx: click.Context, workspace: str | None, overrides: tuple[str, ...], verbose: int
) -> None:
    """Supervise many ACP coding agents through files in a workspace directory.

    Every command works whether or not a supervisor is running: commands only write drop
    files (messages wait in inboxes until one runs) and read the files it writes.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = CliContext(workspace, overrides)


def main() -> None:
    """Entry point of the `meta-harness` script and `python -m meta_harness`."""
    cli(prog_name="meta-harness")
