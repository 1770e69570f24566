"""`meta-harness demo` end to end: a real supervisor, killed and restarted, on the demo agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.procs import marked_processes

DEMO_BOUND = 90.0  # the demo's own deadline; the subprocess gets a little more


def test_the_demo_runs_its_scenario_and_exits_0(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("META_HARNESS_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "meta_harness",
            "demo",
            "--dir",
            str(root),
            "--timeout",
            str(DEMO_BOUND),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEMO_BOUND + 30,
    )
    out = proc.stdout
    try:
        assert proc.returncode == 0, f"{out}\n{proc.stderr}"
        assert "echo> echo: Hello! Please say this back to me." in out
        assert "echo> Still here. This reply streams word by word," in out
        assert "notes.txt now holds: 'written by the demo agent, with your approval'" in out
        assert "plan> echo: Are you still there after the crash?" in out
        assert "supervisor runs: 2 (1 SIGKILLed)" in out
        assert "messages: 6 accepted, 6 delivered, 0 pending" in out
        assert "supervisor exited with code 0" in out
        assert (root / "notes.txt").is_file()  # --dir workspaces are kept
    finally:
        leftovers = marked_processes(root.resolve())
        for leftover in leftovers:
            leftover.kill()
    assert not leftovers, f"the demo left agent processes behind: {leftovers}"
