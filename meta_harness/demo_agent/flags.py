"""The command line of the demo agent: its flags and the state dir's fallbacks.

`--state-dir`, `--no-load`, `--no-resume`, `--no-close`, `--fail-load` and `--log-level` are
parsed by hand on the fast path and by argparse otherwise (`--help`, typos, abbreviations); the
state dir falls back to `$MH_DEMO_STATE_DIR`, then `./.demo-agent`.
"""

from __future__ import annotations

import os
import sys

STATE_DIR_ENV = "MH_DEMO_STATE_DIR"
DEFAULT_STATE_DIR = ".demo-agent"


class Options:
    """Command-line switches.

    Exact flag spellings are parsed by hand (argparse alone costs ~10 ms of startup); anything
    else (`--help`, a typo, an abbreviation) goes to argparse, which defines the interface.
    """

    SWITCHES = ("--no-load", "--no-resume", "--no-close", "--fail-load")
    VALUED = ("--state-dir", "--log-level")

    def __init__(self, argv: list[str] | None = None) -> None:
        args = sys.argv[1:] if argv is None else argv
        values = self.fast_parse(args)
        if values is None:
            values = self.slow_parse(args)
        state_dir = values.get("--state-dir") or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
        self.state_dir = os.path.abspath(str(state_dir))
        self.load = not values.get("--no-load")
        self.resume = not values.get("--no-resume")
        self.close = not values.get("--no-close")
        self.fail_load = bool(values.get("--fail-load"))
        self.log_level = str(values.get("--log-level") or "INFO").upper()

    @classmethod
    def fast_parse(cls, args: list[str]) -> dict[str, str | bool] | None:
        values: dict[str, str | bool] = {}
        rest = iter(args)
        for arg in rest:
            name, eq, value = arg.partition("=")
            if name in cls.SWITCHES and not eq:
                values[name] = True
            elif name in cls.VALUED:
                found = value if eq else next(rest, None)
                if found is None or found.startswith("-"):
                    return None
                values[name] = found
            else:
                return None
        return values

    @classmethod
    def slow_parse(cls, args: list[str]) -> dict[str, str | bool]:
        import argparse

        parser = argparse.ArgumentParser(
            prog="python -m meta_harness.demo_agent", description="Deterministic demo ACP agent."
        )
        parser.add_argument(
            "--state-dir", help=f"session state (default ${STATE_DIR_ENV} or ./{DEFAULT_STATE_DIR})"
        )
        parser.add_argument("--no-load", action="store_true", help="do not offer session/load")
        parser.add_argument("--no-resume", action="store_true", help="do not offer session/resume")
        parser.add_argument("--no-close", action="store_true", help="do not offer session/close")
        parser.add_argument(
            "--fail-load", action="store_true", help="session/load always fails with -32002"
        )
        parser.add_argument("--log-level", help="stderr log level (default INFO)")
        ns = vars(parser.parse_args(args))
        return {f"--{key.replace('_', '-')}": value for key, value in ns.items() if value}
