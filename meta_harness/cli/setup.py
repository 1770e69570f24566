"""`init` (a workspace from the template) and `up` (the supervisor, in the foreground).

The template ships inside the wheel as `meta_harness/workspace-template` (pyproject
force-includes it); in a source checkout it is `workspace-template/` beside the package.
`.keep` files only keep empty directories in git and are not copied. `up` is the one
command that imports the runtime, lazily.
"""

from __future__ import annotations

import logging
import os
import shutil
from importlib import resources
from pathlib import Path

import click

from meta_harness.base.errors import Conflict, UsageError, WorkspaceError
from meta_harness.base.layout import CONFIG_FILE, STATE_DIR, Workspace
from meta_harness.cli.context import CliContext, pass_cli

KEEP_FILE = ".keep"
LOG_LEVELS = ("debug", "info", "warning", "error")


def template_dir() -> Path:
    """The workspace template of this installation."""
    packaged = resources.files("meta_harness").joinpath("workspace-template")
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / "workspace-template"
    if source.is_dir():
        return source
    raise WorkspaceError("the workspace template is missing from this installation")


def copy_template(target: Path) -> list[str]:
    """Copy the template into `target` (created if needed); existing files are kept.

    Returns the paths (relative) of the files copied.
    """
    source = template_dir()
    copied: list[str] = []
    for directory, _, files in os.walk(source):
        rel = Path(directory).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            if name == KEEP_FILE:
                continue
            dest = target / rel / name
            if dest.exists():
                continue
            shutil.copyfile(Path(directory) / name, dest)
            copied.append(str(rel / name))
    Workspace.at(target).ensure_dirs()
    return copied


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), required=False)
@pass_cli
def init(cli: CliContext, directory: str | None) -> None:
    """Create a workspace in DIRECTORY (default: --workspace, else here) from the template.

    Writes meta-harness.toml (every setting, commented), AGENTS.md, inbox/, tasks/ and
    skills/. Files that already exist are kept; an existing workspace is refused.
    """
    target = Path(directory or cli.workspace_option or ".").expanduser().resolve()
    found = [name for name in (CONFIG_FILE, STATE_DIR) if (target / name).exists()]
    if found:
        raise Conflict(
            f"{target} is already a meta-harness workspace ({', '.join(found)}); nothing changed"
        )
    copied = copy_template(target)
    click.echo(f"initialised {target}")
    for rel in copied:
        click.echo(f"  {rel}")
    click.echo("next: meta-harness up   (in that directory; Ctrl-C stops it cleanly)")


@click.command()
@click.argument("directory", required=False)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    help="Supervisor log level (logs go to stderr).",
)
@click.option(
    "--http",
    metavar="HOST:PORT",
    default=None,
    help="Also serve the JSON API, live streams and dashboard there (port 0: any free port). "
    "Loopback needs no token; any other address requires the workspace token.",
)
@pass_cli
@click.pass_context
def up(
    ctx: click.Context, cli: CliContext, directory: str | None, log_level: str, http: str | None
) -> None:
    """Run the supervisor of DIRECTORY (default: this workspace) until SIGINT/SIGTERM."""
    workspace = cli.workspace(directory)
    config = cli.config(workspace)
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    from meta_harness.mcpserver.service import mcp_service
    from meta_harness.runtime.supervisor import run

    mcp, entries, endpoints = mcp_service(workspace, config)
    services = [mcp]
    if http is not None:
        from meta_harness.web.service import http_service

        host, port = _host_port(http)
        web, web_endpoints = http_service(host, port)
        services.append(web)
        endpoints.update(web_endpoints)
    ctx.exit(
        run(
            workspace,
            config,
            overrides=cli.overrides,
            services=services,
            mcp_entries=entries,
            endpoints=endpoints,
        )
    )


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--http takes HOST:PORT (e.g. 127.0.0.1:8700), got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
