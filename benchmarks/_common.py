"""Shared pieces of the benchmark scripts: workspaces, a supervisor subprocess, log tails, stats.

Owns what every `benchmarks/*.py` needs to measure a real supervisor from outside: a
throw-away workspace with an isolated config, the supervisor run as a subprocess (and
every process it started ended afterwards, by pid), publishing drop files the way a
surface does, following an append-only log, and printing percentiles. Asserts nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil

from meta_harness.base.fs import write_new
from meta_harness.base.jsonl import read_from, read_records
from meta_harness.base.layout import Workspace

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
WORKSPACE_MARKER = "META_HARNESS_WORKSPACE"  # the env marker agents carry (runtime.launch)

BOOT_TIMEOUT = 30.0  # supervisor import + first agent spawn + session/new, on a loaded box
MESSAGE_TIMEOUT = 10.0  # one demo-agent turn; anything near this is a hang, not a figure
STOP_TIMEOUT = 10.0  # SIGTERM -> every runner swaps out (agents get 2 s for stdin EOF)
KILL_TIMEOUT = 5.0  # after SIGKILL the kernel reaps promptly
POLL_INTERVAL = 0.0002  # how often a follower re-reads a log; only delays the next send

SUPERVISOR_CODE = """
import logging, sys
from meta_harness.base.config import load_config
from meta_harness.base.layout import Workspace
from meta_harness.runtime.supervisor import run
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
ws = Workspace.at(sys.argv[1])
sys.exit(run(ws, load_config(ws)))
"""


# -- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def describe(values: list[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "p50": statistics.median(values),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


def print_rows(title: str, rows: list[tuple[str, list[float]]], unit: str = "ms") -> None:
    """One line per series: p50, p95, p99, max and n."""
    print(title)
    width = max(len(name) for name, _ in rows) + 2
    print(f"  {'':<{width}}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}{'n':>6}")
    for name, values in rows:
        d = describe(values)
        print(
            f"  {name:<{width}}{d['p50']:>9.2f}{d['p95']:>9.2f}{d['p99']:>9.2f}"
            f"{d['max']:>9.2f}{int(d['n']):>6}   {unit}"
        )


def fdatasync_probe(directory: Path, count: int = 50) -> float:
    """Median ms of a 100-byte append + fdatasync here now: how busy the disk is."""
    path = directory / ".fdatasync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    samples: list[float] = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 99 + b"\n")
            os.fdatasync(fd)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(samples)


def machine(directory: Path | None = None) -> str:
    """CPUs, Python, date, load average and (given a directory) the fdatasync probe."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    probe = ""
    if directory is not None:
        probe = f", fdatasync p50 {fdatasync_probe(directory):.2f} ms"
    return (
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load}{probe}"
    )


# -- workspaces --------------------------------------------------------------------------------


def make_workspace(root: Path, toml: str = "") -> Workspace:
    """A fresh workspace under `root/ws` with `toml` as its meta-harness.toml."""
    ws = Workspace.at(root / "ws")
    ws.root.mkdir(parents=True)
    ws.config_file.write_text(toml, "utf-8")
    ws.ensure_dirs()
    return ws


def isolated_env(root: Path) -> dict[str, str]:
    """This environment minus meta-harness settings, with a user config dir nobody wrote."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("META_HARNESS")}
    env["XDG_CONFIG_HOME"] = str(root / "xdg")
    env["PYTHONPATH"] = str(REPO)
    return env


def isolate_this_process(root: Path) -> None:
    """Make in-process `load_config` ignore the user's config and META_HARNESS_* variables."""
    for key in [k for k in os.environ if k.startswith("META_HARNESS")]:
        del os.environ[key]
    os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")


def publish(directory: Path, name: str, record: dict[str, Any]) -> None:
    """Publish a drop file as a surface does: written under a dot-name, renamed into place."""
    write_new(directory / name, orjson.dumps(record))


# -- logs ------------------------------------------------------------------------------------------


class Follower:
    """Reads an append-only JSONL log from where it left off."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def poll(self) -> list[dict[str, Any]]:
        records, self.offset = read_from(self.path, self.offset)
        return [r for _, r in records]

    def wait_for(
        self, op: str, message_id: str, timeout: float = MESSAGE_TIMEOUT
    ) -> dict[str, Any]:
        """The first record with this `op` and `id` (polling the file)."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.poll():
                if record.get("op") == op and record.get("id") == message_id:
                    return record
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {op!r} record for {message_id} in {self.path}")
            time.sleep(POLL_INTERVAL)


def task_record(ws: Workspace, task_id: str) -> dict[str, Any]:
    return dict(orjson.loads(ws.task(task_id).record.read_bytes()))


def received_records(ws: Workspace, task_id: str) -> list[dict[str, Any]]:
    """The demo agent's receipt log of the task's session (`ts` = time.time() at arrival)."""
    session_id = task_record(ws, task_id)["session_id"]
    path = ws.task(task_id).dir / "agent" / "sessions" / f"{session_id}.received.jsonl"
    return read_records(path)


def prompt_frames(ws: Workspace, task_id: str) -> dict[str, float]:
    """message id -> transcript `ts` of the outgoing `session/prompt` frame carrying it."""
    out: dict[str, float] = {}
    for record in read_records(ws.task(task_id).transcript):
        frame = record.get("frame")
        if record.get("dir") != "out" or not isinstance(frame, dict):
            continue
        if frame.get("method") != "session/prompt":
            continue
        meta = (frame.get("params") or {}).get("_meta") or {}
        message_id = meta.get("messageId")
        if isinstance(message_id, str):
            out.setdefault(message_id, float(record["ts"]))
    return out


def wal_times(ws: Workspace, task_id: str) -> dict[tuple[str, str], float]:
    """(op, message id) -> the first WAL record's `ts`."""
    out: dict[tuple[str, str], float] = {}
    for record in read_records(ws.task(task_id).wal):
        out.setdefault((str(record.get("op")), str(record.get("id"))), float(record["ts"]))
    return out


# -- the supervisor subprocess ---------------------------------------------------------------------


class SupervisorProcess:
    """`meta_harness.runtime.supervisor.run` in a subprocess; `stop()` ends all it started."""

    def __init__(self, ws: Workspace, env: dict[str, str], log: Path) -> None:
        self.ws = ws
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PYTHON, "-c", SUPERVISOR_CODE, str(ws.root)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
            cwd=str(ws.root),
            start_new_session=True,
        )
        self._seen: dict[int, psutil.Process] = {}
        self.stop_timeout = STOP_TIMEOUT

    def remember_children(self) -> None:
        """Note the supervisor's descendants now (reaper, agents) so stop() can end them."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self._seen[child.pid] = child

    def _ours(self) -> list[psutil.Process]:
        """Descendants seen, plus any process carrying this workspace's agent marker."""
        found = dict(self._seen)
        mine = str(self.ws.root)
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(WORKSPACE_MARKER) == mine:
                    found[proc.pid] = proc
        found.pop(os.getpid(), None)
        return [p for p in found.values() if _running(p)]

    def stop(self) -> int | None:
        """SIGTERM, bounded wait, SIGKILL by pid; then end leftovers of this run by pid."""
        self.remember_children()
        code: int | None = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            print(f"  (supervisor did not stop within {self.stop_timeout:g} s of SIGTERM; SIGKILL)")
            self.proc.kill()
            self.proc.wait(KILL_TIMEOUT)
        leftovers = self._ours()
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=KILL_TIMEOUT)
        self._log.close()
        return code


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@contextlib.contextmanager
def running_supervisor(
    ws: Workspace, env: dict[str, str], log: Path
) -> Iterator[SupervisorProcess]:
    sup = SupervisorProcess(ws, env, log)
    try:
        yield sup
    finally:
        sup.stop()


def warm_task(ws: Workspace, sup: SupervisorProcess, task_id: str, warmups: int) -> Follower:
    """Create `task_id` by a top-level drop, wait for its first turn, then `warmups` more."""
    publish(ws.inbox, f"{task_id}.json", {"id": task_id, "prompt": "warm up"})
    wal = Follower(ws.task(task_id).wal)
    try:
        wal.wait_for("ack", f"prompt-{task_id}", BOOT_TIMEOUT)
    except TimeoutError:
        code = sup.proc.poll()
        raise SystemExit(f"the supervisor did not run the first turn (exit code {code})") from None
    sup.remember_children()
    for i in range(warmups):
        message_id = f"warm-{i}"
        publish(ws.task(task_id).inbox, f"{message_id}.json", {"id": message_id, "text": "warm"})
        wal.wait_for("ack", message_id)
    return wal
