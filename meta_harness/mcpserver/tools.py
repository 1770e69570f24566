"""The built-in MCP server: the orchestration tools every task's agent gets.

`build_mcp(workspace)` returns an `MCPServer` with `task_spawn`, `task_status`,
`task_list`, `task_send`, `task_result`, `task_cancel` and `task_complete`. Each call
is bound to the calling task (`identity`); a task acts only on itself and its
descendants, and may also message its parent. Tools validate first and fail fast with
an actionable `ToolError`; they change state only by publishing drop files
(`publish`) and read it only from files (`view`), so the server can run in the
supervisor's process (mounted in its HTTP server) without touching runtime objects.

Mounting (the web surface does this):

    srv = build_mcp(workspace)
    app = Starlette(routes=[Mount("/mcp", app=srv.streamable_http_app(streamable_http_path="/"))],
                    lifespan=...)   # the lifespan must run `async with srv.session_manager.run():`
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from meta_harness import __version__
from meta_harness.base.config import Config, Limits, Profile
from meta_harness.base.errors import Conflict, MetaHarnessError, NotFound
from meta_harness.base.layout import Workspace, new_id, validate_task_id
from meta_harness.base.tokens import workspace_secret
from meta_harness.domain.drops import MAX_TITLE, Control
from meta_harness.domain.tasks import TaskRecord
from meta_harness.mcpserver import publish
from meta_harness.mcpserver.identity import Identity, TokenReader, token_from_headers
from meta_harness.mcpserver.settings import ConfigSource, FileConfig
from meta_harness.mcpserver.view import Snapshot, TaskFiles

logger = logging.getLogger(__name__)

SERVER_NAME = "meta-harness"
QUEUED = "queued"  # a spawn published but not yet picked up by the supervisor
REJECTED = "rejected"  # a spawn the supervisor refused (reason in `error`)
FINISHED_BY_AGENT = "agent"

INSTRUCTIONS = """\
Tools to split work into tasks run by other agents, supervised by meta-harness.
task_spawn starts a child task and returns its id at once; the child works on its own.
When a child finishes, its result arrives in your inbox as a new message from
`task:<child-id>` (its id is `result:<child-id>`), so you do not need to poll: end
your turn and you will be prompted again. task_status, task_list and task_result
inspect your children; task_send messages a child (or your parent); task_cancel stops
a child and its descendants; task_complete finishes your own task with a result.
You can act only on your own task and its descendants."""


class NotYours(MetaHarnessError):
    """The task exists but is not the caller's own or one of its descendants."""

    http_status = 403


# -- results -------------------------------------------------------------------------------


class Spawned(BaseModel):
    task_id: str = Field(description="The new child task's id")
    profile: str
    mode: str
    note: str


class Messages(BaseModel):
    accepted: int = Field(description="Messages accepted into the task's inbox")
    delivered: int = Field(description="Messages its agent has answered")
    pending: int = Field(description="Messages not answered yet")
    duplicates: int = Field(description="Copies ignored because their id was already accepted")


class TaskStatus(BaseModel):
    task_id: str
    phase: str = Field(
        description="pending, active, waiting, done, failed, cancelled; or queued (not yet "
        "picked up) or rejected (the supervisor refused to create it)"
    )
    title: str = ""
    profile: str | None = None
    mode: str | None = None
    parent: str | None = None
    depth: int | None = None
    result: str | None = None
    error: str | None = None
    finished_by: str | None = None
    children: int = 0
    messages: Messages | None = None


class TaskNode(BaseModel):
    task_id: str
    title: str = ""
    phase: str
    profile: str | None = None
    children: list[TaskNode] = []


class TaskList(BaseModel):
    tasks: list[TaskNode] = Field(description="Your children, each with its own descendants")


class Sent(BaseModel):
    task_id: str
    message_id: str


class TaskResult(BaseModel):
    task_id: str
    phase: str
    finished: bool
    result: str | None = None
    error: str | None = None
    status: str


class Cancelled(BaseModel):
    task_id: str
    phase: str
    status: str


class Completed(BaseModel):
    task_id: str
    status: str


# -- the logic (sync: tools run in worker threads) -----------------------------------------


class Orchestrator:
    """The tools' rules over files; each method takes the verified caller id."""

    def __init__(self, workspace: Workspace, config: ConfigSource) -> None:
        self.workspace = workspace
        self.config = config
        self.files = TaskFiles(workspace)
        self._spawn_lock = threading.Lock()  # validate + publish of one spawn at a time

    # lookups

    def _caller_record(self, snap: Snapshot, caller: str) -> TaskRecord:
        record = snap.records.get(caller)
        if record is None:
            raise NotFound(f"your task {caller} has no record in this workspace (was it removed?)")
        return record

    def _check_access(self, snap: Snapshot, caller: str, task_id: str, *, self_ok: bool) -> None:
        """Raise unless `task_id` is a descendant of `caller` (or the caller, if `self_ok`)."""
        validate_task_id(task_id)
        if task_id == caller:
            if self_ok:
                return
            raise NotYours(f"{task_id} is your own task; this tool acts on your descendants")
        anchor = task_id  # the task whose lineage decides: itself, or a rejected one's parent
        if not snap.exists(task_id):
            rejected = self.files.rejected_spawn(task_id)
            if rejected is None:
                raise NotFound(f"no task {task_id!r}; task_list shows the tasks you can act on")
            anchor = rejected[0]
            if anchor == caller:
                return
        if snap.is_descendant(anchor, caller):
            return
        raise NotYours(
            f"task {task_id} is not yours: a task may act only on itself and its descendants"
        )

    def _limits(self, config: Config, record: TaskRecord) -> Limits:
        """The limits the supervisor's ingest will apply to the children of `record`."""
        profile = config.profiles.get(record.profile)
        if profile is None:
            snapshot = self.workspace.task(record.id).profile_snapshot
            with contextlib.suppress(OSError, ValueError):
                profile = Profile.model_validate_json(snapshot.read_bytes())
        return profile.limits if profile is not None else Limits()

    def _live_target(self, snap: Snapshot, task_id: str, verb: str) -> TaskRecord:
        record = snap.records.get(task_id)
        if record is None:
            if task_id in snap.queued:
                raise Conflict(
                    f"task {task_id} is still queued (the supervisor has not created it "
                    f"yet); try to {verb} it again in a moment"
                )
            rejected = self.files.rejected_spawn(task_id)
            reason = rejected[1] if rejected else "it does not exist"
            raise Conflict(f"task {task_id} was never created: {reason}")
        return record

    # tools

    def spawn(
        self, caller: str, prompt: str, profile: str | None, title: str | None, mode: str
    ) -> Spawned:
        config = self.config()
        with self._spawn_lock:
            snap = self.files.snapshot()
            parent = self._caller_record(snap, caller)
            if parent.phase.terminal:
                raise Conflict(
                    f"your task {caller} has already ended ({parent.phase}); "
                    "an ended task cannot spawn children"
                )
            name = profile or parent.profile
            if name not in config.profiles:
                known = ", ".join(sorted(config.profiles)) or "none"
                raise NotFound(f"unknown profile {name!r}; known profiles: {known}")
            limits = self._limits(config, parent)
            depth = parent.depth + 1
            if depth > limits.max_depth:
                raise Conflict(
                    f"too deep: a child of {caller} would be at depth {depth}, beyond "
                    f"max_depth {limits.max_depth} of profile {parent.profile}; do the work "
                    "yourself or ask your parent"
                )
            children = snap.children(caller)
            if len(children) >= limits.max_children:
                raise Conflict(
                    f"too many children: {caller} already has {len(children)} "
                    f"(max_children {limits.max_children} of profile {parent.profile}); "
                    "wait for some to finish or reuse one with task_send"
                )
            size = len(prompt.encode()) + len((title or "").encode())
            if size > config.settings.supervisor.max_drop_bytes:
                raise Conflict(
                    f"prompt too large ({size} bytes; limit "
                    f"{config.settings.supervisor.max_drop_bytes}); put the material in a "
                    "file and pass its path"
                )
            child = new_id("t")
            publish.publish_spawn(
                self.workspace,
                parent=caller,
                child=child,
                prompt=prompt,
                profile=name,
                mode=mode,
                title=title,
            )
        logger.info("task %s spawned %s (profile %s, %s)", caller, child, name, mode)
        return Spawned(
            task_id=child,
            profile=name,
            mode=mode,
            note=f"Started. Its result will arrive as a message from task:{child}.",
        )

    def status(self, caller: str, task_id: str | None) -> TaskStatus:
        snap = self.files.snapshot()
        target = task_id or caller
        self._check_access(snap, caller, target, self_ok=True)
        record = snap.records.get(target)
        if record is None:
            return self._not_created(snap, target)
        return TaskStatus(
            task_id=record.id,
            phase=record.phase.value,
            title=record.title,
            profile=record.profile,
            mode=record.mode.value,
            parent=record.parent,
            depth=record.depth,
            result=record.result,
            error=record.error,
            finished_by=record.finished_by,
            children=len(snap.children(target)),
            messages=Messages(**self.files.message_counts(target)),
        )

    def _not_created(self, snap: Snapshot, task_id: str) -> TaskStatus:
        if task_id in snap.queued:
            return TaskStatus(task_id=task_id, phase=QUEUED, parent=snap.queued[task_id])
        rejected = self.files.rejected_spawn(task_id)
        if rejected is not None:
            return TaskStatus(
                task_id=task_id, phase=REJECTED, parent=rejected[0], error=rejected[1]
            )
        raise NotFound(f"no task {task_id!r}")

    def tree(self, caller: str) -> TaskList:
        snap = self.files.snapshot()
        self._caller_record(snap, caller)

        def node(task_id: str, depth: int) -> TaskNode:
            record = snap.records.get(task_id)
            kids = snap.children(task_id) if depth < 64 else []
            return TaskNode(
                task_id=task_id,
                title=record.title if record else "",
                phase=record.phase.value if record else QUEUED,
                profile=record.profile if record else None,
                children=[node(k, depth + 1) for k in kids],
            )

        return TaskList(tasks=[node(c, 1) for c in snap.children(caller)])

    def send(self, caller: str, task_id: str, text: str) -> Sent:
        snap = self.files.snapshot()
        me = self._caller_record(snap, caller)
        if task_id == caller:
            raise NotYours("you cannot message your own task; just continue your work")
        if task_id != me.parent:
            self._check_access(snap, caller, task_id, self_ok=False)
        record = self._live_target(snap, task_id, "message")
        if record.phase.terminal:
            raise Conflict(f"task {task_id} has ended ({record.phase}); it cannot receive messages")
        message_id = new_id("m")
        publish.publish_message(
            self.workspace, task_id, message_id, publish.text_payload(caller, text)
        )
        return Sent(task_id=task_id, message_id=message_id)

    def result(self, caller: str, task_id: str) -> TaskResult:
        snap = self.files.snapshot()
        self._check_access(snap, caller, task_id, self_ok=False)
        record = snap.records.get(task_id)
        if record is None:
            status = self._not_created(snap, task_id)
            finished = status.phase == REJECTED
            return TaskResult(
                task_id=task_id,
                phase=status.phase,
                finished=finished,
                error=status.error,
                status=f"never created: {status.error}"
                if finished
                else "not finished yet (queued)",
            )
        if not record.phase.terminal:
            return TaskResult(
                task_id=task_id,
                phase=record.phase.value,
                finished=False,
                status=f"not finished yet ({record.phase.value})",
            )
        return TaskResult(
            task_id=task_id,
            phase=record.phase.value,
            finished=True,
            result=record.result,
            error=record.error,
            status=record.phase.value,
        )

    def cancel(self, caller: str, task_id: str) -> Cancelled:
        snap = self.files.snapshot()
        self._check_access(snap, caller, task_id, self_ok=False)
        record = self._live_target(snap, task_id, "cancel")
        if record.phase.terminal:
            return Cancelled(
                task_id=task_id, phase=record.phase.value, status=f"already {record.phase.value}"
            )
        publish.publish_message(
            self.workspace,
            task_id,
            new_id("cancel"),
            publish.control_payload(Control.CANCEL, publish.sender(caller)),
        )
        return Cancelled(
            task_id=task_id,
            phase=record.phase.value,
            status="cancel requested; the task and its descendants will stop",
        )

    def complete(self, caller: str, result: str) -> Completed:
        record = self.files.record(caller)
        if record is None:
            raise NotFound(f"your task {caller} has no record in this workspace")
        if record.phase.terminal:
            raise Conflict(f"your task {caller} has already ended ({record.phase})")
        publish.publish_message(
            self.workspace,
            caller,
            new_id("complete"),
            publish.control_payload(Control.COMPLETE, FINISHED_BY_AGENT, result=result),
        )
        return Completed(
            task_id=caller,
            status="completion requested; your task will be marked done with this result",
        )


@contextlib.contextmanager
def _as_tool_errors() -> Iterator[None]:
    """Our errors become tool errors the model can read and act on."""
    try:
        yield
    except MetaHarnessError as e:
        raise ToolError(e.message) from None


# -- the server ------------------------------------------------------------------------------


def build_mcp(
    workspace: Workspace,
    *,
    config: ConfigSource | None = None,
    read_token: TokenReader = token_from_headers,
) -> MCPServer:
    """The built-in MCP server of `workspace`.

    `config` gives the current config (default: re-read from the files when they
    change); pass the supervisor's `config` to honour `--set`. `read_token` says where
    the caller's token is found (default: the `X-Task-Token` HTTP header).
    """
    orchestrator = Orchestrator(workspace, config or FileConfig(workspace))
    identity = Identity(workspace_secret(workspace), read_token)
    srv: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__)

    @srv.tool()
    def task_spawn(
        prompt: Annotated[
            str,
            Field(
                min_length=1,
                description="What the child task should do: a complete, self-contained "
                "instruction (the child does not see your conversation)",
            ),
        ],
        ctx: Context[Any, Any],
        profile: Annotated[
            str | None,
            Field(description="Profile (agent and settings) for the child; default: yours"),
        ] = None,
        title: Annotated[
            str | None,
            Field(max_length=MAX_TITLE, description="Short title shown in task lists"),
        ] = None,
        mode: Annotated[
            Literal["oneshot", "session"],
            Field(
                description="oneshot: the child's first answer is its result. session: the "
                "child keeps its conversation and finishes when it calls task_complete"
            ),
        ] = "oneshot",
    ) -> Spawned:
        """Start a child task with its own agent. Returns the child's id at once; when the
        child finishes, its result arrives in your inbox as a message from task:<id>."""
        with _as_tool_errors():
            return orchestrator.spawn(identity.caller(ctx), prompt, profile, title, mode)

    @srv.tool()
    def task_status(
        ctx: Context[Any, Any],
        task_id: Annotated[
            str | None, Field(description="Your task or a descendant; default: your own task")
        ] = None,
    ) -> TaskStatus:
        """Phase, title, profile, parent, result or error, and message counts of a task."""
        with _as_tool_errors():
            return orchestrator.status(identity.caller(ctx), task_id)

    @srv.tool()
    def task_list(ctx: Context[Any, Any]) -> TaskList:
        """Your child tasks, each with its phase and its own descendants (a tree)."""
        with _as_tool_errors():
            return orchestrator.tree(identity.caller(ctx))

    @srv.tool()
    def task_send(
        task_id: Annotated[str, Field(description="A descendant of your task, or your parent")],
        text: Annotated[str, Field(min_length=1, description="The message")],
        ctx: Context[Any, Any],
    ) -> Sent:
        """Send a message to one of your descendant tasks (or to your parent). It is
        delivered as a new prompt from task:<your id> when that task's agent is free."""
        with _as_tool_errors():
            return orchestrator.send(identity.caller(ctx), task_id, text)

    @srv.tool()
    def task_result(
        task_id: Annotated[str, Field(description="One of your descendant tasks")],
        ctx: Context[Any, Any],
    ) -> TaskResult:
        """The result of a descendant task, or "not finished yet" with its phase."""
        with _as_tool_errors():
            return orchestrator.result(identity.caller(ctx), task_id)

    @srv.tool()
    def task_cancel(
        task_id: Annotated[str, Field(description="One of your descendant tasks")],
        ctx: Context[Any, Any],
    ) -> Cancelled:
        """Cancel a descendant task; its own descendants are cancelled with it."""
        with _as_tool_errors():
            return orchestrator.cancel(identity.caller(ctx), task_id)

    @srv.tool()
    def task_complete(
        result: Annotated[
            str, Field(description="Your task's result: what your parent or user receives")
        ],
        ctx: Context[Any, Any],
    ) -> Completed:
        """Finish your own task with this result. Your parent (if any) receives it."""
        with _as_tool_errors():
            return orchestrator.complete(identity.caller(ctx), result)

    return srv
