"""Benchmark: `meta-harness send TASK "…" --wait` as a whole process, on a warm session.

Starts a real supervisor subprocess on a throw-away workspace (empty meta-harness.toml,
demo agent), warms one task's session, runs the command once unmeasured, then RUNS
times: wall time from spawning the CLI process to its exit (the workspace is found from
the current directory, the CLI's default). Context rows: bare interpreter start and
`import meta_harness.cli.main`, i.e. what every CLI call pays before doing anything.
Goal: send --wait p50 <= 250 ms. If the CLI (meta_harness/cli/main.py) or its
`send --wait` is not there yet, says "pending" and exits 0. Prints figures; asserts nothing.
Run: `/work/venv/bin/python benchmarks/send_wait.py [--quick] [--runs N]`.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    REPO,
    describe,
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    running_supervisor,
    wal_times,
    warm_task,
)

GOAL_P50_MS = 250.0
TASK = "bench-send"
CLI_TIMEOUT = 30.0  # one send --wait on a warm session; far above anything healthy
CONTEXT_RUNS = 5


def cli_command() -> list[str]:
    script = Path(PYTHON).parent / "meta-harness"
    return [str(script)] if script.exists() else [PYTHON, "-m", "meta_harness"]


def timed(
    cmd: list[str], cwd: Path, env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return (time.perf_counter() - t0) * 1000, done


def pending(reason: str) -> None:
    print(f"send --wait: PENDING ({reason})")
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 runs")
    parser.add_argument("--runs", type=int, default=None, help="measured runs (20)")
    parser.add_argument("--cli", default=None, help="command to run instead of meta-harness")
    args = parser.parse_args()
    runs = args.runs or (10 if args.quick else 20)
    with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
        print(f"send --wait, {machine(Path(tmp))}, {runs} runs")
    if args.cli is None and not (REPO / "meta_harness" / "cli" / "main.py").exists():
        pending("meta_harness/cli/main.py does not exist yet")
    cli = shlex.split(args.cli) if args.cli else cli_command()
    with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
        root = Path(tmp)
        ws = make_workspace(root)
        env = isolated_env(root)
        bare = [timed([PYTHON, "-c", "pass"], root, env)[0] for _ in range(CONTEXT_RUNS)]
        imports: list[float] = []
        import_label = "python -c 'import meta_harness.cli.main'"
        for _ in range(CONTEXT_RUNS):
            ms, done = timed([PYTHON, "-c", "import meta_harness.cli.main"], root, env)
            imports.append(ms)
            if done.returncode != 0:
                import_label += " (fails)"
                break
        sends: list[float] = []
        with running_supervisor(ws, env, root / "supervisor.log") as sup:
            warm_task(ws, sup, TASK, 3)
            for i in range(runs + 1):  # the first is a warm-up (page cache, .pyc files)
                ms, done = timed([*cli, "send", TASK, f"hello {i}", "--wait"], ws.root, env)
                if done.returncode != 0:
                    tail = (done.stderr or done.stdout).decode(errors="replace").strip()[-400:]
                    pending(f"`meta-harness send … --wait` exited {done.returncode}: {tail}")
                if i:
                    sends.append(ms)
        acks = sum(1 for (op, _), _ts in wal_times(ws, TASK).items() if op == "ack")
    print_rows(
        "whole CLI process, spawn to exit",
        [
            ("python -c pass", bare),
            (import_label, imports),
            ("meta-harness send TASK … --wait", sends),
        ],
    )
    print(f"  WAL acks in the task: {acks} (3 warm-ups + first turn + {runs + 1} sends expected)")
    d = describe(sends)
    verdict = "meets" if d["p50"] <= GOAL_P50_MS else "MISSES"
    print(
        f"send --wait: p50 {d['p50']:.1f} ms, p95 {d['p95']:.1f} ms "
        f"(goal p50 <= {GOAL_P50_MS:g} ms): {verdict} the goal"
    )


if __name__ == "__main__":
    main()
