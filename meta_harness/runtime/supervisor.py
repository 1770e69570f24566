"""The supervisor: one per workspace. Composes store, ingest, watchers, pool and runners.

Boot (`runtime/boot.py`) sweeps leftover agents and repairs state from files; then every
waiting drop is ingested and each task with work gets a runner; then it watches. On
SIGINT/SIGTERM runners swap out first, then the services stop (agents close their MCP
sessions on the way out). `run` holds the workspace claim; the reaper covers a kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from meta_harness.agent.process import use_pidfd_child_watcher
from meta_harness.base.config import Config, Profile, load_config
from meta_harness.base.errors import ConfigError
from meta_harness.base.fs import atomic_write
from meta_harness.base.layout import Workspace
from meta_harness.domain.drops import Control
from meta_harness.domain.events import EventType
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.transcript import redact_mcp_servers
from meta_harness.runtime.boot import reconcile, sweep_leftovers
from meta_harness.runtime.ingest import Ingest, IngestResult
from meta_harness.runtime.pool import Pool, profile_caps
from meta_harness.runtime.reaper_link import ReaperLink
from meta_harness.runtime.runner import RunnerContext, TaskRunner
from meta_harness.runtime.stats import Stats, publish_stats, write_stats
from meta_harness.runtime.store import EventLog, TaskStore
from meta_harness.runtime.task_end import (
    cancel_descendants,
    deliver_result,
    warn_unfinished_children,
)
from meta_harness.runtime.watcher import watch_config, watch_drops
from meta_harness.runtime.workspace_claim import claim_workspace

if TYPE_CHECKING:
    from meta_harness.agent.session import AgentSession

logger = logging.getLogger(__name__)

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
        self.reaper = ReaperLink()
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
            on_spawn=self.reaper.register,
            on_exit=self.reaper.unregister,
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
            cancel_descendants(self.store, task_id, self.store.children, self.ensure_runner)
        else:
            warn_unfinished_children(self.store, task_id)
        if record.parent:
            deliver_result(self.store, task_id, self.ensure_runner, warn=True)

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
        sweep_leftovers(self.workspace, self.events)
        self.reaper.start()
        try:
            reconcile(self.workspace, self.store, self.ensure_runner)
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
                stats = publish_stats(
                    self.workspace, self.stats, self.stats_snapshot, self.stop_event
                )
                tg.create_task(stats, name="stats")
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
            self.reaper.stop()
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
    with claim_workspace(workspace, endpoints):
        supervisor = Supervisor(
            workspace, config, overrides, services=services, mcp_entries=mcp_entries
        )
        use_pidfd_child_watcher()
        asyncio.run(supervisor.serve())
    return 0
