"""The supervisor: one per workspace. Composes lock, reaper, store, ingest, watcher, runners.

Boot derives everything from files: sweep leftover agent processes of this workspace,
load task records, fold WALs (truncating torn tails), expire permission requests of the
previous run, deliver child results that a crash left undelivered, ingest every waiting
drop file, then start a runner for each task with something to do. Then it watches. On
SIGINT/SIGTERM every runner swaps its session out (session ids stay on disk) and every
process group is ended; only then do the services (the MCP server among them) stop, as
agents close their MCP sessions on the way out. If the supervisor is killed, the reaper
ends the groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import psutil
from filelock import FileLock, Timeout

from meta_harness import __version__
from meta_harness.agent.process import use_pidfd_child_watcher
from meta_harness.base.config import Config, Profile, load_config
from meta_harness.base.errors import ConfigError, WorkspaceLocked
from meta_harness.base.fs import atomic_write, remove_stale_temps
from meta_harness.base.layout import Workspace
from meta_harness.domain.drops import Control, MessageDrop
from meta_harness.domain.events import EventType
from meta_harness.domain.permissions import RequestStatus
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import TaskRecord
from meta_harness.domain.transcript import redact_mcp_servers
from meta_harness.runtime.ingest import Ingest, IngestResult
from meta_harness.runtime.launch import WORKSPACE_MARKER
from meta_harness.runtime.pool import Pool, profile_caps
from meta_harness.runtime.runner import RunnerContext, TaskRunner
from meta_harness.runtime.stats import STATS_MIN_INTERVAL, Stats, write_stats
from meta_harness.runtime.store import EventLog, TaskStore
from meta_harness.runtime.watcher import watch_config, watch_drops

if TYPE_CHECKING:
    from meta_harness.agent.session import AgentSession

logger = logging.getLogger(__name__)

SWEEP_TERM_GRACE = 2.0  # leftover agents of a killed supervisor get this long after SIGTERM
RUNNERS_CANCEL_TIMEOUT = 15.0  # the shutdown ladder of every agent a cancelled runner held
RUNNERS_STOP_TIMEOUT = 10.0  # runners swap out in parallel; one agent's ladder is at most ~9 s


Service = Callable[["Supervisor"], Coroutine[Any, Any, None]]
# Per task: the ACP `mcpServers` entries, and warnings about servers left out.
McpEntries = Callable[[str, "AgentSession"], tuple[list[dict[str, Any]], list[str]]]


class Supervisor:
    def __init__(
        self,
        workspace: Workspace,
        config: Config,
        overrides: tuple[str, ...] = (),
        *,
        services: Sequence[Service] = (),
        mcp_entries: McpEntries | None = None,
    ) -> None:
        self.workspace = workspace
        self._services = list(services)
        self._mcp_entries = mcp_entries
        self._config = config
        self._overrides = overrides
        # SIGINT/SIGTERM set `stop_requested`: runners stop first, then `stop_event` (which
        # services and watchers wait on) is set. Setting `stop_event` directly stops too.
        self.stop_requested = asyncio.Event()
        self.stop_event = asyncio.Event()
        self._runner_tasks: set[asyncio.Task[None]] = set()
        self.events = EventLog(workspace)
        self.store = TaskStore(workspace, self.events)
        self.pool = Pool(config.settings.supervisor.max_live, profile_caps(config))
        self.ingest = Ingest(workspace, self.store, self.config)
        self.runners: dict[str, TaskRunner] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._retry_at: float | None = None
        self._retry_changed = asyncio.Event()
        self.stats = Stats()
        self.ctx = RunnerContext(
            workspace=workspace,
            store=self.store,
            pool=self.pool,
            config=self.config,
            on_task_ended=self.on_task_ended,
            mcp_servers=self.mcp_servers,
            on_spawn=self._register_group,
            on_exit=self._unregister_group,
            stats=self.stats,
            background=self._background,
        )

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._tg is None:
            coro.close()  # stopped: nothing left to tell the agent
            return
        self._tg.create_task(_logged(coro))

    def config(self) -> Config:
        return self._config

    # -- config reload -----------------------------------------------------------------------

    def reload_config(self) -> None:
        """Apply an edited workspace config to new tasks; a broken edit keeps the last good one."""
        try:
            config = load_config(self.workspace, overrides=self._overrides)
            if config.raw == self._config.raw:
                return  # saved without a change, or the boot check found nothing new
            self._config = config
            self.pool.max_live = self._config.settings.supervisor.max_live
            self.pool.caps = profile_caps(self._config)
            self.events.emit(EventType.SUPERVISOR, None, status="config-reloaded")
        except ConfigError as e:
            logger.error("config edit ignored, keeping the last good config: %s", e)
            self.events.emit(EventType.WARNING, None, message=f"config edit ignored: {e}")

    # -- reaper --------------------------------------------------------------------------------

    def _start_reaper(self) -> None:
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "meta_harness.runtime.reaper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )

    def _register_group(self, pgid: int) -> None:
        self._tell_reaper(b"+%d\n" % pgid)

    def _unregister_group(self, pgid: int) -> None:
        """The group is ended: forget it, or a recycled pid could be killed at our death."""
        self._tell_reaper(b"-%d\n" % pgid)

    def _tell_reaper(self, line: bytes) -> None:
        if self._reaper is not None and self._reaper.stdin is not None:
            with contextlib.suppress(OSError):
                self._reaper.stdin.write(line)
                self._reaper.stdin.flush()

    def _stop_reaper(self) -> None:
        if self._reaper is None:
            return
        with contextlib.suppress(OSError):
            if self._reaper.stdin is not None:
                self._reaper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._reaper.wait(timeout=5)

    # -- boot ------------------------------------------------------------------------------------

    def sweep_leftovers(self) -> int:
        """End processes a killed supervisor of this workspace left behind."""
        mine = str(self.workspace.root)
        found: list[psutil.Process] = []
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == me:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(WORKSPACE_MARKER) == mine:
                    found.append(proc)
        for proc in found:
            with contextlib.suppress(psutil.Error, OSError):
                proc.terminate()
        _, alive = psutil.wait_procs(found, timeout=SWEEP_TERM_GRACE)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if found:
            self.events.emit(
                EventType.WARNING, None, message=f"swept {len(found)} leftover agent process(es)"
            )
        return len(found)

    def reconcile(self) -> None:
        self.store.load_all()
        by_parent: dict[str, list[TaskRecord]] = {}
        for record in self.store.records.values():
            if record.parent:
                by_parent.setdefault(record.parent, []).append(record)
        for task_id, record in self.store.records.items():
            paths = self.workspace.task(task_id)
            remove_stale_temps(paths.dir)
            self.store.rederive(task_id)
            self._expire_requests(paths.permissions)
            if record.parent and record.phase.terminal:
                self._deliver_result(task_id)
            if record.phase is TaskPhase.CANCELLED and task_id in by_parent:
                # a crash may have cut the cascade short
                self._cancel_descendants(task_id, lambda t: list(by_parent.get(t, ())))

    def _expire_requests(self, directory: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(directory):
                if not entry.name.endswith(".json") or entry.name.endswith(".answer.json"):
                    continue
                with contextlib.suppress(OSError, ValueError):
                    record = orjson.loads(Path(entry.path).read_bytes())
                    if record.get("status") == RequestStatus.PENDING:
                        record.update(
                            status=RequestStatus.ANSWERED.value,
                            decision="cancelled",
                            answered_by="supervisor",
                            reason="the supervisor restarted; the agent's call ended with it",
                            answered_at=time.time(),
                        )
                        atomic_write(
                            Path(entry.path), orjson.dumps(record, option=orjson.OPT_INDENT_2)
                        )

    # -- runners -------------------------------------------------------------------------------

    def ensure_runner(self, task_id: str) -> TaskRunner | None:
        runner = self.runners.get(task_id)
        if runner is not None:
            return runner
        record = self.store.get(task_id)
        if record is None or self._tg is None or self.stop_requested.is_set():
            return None
        if record.phase.terminal and not self.store.inbox(task_id).state.pending():
            return None
        profile = self._task_profile(task_id, record.profile)
        runner = TaskRunner(self.ctx, task_id, profile)
        self.runners[task_id] = runner
        task = self._tg.create_task(self._run(runner), name=f"runner-{task_id}")
        self._runner_tasks.add(task)
        task.add_done_callback(self._runner_tasks.discard)
        return runner

    def _task_profile(self, task_id: str, name: str) -> Profile:
        """The profile snapshot the task was created with (config edits apply to new tasks)."""
        snapshot = self.workspace.task(task_id).profile_snapshot
        with contextlib.suppress(OSError, ValueError):
            return Profile.model_validate_json(snapshot.read_bytes())
        return self._config.profile(name)

    async def _run(self, runner: TaskRunner) -> None:
        try:
            await runner.run()
        except Exception:
            logger.exception("task %s: runner failed", runner.task_id)
            self.events.emit(
                EventType.WARNING, runner.task_id, message="runner failed; see supervisor log"
            )
        finally:
            self.runners.pop(runner.task_id, None)
            self.store.inbox(runner.task_id).release()
        # a message may have arrived while the runner was finishing
        stopping = self.stop_requested.is_set()
        if not stopping and self.store.inbox(runner.task_id).state.next_pending():
            self.ensure_runner(runner.task_id)

    # -- ingest results ------------------------------------------------------------------------

    def handle(self, result: IngestResult) -> None:
        for task_id in result.touched:
            runner = self.ensure_runner(task_id)
            if runner is None:
                continue
            state = self.store.inbox(task_id).state
            if any(
                m.control is Control.CANCEL for m in state.pending()
            ):  # complete: turn ends first
                runner.interrupt()
            runner.inbox.changed.set()
        for task_id, request_id, path in result.answers:
            runner = self.runners.get(task_id)
            if runner is None:
                with contextlib.suppress(OSError):
                    path.rename(path.with_name(path.name + ".rejected"))
                continue
            runner.gate.on_answer_file(request_id, path)
        if result.retry_at is not None and (
            self._retry_at is None or result.retry_at < self._retry_at
        ):
            self._retry_at = result.retry_at
            self._retry_changed.set()

    # -- task lifecycle ------------------------------------------------------------------------

    def on_task_ended(self, task_id: str) -> None:
        record = self.store.get(task_id)
        if record is None:
            return
        runner = self.runners.get(task_id)
        if runner is not None:
            runner.gate.cancel_all(f"the task is {record.phase}")
            runner.inbox.changed.set()
        if record.phase is TaskPhase.CANCELLED:
            self._cancel_descendants(task_id, self.store.children)
        if record.parent:
            self._deliver_result(task_id)

    def _cancel_descendants(
        self, task_id: str, children: Callable[[str], list[TaskRecord]]
    ) -> None:
        """Send a cancel to every live descendant of `task_id`, also under ended children.

        A live one cascades further when it applies its cancel; a child that has already
        ended (a oneshot that answered) may still have live children of its own. The
        drop id is deterministic, so doing this again at boot (a crash cut the cascade
        short) adds nothing twice.
        """
        drop = MessageDrop(
            id=f"cancel-by-{task_id}",
            sender=f"task:{task_id}",
            content=[],
            control=Control.CANCEL,
        )
        frontier = children(task_id)
        seen: set[str] = set()
        while frontier:
            child = frontier.pop()
            if child.id in seen:
                continue
            seen.add(child.id)
            if child.phase.terminal:
                frontier.extend(children(child.id))
            elif self.store.inbox(child.id).accept([drop]):
                child_runner = self.ensure_runner(child.id)
                if child_runner is not None:
                    child_runner.interrupt()

    def _deliver_result(self, task_id: str) -> None:
        record = self.store.get(task_id)
        if record is None or record.parent is None:
            return
        parent = self.store.get(record.parent)
        if parent is None or parent.phase.terminal:
            return
        if record.phase is TaskPhase.DONE:
            text = f"Child task {task_id} ({record.title}) finished:\n{record.result or ''}"
        else:
            text = f"Child task {task_id} ({record.title}) {record.phase}: {record.error or ''}"
        drop = MessageDrop(
            id=f"result:{task_id}",
            sender=f"task:{task_id}",
            content=[{"type": "text", "text": text}],
            meta={"child": task_id, "phase": record.phase.value},
        )
        if self.store.inbox(parent.id).accept([drop]):
            self.ensure_runner(parent.id)

    def mcp_servers(self, task_id: str, session: AgentSession) -> list[dict[str, Any]]:
        """The MCP servers handed to a task's agent on new/load/resume.

        Also written to `mcp.json` with header and env values redacted; each server left
        out (the agent cannot use its transport) is a warning event and transcript note.
        """
        servers, warnings = self._mcp_entries(task_id, session) if self._mcp_entries else ([], [])
        for warning in warnings:
            self.events.emit(EventType.WARNING, task_id, message=warning)
            session.transcript.note("mcp-warning", message=warning)
        path = self.workspace.task(task_id).mcp_config
        data = orjson.dumps(redact_mcp_servers(servers), option=orjson.OPT_INDENT_2) + b"\n"
        try:
            unchanged = path.read_bytes() == data
        except OSError:
            unchanged = False
        if not unchanged:  # every swap-in asks; rebuilt from config each time: no fsync
            atomic_write(path, data, durable=False)
        return servers

    # -- main ------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        async for batch in watch_drops(self.workspace, self.stop_event):
            self.handle(self.ingest.ingest(batch))

    async def _watch_config(self) -> None:
        async for _ in watch_config(self.workspace, self.stop_event):
            self.reload_config()

    def stats_snapshot(self) -> dict[str, Any]:
        sessions = Counter(r.phase.value for r in self.runners.values())
        tasks = Counter(r.phase.value for r in self.store.records.values())
        return self.stats.snapshot(
            max_live=self.pool.max_live,
            live=len(self.pool.holders),
            queue_depth=self.pool.queue_depth,
            profiles=self.pool.live_by_profile(),
            session_phases=sessions,
            task_phases=tasks,
            accepted=self.ingest.accepted,
            rejected=self.ingest.rejected,
        )

    async def _publish_stats(self) -> None:
        """Rewrite stats.json after changes, at most every STATS_MIN_INTERVAL seconds."""
        stop = asyncio.ensure_future(self.stop_event.wait())
        try:
            while not self.stop_event.is_set():
                dirty = asyncio.ensure_future(self.stats.dirty.wait())
                await asyncio.wait([stop, dirty], return_when=asyncio.FIRST_COMPLETED)
                dirty.cancel()
                self.stats.dirty.clear()
                write_stats(self.workspace, self.stats_snapshot())
                await asyncio.wait([stop], timeout=STATS_MIN_INTERVAL)
        finally:
            stop.cancel()

    async def _retry_loop(self) -> None:
        while not self.stop_event.is_set():
            self._retry_changed.clear()
            timeout = None if self._retry_at is None else max(0.0, self._retry_at - time.time())
            stop = asyncio.ensure_future(self.stop_event.wait())
            changed = asyncio.ensure_future(self._retry_changed.wait())
            try:
                await asyncio.wait(
                    [stop, changed], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop.cancel()
                changed.cancel()
            if self.stop_event.is_set():
                return
            if self._retry_at is not None and time.time() >= self._retry_at:
                self._retry_at = None
                self.handle(self.ingest.scan_all())

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)
        self.workspace.ensure_dirs()
        self.sweep_leftovers()
        self._start_reaper()
        try:
            self.reconcile()
            self.events.emit(EventType.SUPERVISOR, None, status="started", pid=os.getpid())
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                # Watch first, then scan: awatch registers its watches in its first step,
                # so a drop made after boot raises an event or is found by the scan.
                tg.create_task(self._watch(), name="watcher")
                tg.create_task(self._watch_config(), name="config-watcher")
                await asyncio.sleep(0)
                # The config was loaded before the watch existed: an edit made since is
                # applied now (a later one raises an event).
                if self._config.workspace_changed(self.workspace):
                    self.reload_config()
                self.handle(self.ingest.scan_all())
                for task_id in list(self.store.records):
                    if self.store.inbox(task_id).state.next_pending() is not None:
                        self.ensure_runner(task_id)
                tg.create_task(self._retry_loop(), name="settle-timer")
                tg.create_task(self._publish_stats(), name="stats")
                for service in self._services:
                    tg.create_task(service(self), name=getattr(service, "__name__", "service"))
                if ready is not None:
                    ready.set()
                await _first_of(self.stop_requested, self.stop_event)
                self.stop_requested.set()
                self.events.emit(EventType.SUPERVISOR, None, status="stopping")
                await self._stop_runners()
                self.stop_event.set()
        finally:
            self._tg = None
            self.store.close()
            self._stop_reaper()
            with contextlib.suppress(OSError):
                write_stats(self.workspace, self.stats_snapshot())
            self.events.emit(EventType.SUPERVISOR, None, status="stopped")
            self.events.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _stop_runners(self) -> None:
        """Every runner swaps its session out; the services outlive the agents."""
        for runner in list(self.runners.values()):
            runner.stop()
        running = [t for t in self._runner_tasks if not t.done()]
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=RUNNERS_STOP_TIMEOUT)
        if late:
            # Queued for a slot, or starting an agent that does not answer `initialize`:
            # cancel them; their cleanup still ends every process group they started.
            logger.warning("%d runner(s) did not stop in time; cancelling them", len(late))
            for task in late:
                task.cancel()
            _, stuck = await asyncio.wait(late, timeout=RUNNERS_CANCEL_TIMEOUT)
            if stuck:
                logger.error("%d runner(s) ignored cancellation", len(stuck))


async def _logged(coro: Coroutine[Any, Any, None]) -> None:
    """A background step whose failure is logged, never fatal to the task group."""
    try:
        await coro
    except Exception:
        logger.exception("background step failed")


async def _first_of(*events: asyncio.Event) -> None:
    """Until any of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _lock(workspace: Workspace) -> FileLock:
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(workspace.lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = "pid unknown"
        with contextlib.suppress(OSError, ValueError):
            info = orjson.loads(workspace.supervisor_file.read_bytes())
            holder = f"pid {info.get('pid')}, started {time.ctime(info.get('started_at', 0))}"
        raise WorkspaceLocked(str(workspace.root), holder) from None
    return lock


def run(
    workspace: Workspace,
    config: Config,
    *,
    overrides: tuple[str, ...] = (),
    services: Sequence[Service] = (),
    mcp_entries: McpEntries | None = None,
    endpoints: dict[str, str] | None = None,
) -> int:
    """Run the supervisor in the foreground until SIGINT/SIGTERM; return the exit code.

    `services` are coroutines (e.g. the HTTP server) run in the supervisor's task group;
    each must return once `supervisor.stop_event` is set. `mcp_entries` gives each task's
    agent its MCP server list. Raises WorkspaceLocked if another supervisor holds the
    workspace.
    """
    workspace.require()
    lock = _lock(workspace)
    try:
        info = {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": time.time(),
            "create_time": psutil.Process().create_time(),
            "workspace": str(workspace.root),
            "endpoints": endpoints or {},
        }
        atomic_write(workspace.supervisor_file, orjson.dumps(info, option=orjson.OPT_INDENT_2))
        supervisor = Supervisor(
            workspace, config, overrides, services=services, mcp_entries=mcp_entries
        )
        use_pidfd_child_watcher()
        asyncio.run(supervisor.serve())
        with contextlib.suppress(FileNotFoundError):
            workspace.supervisor_file.unlink()
    finally:
        lock.release()
    return 0
