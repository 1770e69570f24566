"""The dashboard in a real headless Chromium against a supervisor running the demo agent:
a task's output appears live, a permission is approved by a click, messages are sent,
a hidden tab resumes its stream without gaps or doubles, and agent text stays text.

Needs Debian's `chromium` (installed with apt-get when missing and possible) and
playwright-core from npm (installed into ~/.cache/meta-harness/playwright when missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from meta_harness.base.layout import Workspace
from tests.support.procs import Procs
from tests.web.conftest import start_web_supervisor

pytestmark = pytest.mark.browser

PLAYWRIGHT_VERSION = "1.65.1"
PLAYWRIGHT_DIR = Path(
    os.environ.get("MH_PLAYWRIGHT_DIR", Path.home() / ".cache/meta-harness/playwright")
)
SCRIPT = Path(__file__).with_name("dashboard_browser.js")
INSTALL_TIMEOUT = 600.0  # apt-get / npm on a slow mirror
BROWSER_TIMEOUT = 180.0  # the whole browser session (each page wait is bounded at 30 s)


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(argv, env=env, capture_output=True, timeout=INSTALL_TIMEOUT)
            if done.returncode != 0:
                break
        found = shutil.which("chromium")
        if found:
            return found
    pytest.skip(
        "!!! BROWSER TEST SKIPPED: Debian's `chromium` is not installed and could not be "
        "installed (run `apt-get install -y chromium` as root) !!!"
    )


def playwright_core() -> Path:
    package = PLAYWRIGHT_DIR / "node_modules" / "playwright-core"
    if (package / "package.json").is_file():
        return package
    if shutil.which("npm"):
        PLAYWRIGHT_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(PLAYWRIGHT_DIR),
                "--no-audit",
                "--no-fund",
                "--save-exact",
                f"playwright-core@{PLAYWRIGHT_VERSION}",
            ],
            capture_output=True,
            timeout=INSTALL_TIMEOUT,
        )
    if (package / "package.json").is_file():
        return package
    pytest.skip(
        f"!!! BROWSER TEST SKIPPED: playwright-core is not in {PLAYWRIGHT_DIR} and npm could "
        "not install it !!!"
    )


def test_the_dashboard_streams_a_task_takes_a_click_approval_and_messages(
    ws: Workspace, procs: Procs, tmp_path: Path
) -> None:
    browser = chromium()
    package = playwright_core()
    _, url = start_web_supervisor(procs)
    screenshot = tmp_path / "dashboard.png"
    done = subprocess.run(
        ["node", str(SCRIPT), str(package), browser, url + "/", str(screenshot)],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
    )
    assert done.returncode == 0, (
        f"{done.stderr}\n--- supervisor ---\n{procs.supervisors[0].output()}"
    )
    seen = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert seen["closedWhenHidden"] is True
    assert seen["streamChunksOnce"] and seen["hiddenReplyOnce"] and seen["secondTabSame"]
    assert seen["literalXss"] is True and seen["injected"] is False
    assert seen["treeTitle"] == "<b>bold title</b>"
    assert seen["maxOpenStreams"] == 1
    assert seen["pageErrors"] == []
    top, height, total = seen["scroll"]
    assert top + height >= total - 40, "the transcript view follows new output"
    assert "Edit" in seen["permissionText"]
    assert (ws.root / "notes.txt").read_text() == "hi"
    assert screenshot.stat().st_size > 10_000
    [request] = [p for p in ws.task(seen["task"]).permissions.iterdir() if p.suffix == ".json"]
    assert orjson.loads(request.read_bytes())["answered_by"] == "web"
