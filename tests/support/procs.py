"""Real supervisor processes for tests: start, kill, drop files, wait on files and pids.

`Procs` starts supervisors (and stray "leftover" processes) each in its own process
group, remembers them, and at teardown ends them and reports any process still carrying
the workspace marker (an orphan). The readers parse the files a supervisor writes (WAL,
events, task record, transcript, the demo agent's received log). Every wait is bounded
by `WAIT` and wakes on file changes (watchfiles) or process exits (psutil), never a sleep.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psutil
from watchfiles import watch

REPO = Path(__file__).resolve().parents[2]  # the checkout (the package is installed editable)
WAIT = 30.0  # the bound of every wait: generous for a loaded 2-core CI box, never a sleep
RECHECK_MS = 250  # a file wait re-checks its condition at least this often (races, pids)
GONE_TICK = 0.1  # process waits re-check zombies (dead, not yet reaped) this often
STOP_GRACE = 10.0  # SIGTERM → exit of a supervisor at teardown before SIGKILL
MARKER = "META_HARNESS_WORKSPACE"  # the env var every agent of a workspace carries
CRASH_ENV = "META_HARNESS_CRASH_AT"

T = TypeVar("T")

# What `meta-harness up` does, minus the CLI (used only if the CLI is absent): errors
# become one line and their exit code.
BOOT = """
import logging, sys
from meta_harness.base.errors import MetaHarnessError
from meta_harness.base.layout import Workspace
from meta_harness.base.config import load_config
from meta_harness.runtime.supervisor import run
logging.basicConfig(
    level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
)
logging.getLogger("watchfiles").setLevel(logging.WARNING)
try:
    ws = Workspace.at(sys.argv[1])
    code = run(ws, load_config(ws))
except MetaHarnessError as e:
    print(f"meta-harness: {e}", file=sys.stderr, flush=True)
    raise SystemExit(e.exit_code) from None
raise SystemExit(code)
"""


def supervisor_argv(ws: Path) -> list[str]:
    """`meta-harness up WS` in the foreground (the BOOT snippet where the CLI is absent)."""
    if (REPO / "meta_harness" / "cli" / "main.py").is_file():
        return [sys.executable, "-m", "meta_harness", "up", str(ws)]
    return [sys.executable, "-c", BOOT, str(ws)]


# -- dropping files --------------------------------------------------------------------------


def publish(path: Path, payload: Mapping[str, Any] | bytes) -> Path:
    """Write a drop file the way surfaces do: under a dot-name, then rename into place."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(dict(payload))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.rename(tmp, path)
    return path


def drop_task(ws: Path, task_id: str, prompt: str, **fields: Any) -> Path:
    return publish(ws / "inbox" / f"{task_id}.json", {"id": task_id, "prompt": prompt, **fields})


def drop_message(ws: Path, task_id: str, message_id: str, text: str) -> Path:
    target = ws / "tasks" / task_id / "inbox" / f"{message_id}.json"
    return publish(target, {"id": message_id, "text": text})


def drop_control(ws: Path, task_id: str, message_id: str, control: str) -> Path:
    target = ws / "tasks" / task_id / "inbox" / f"{message_id}.json"
    return publish(target, {"id": message_id, "control": control})


# -- reading what the supervisor wrote ---------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete records of a JSON-lines file (a torn last line is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for line in data.split(b"\n")[:-1]:
        if line.strip():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(line))
    return out


def wal(ws: Path, task_id: str) -> list[dict[str, Any]]:
    return read_jsonl(ws / "tasks" / task_id / "inbox.wal.jsonl")


def events(ws: Path) -> list[dict[str, Any]]:
    return read_jsonl(ws / ".meta-harness" / "events.jsonl")


def transcript(ws: Path, task_id: str) -> list[dict[str, Any]]:
    return read_jsonl(ws / "tasks" / task_id / "transcript.jsonl")


def task_record(ws: Path, task_id: str) -> dict[str, Any] | None:
    try:
        value: dict[str, Any] = orjson.loads((ws / "tasks" / task_id / "task.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return value


def task_phase(ws: Path, task_id: str) -> str | None:
    record = task_record(ws, task_id)
    return None if record is None else record.get("phase")


def received(ws: Path, task_id: str) -> list[dict[str, Any]]:
    """Every prompt the demo agent of a task recorded, over all its sessions, in order."""
    sessions = ws / "tasks" / task_id / "agent" / "sessions"
    records: list[dict[str, Any]] = []
    for path in sorted(sessions.glob("*.received.jsonl")):
        records.extend(read_jsonl(path))
    return sorted(records, key=lambda r: float(r.get("ts", 0.0)))


def received_ids(ws: Path, task_id: str) -> list[str]:
    return [str(r.get("messageId")) for r in received(ws, task_id)]


def acks(ws: Path, task_id: str) -> dict[str, list[dict[str, Any]]]:
    """Ack records per message id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for record in wal(ws, task_id):
        if record.get("op") == "ack":
            out.setdefault(str(record["id"]), []).append(record)
    return out


def accepted_ids(ws: Path, task_id: str) -> list[str]:
    return [str(r["id"]) for r in wal(ws, task_id) if r.get("op") == "msg"]


def all_acked(ws: Path, task_id: str, ids: Iterable[str]) -> bool:
    done = acks(ws, task_id)
    return all(i in done for i in ids)


def notes(ws: Path, task_id: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in transcript(ws, task_id)
        if r.get("dir") == "note" and (name is None or r.get("note") == name)
    ]


def agent_pids(ws: Path, task_id: str) -> list[int]:
    """Pids of every agent process spawned for a task, oldest first (transcript notes)."""
    return [int(r["pid"]) for r in notes(ws, task_id, "spawn")]


def agent_text(ws: Path, task_id: str, *, replay: bool = False) -> str:
    """The agent's message text over the whole transcript (live frames, or replayed ones)."""
    parts: list[str] = []
    for record in transcript(ws, task_id):
        frame = record.get("frame")
        if record.get("dir") != "in" or not isinstance(frame, dict):
            continue
        if bool(record.get("load")) != replay or frame.get("method") != "session/update":
            continue
        update = (frame.get("params") or {}).get("update") or {}
        if update.get("sessionUpdate") == "agent_message_chunk":
            parts.append(str((update.get("content") or {}).get("text", "")))
    return "".join(parts)


def replayed_user_text(ws: Path, task_id: str) -> str:
    """Every user_message_chunk the supervisor saw during session/load replays."""
    parts: list[str] = []
    for record in transcript(ws, task_id):
        frame = record.get("frame")
        if not record.get("load") or not isinstance(frame, dict):
            continue
        update = (frame.get("params") or {}).get("update") or {}
        if update.get("sessionUpdate") == "user_message_chunk":
            parts.append(str((update.get("content") or {}).get("text", "")))
    return "\n".join(parts)


def header_id(text: str) -> str | None:
    """The message id in the visible `[meta-harness message id=… from=…]` first line."""
    match = re.match(r"\[meta-harness message id=(\S+) from=", text)
    return match.group(1) if match else None


# -- waiting -----------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], T],
    *,
    watch_dir: Path,
    what: str,
    timeout: float = WAIT,
) -> T:
    """Return `condition()` once truthy; re-checked on every change under `watch_dir`."""
    deadline = time.monotonic() + timeout
    value = condition()
    if value:
        return value
    stop = threading.Event()
    for _ in watch(
        watch_dir,
        watch_filter=None,
        debounce=50,
        step=5,
        rust_timeout=RECHECK_MS,
        yield_on_timeout=True,
        stop_event=stop,
        recursive=True,
    ):
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _gone(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_gone(procs: Iterable[psutil.Process], timeout: float = WAIT) -> list[psutil.Process]:
    """Wait until every process has exited (zombies count as exited); return survivors."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not _gone(p)]
    while alive:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        _, alive = psutil.wait_procs(alive, timeout=min(GONE_TICK, remaining))
        alive = [p for p in alive if not _gone(p)]
    return alive


def process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def pid_gone(pid: int, timeout: float = WAIT) -> bool:
    proc = process(pid)
    return proc is None or not wait_gone([proc], timeout)


def marked_processes(ws: Path) -> list[psutil.Process]:
    """Live processes whose environment names this workspace (agents and their children)."""
    mine = str(ws)
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARKER) == mine and not _gone(proc):
                found.append(proc)
    return found


def describe(procs: Iterable[psutil.Process]) -> str:
    parts = []
    for proc in procs:
        try:
            parts.append(f"{proc.pid} {' '.join(proc.cmdline())}")
        except psutil.Error:
            parts.append(f"{proc.pid} (gone)")
    return "; ".join(parts) or "none"


# -- processes ---------------------------------------------------------------------------------


class Supervisor:
    """One supervisor process (its own process group; the reaper sidecar shares it)."""

    def __init__(self, ws: Path, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.ws = ws
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_started(self, timeout: float = WAIT) -> None:
        """Until this process has booted (its `started` event), or fail with its output."""

        def started() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"supervisor exited with {self.popen.returncode}:\n{self.output()}"
                )
            return any(
                e.get("type") == "supervisor"
                and e.get("status") == "started"
                and e.get("pid") == self.pid
                for e in events(self.ws)
            )

        wait_for(
            started, watch_dir=self.ws, what=f"supervisor {self.pid} to start", timeout=timeout
        )

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"supervisor {self.pid} still running after {timeout:g} s:\n{self.output()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL the supervisor alone (as the OOM killer would); its reaper lives on."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)


class Procs:
    """Every process group a test started; `cleanup` ends them and returns orphans."""

    def __init__(self, ws: Path, scratch: Path) -> None:
        self.ws = ws
        self.scratch = scratch
        self.popens: list[subprocess.Popen[bytes]] = []
        self.supervisors: list[Supervisor] = []

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("META_HARNESS_")}
        env["XDG_CONFIG_HOME"] = str(self.scratch / "xdg")  # no user config layer
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def start_supervisor(self, *, crash_at: str | None = None, wait: bool = True) -> Supervisor:
        """Start `meta-harness up` on the workspace; with `wait`, until it has booted.

        Output goes to a log file in the scratch dir; `cwd` is the scratch dir too, so
        the package comes from the install (or PYTHONPATH), never from the cwd.
        """
        log = self.scratch / f"supervisor-{len(self.supervisors) + 1}.log"
        extra = {CRASH_ENV: crash_at} if crash_at else {}
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                supervisor_argv(self.ws),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(extra),
                cwd=self.scratch,
                start_new_session=True,
            )
        self.popens.append(popen)
        supervisor = Supervisor(self.ws, popen, log)
        self.supervisors.append(supervisor)
        if wait:
            supervisor.wait_started()
        return supervisor

    def spawn(
        self, argv: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Any other process, in its own session (e.g. a leftover agent of a dead run)."""
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env(env),
            start_new_session=True,
        )
        self.popens.append(popen)
        return popen

    def cleanup(self) -> list[str]:
        """Stop supervisors, wait for the workspace's processes to go, kill every group.

        Returns a description of each process that carried the workspace marker and was
        still alive once every supervisor had exited (an orphan), after killing it.
        """
        for supervisor in self.supervisors:
            if supervisor.popen.poll() is None:
                supervisor.terminate()
        for supervisor in self.supervisors:
            try:
                supervisor.popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.popen.wait(STOP_GRACE)
        orphans = wait_gone(marked_processes(self.ws))
        found = [describe([p]) for p in orphans]
        for proc in orphans:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for popen in self.popens:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(STOP_GRACE)
        return found
