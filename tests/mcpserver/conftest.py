"""Fixtures of the MCP server tests: a workspace with a config, and its loaded config.

The workspace config adds a `shallow` profile (max_depth 1) and a `narrow` one
(max_children 2) so the limits can be reached with a handful of tasks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meta_harness.base.config import Config, load_config
from meta_harness.base.layout import Workspace

WORKSPACE_TOML = """\
[profiles.shallow]
extends = "demo"
limits = { max_depth = 1 }

[profiles.narrow]
extends = "demo"
limits = { max_children = 2 }
"""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no user config layer
    for key in [k for k in os.environ if k.startswith("META_HARNESS_")]:
        monkeypatch.delenv(key)
    root = tmp_path / "ws"
    root.mkdir()
    (root / "meta-harness.toml").write_text(WORKSPACE_TOML)
    workspace = Workspace.at(root)
    workspace.ensure_dirs()
    return workspace


@pytest.fixture
def config(ws: Workspace) -> Config:
    return load_config(ws)
