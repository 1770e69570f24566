"""Benchmark: `meta-harness ls` and `meta-harness send --wait` as whole processes.

Starts a real supervisor on a throw-away workspace (the built-in demo agent), warms one
task's session, then times complete CLI processes from fork to exit (what a person or a
script waits for): `ls` with that one task, `ls` with 500 more task records, `show`, and
`send TASK TEXT --wait` (publish, supervisor delivers, demo agent answers, the reply is
streamed, the process exits). Goal: `send --wait` p50 <= 250 ms on a warm session.
Prints figures; asserts nothing. Run: `/work/venv/bin/python benchmarks/cli_latency.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    isolate_this_process,
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    running_supervisor,
    warm_task,
)

from meta_harness.base.layout import Workspace
from meta_harness.domain.tasks import TaskRecord, write_task

TASK = "bench-cli"
EXTRA_TASKS = 500
GOAL_SEND_WAIT_MS = 250.0


def command() -> list[str]:
    script = Path(PYTHON).parent / "meta-harness"
    return [str(script)] if script.is_file() else [PYTHON, "-m", "meta_harness"]


def timed(argv: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) time of `runs` complete processes, in ms.

    CPU time barely moves with the load other processes put on the machine; wall time
    does. A failed run stops the benchmark.
    """
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        wall.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        cpu.append(used * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return wall, cpu


def add_records(ws: Workspace, count: int) -> None:
    """Task records as the supervisor writes them (no agents): what `ls` has to read."""
    for i in range(count):
        paths = ws.task(f"t-bench-{i:04d}")
        paths.inbox.mkdir(parents=True)
        write_task(paths, TaskRecord(id=paths.id, title=f"synthetic task {i}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="mh-bench-cli-") as tmp:
        root = Path(tmp)
        isolate_this_process(root)
        ws = make_workspace(root)
        env = isolated_env(root)
        cli = [*command(), "-w", str(ws.root)]
        series: list[tuple[str, tuple[list[float], list[float]]]] = [
            ("python -c pass", timed([PYTHON, "-c", "pass"], env, args.runs))
        ]
        with running_supervisor(ws, env, root / "supervisor.log") as sup:
            warm_task(ws, sup, TASK, warmups=3)
            series.append(("meta-harness ls (1 task)", timed([*cli, "ls"], env, args.runs)))
            series.append(("meta-harness show", timed([*cli, "show", TASK], env, args.runs)))
            send = [*cli, "send", TASK, "hello", "--wait", "--timeout", "30"]
            timed(send, env, 3)  # the first turns after warm-up
            series.append(("meta-harness send --wait", timed(send, env, args.runs)))
            add_records(ws, EXTRA_TASKS)
            many = timed([*cli, "ls"], env, args.runs)
            series.append((f"meta-harness ls ({EXTRA_TASKS + 1} tasks)", many))
        print_rows("whole-process wall time (fork to exit)", [(n, w) for n, (w, _) in series])
        print_rows("CPU time of the process (user + system)", [(n, c) for n, (_, c) in series])
        print(f"goal: send --wait p50 <= {GOAL_SEND_WAIT_MS:.0f} ms on a warm session")


if __name__ == "__main__":
    main()
