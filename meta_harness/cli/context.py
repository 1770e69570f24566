"""What every command shares: the `--workspace` and `--set` global options, resolved lazily.

`CliContext` turns them into a `Workspace` (explicit path, else the nearest workspace
above the current directory) and, only for commands that need it, a loaded `Config`:
the config models cost ~150 ms of pydantic, so `ls`, `show`, `send` and `logs` never
load them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from meta_harness.base.errors import WorkspaceError
from meta_harness.base.layout import Workspace

if TYPE_CHECKING:
    from meta_harness.base.config import Config


def is_workspace(workspace: Workspace) -> bool:
    """Whether the directory was initialised (a config file or the supervisor's state dir)."""
    return workspace.config_file.is_file() or workspace.state_dir.is_dir()


@dataclass(frozen=True)
class CliContext:
    workspace_option: str | None
    overrides: tuple[str, ...]

    def workspace(self, directory: str | None = None) -> Workspace:
        """`directory`, else `--workspace`, else the workspace around the current directory."""
        chosen = directory or self.workspace_option
        if chosen is None:
            return Workspace.find()
        workspace = Workspace.at(chosen)
        if not workspace.root.is_dir():
            raise WorkspaceError(f"{workspace.root} does not exist; run `meta-harness init DIR`")
        if not is_workspace(workspace):
            raise WorkspaceError(
                f"{workspace.root} is not a meta-harness workspace (no meta-harness.toml); "
                "run `meta-harness init DIR`"
            )
        return workspace

    def config(self, workspace: Workspace | None) -> Config:
        from meta_harness.base.config import load_config

        return load_config(workspace, overrides=self.overrides)


pass_cli = click.make_pass_decorator(CliContext)
