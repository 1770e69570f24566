"""The HTTP surface reads and publishes files only: it never imports the runtime, the agent
layer, the ACP SDK, or (unless handed an MCP server) the MCP SDK."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import REPO

CHECK = """
import sys
import meta_harness.web.app, meta_harness.web.service
bad = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("acp", "mcp")
    or m.startswith(("meta_harness.runtime", "meta_harness.agent", "meta_harness.cli"))
)
print(",".join(bad))
"""


def test_the_web_package_imports_only_base_and_domain() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == ""
