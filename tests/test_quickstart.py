"""The README's first commands are the contract with a new user: they must stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUICKSTART_TIMEOUT = 600  # the first run creates .venv and installs the package


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the Quickstart section has no bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_quickstart_names_one_setup_and_demo_command_and_one_test_command() -> None:
    assert quickstart_commands() == ["bash scripts/demo", "bash scripts/test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test" in ci


@pytest.mark.skipif(
    not (REPO / ".venv" / "bin" / "python").exists() and os.environ.get("CI") != "true",
    reason="the quickstart sets up .venv; run `bash scripts/setup` once to include this test",
)
def test_the_quickstart_demo_runs_to_its_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("META_HARNESS_")}
    result = subprocess.run(
        ["bash", "scripts/demo", "--dir", str(tmp_path / "demo")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=QUICKSTART_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "summary" in result.stdout.lower()


def test_python_dash_m_meta_harness_is_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meta_harness", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "Usage:" in result.stdout
