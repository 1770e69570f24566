"""What the MCP tools return: the pydantic models that become each tool's output schema.

Plain data, no logic: `orchestrator` fills them in, `tools` declares them as return
types (the MCP SDK derives the output schemas from them, so their field names and
descriptions are part of the tools' published interface).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

QUEUED = "queued"  # a spawn published but not yet picked up by the supervisor
REJECTED = "rejected"  # a spawn the supervisor refused (reason in `error`)


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
