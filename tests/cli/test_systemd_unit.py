"""The systemd template unit passes `systemd-analyze verify` once instantiated for a workspace.

The unit names `/usr/local/bin/meta-harness`; the test points it at this environment's
script (as the README tells users to) and verifies an instance for a real workspace.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meta_harness.base.layout import Workspace

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "meta-harness@.service"
INSTALLED = "/usr/local/bin/meta-harness"
COMPLAINTS = ("Failed to parse", "Unknown key", "ignoring", "Invalid", "is not executable")


def script() -> str:
    found = Path(sys.executable).parent / "meta-harness"
    if not found.is_file():
        pytest.skip("the meta-harness script is not installed in this environment")
    return str(found)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is missing")
def test_the_unit_verifies_for_a_workspace_instance(ws: Workspace, tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert INSTALLED in text
    escaped = subprocess.run(
        ["systemd-escape", "--path", str(ws.root)], capture_output=True, text=True, check=True
    ).stdout.strip()
    units = tmp_path / "units"
    units.mkdir()
    instance = units / f"meta-harness@{escaped}.service"
    instance.write_text(text.replace(INSTALLED, script()))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not [line for line in output.splitlines() if any(c in line for c in COMPLAINTS)], output


def test_the_unit_restarts_on_failure_and_kills_the_whole_group() -> None:
    settings = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    assert settings["ExecStart"] == f"{INSTALLED} up %f"
    assert settings["Restart"] == "on-failure"
    assert settings["KillMode"] == "control-group"
    assert {"StartLimitBurst", "StartLimitIntervalSec"} <= set(settings)
    assert set(settings["RestartPreventExitStatus"].split()) == {"66", "75", "78"}
