"""The JSON routes under `/api`: read the task tree, a task, its transcript, permissions and
stats from files; submit tasks, send messages, cancel and answer permissions by publishing
files (`publish`). Errors are raised as `MetaHarnessError`s and rendered by the app as
`{"error": ...}` with the error's `http_status`. Streams live in `sse`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meta_harness.base.errors import NotFound, UsageError
from meta_harness.base.jsonl import read_records
from meta_harness.domain.inbox import InboxState
from meta_harness.domain.tasks import TaskRecord
from meta_harness.web import publish
from meta_harness.web.logs import check_boundary, log_end, read_window
from meta_harness.web.state import (
    WebState,
    pending_requests,
    runtime_stats,
    supervisor_info,
    task_requests,
)

PAGE_DEFAULT = 200  # transcript records per page unless `limit` says otherwise
PAGE_MAX = 2000  # a page is bounded so one request cannot pin a huge transcript in memory


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _web(request: Request) -> WebState:
    web: WebState = request.app.state.web
    web.events.refresh()
    return web


def _record(web: WebState, task_id: str) -> TaskRecord:
    record = web.index.get(task_id)  # validates the id: InvalidId -> 400
    if record is None:
        raise NotFound(f"no task {task_id!r} in this workspace")
    return record


async def _body(request: Request, *, optional: bool = False) -> Any:
    data = await request.body()
    if not data.strip():
        if optional:
            return {}
        raise UsageError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise UsageError(f"malformed JSON in the request body: {e}") from None


def _int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise UsageError(f"query parameter {name!r} must be a non-negative integer, not {raw!r}")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise UsageError(f"query parameter {name!r} must be at most {maximum}")
    return value


def summary(web: WebState, record: TaskRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "title": record.title,
        "parent": record.parent,
        "depth": record.depth,
        "profile": record.profile,
        "mode": record.mode.value,
        "phase": record.phase.value,
        "session": web.events.session(record.id).value,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_by": record.finished_by,
        "error": record.error,
        "has_result": record.result is not None,
        "pending_permissions": len(web.events.pending.get(record.id, ())),
    }


# -- reads -------------------------------------------------------------------------------------


async def list_tasks(request: Request) -> Response:
    """`GET /api/tasks`: every task as a tree (children nested under their parent)."""
    web = _web(request)
    records = sorted(web.index.all(), key=lambda r: (r.created_at, r.id))
    nodes = {r.id: {**summary(web, r), "children": []} for r in records}
    roots: list[dict[str, Any]] = []
    for record in records:
        parent = nodes.get(record.parent) if record.parent else None
        if parent is None or _is_ancestor(nodes, record.id, record.parent):
            roots.append(nodes[record.id])
        else:
            parent["children"].append(nodes[record.id])
    return JSON({"tasks": roots, "count": len(records)})


def _is_ancestor(nodes: dict[str, dict[str, Any]], task_id: str, parent: str | None) -> bool:
    """Whether `task_id` is among `parent`'s ancestors (a hand-edited cycle)."""
    seen: set[str] = set()
    while parent is not None and parent not in seen:
        if parent == task_id:
            return True
        seen.add(parent)
        node = nodes.get(parent)
        parent = node["parent"] if node else None
    return False


async def get_task(request: Request) -> Response:
    """`GET /api/tasks/{task_id}`: the task record, its session, inbox, permissions, children."""
    web = _web(request)
    record = _record(web, request.path_params["task_id"])
    paths = web.workspace.task(record.id)
    inbox = InboxState.fold(read_records(paths.wal))
    children = [r.id for r in web.index.all() if r.parent == record.id]
    return JSON(
        {
            **record.model_dump(mode="json"),
            "session": web.events.session(record.id).value,
            "inbox": inbox.counts(),
            "permissions": task_requests(web.workspace, record.id),
            "children": children,
            "transcript_bytes": log_end(paths.transcript),
        }
    )


async def get_transcript(request: Request) -> Response:
    """`GET /api/tasks/{task_id}/transcript?offset=&limit=`: one page of records by byte offset."""
    web = _web(request)
    record = _record(web, request.path_params["task_id"])
    path = web.workspace.task(record.id).transcript
    offset = check_boundary(path, _int_param(request, "offset", 0), "transcript")
    limit = max(1, _int_param(request, "limit", PAGE_DEFAULT, PAGE_MAX))
    page: list[dict[str, Any]] = []
    position = offset
    while len(page) < limit:
        records, nxt = read_window(path, position)
        for start, value in records:
            if len(page) == limit:
                nxt = start
                break
            page.append({"offset": start, "record": value})
        if nxt == position:
            break
        position = nxt
    end = log_end(path)
    return JSON(
        {
            "offset": offset,
            "next_offset": position,
            "end": end,
            "more": position < end,
            "records": page,
        }
    )


async def list_permissions(request: Request) -> Response:
    """`GET /api/permissions`: every pending permission request of the workspace."""
    web = _web(request)
    return JSON({"requests": pending_requests(web.workspace, web.events)})


async def stats(request: Request) -> Response:
    """`GET /api/stats`: tasks per phase, sessions per phase, pending permissions, slots/swaps."""
    web = _web(request)
    tasks = Counter(r.phase.value for r in web.index.all())
    supervisor = supervisor_info(web.workspace)
    return JSON(
        {
            "tasks": dict(tasks),
            "sessions": web.events.session_counts(),
            "permissions": {"pending": len(pending_requests(web.workspace, web.events))},
            "supervisor": {
                "status": web.events.supervisor,
                "pid": supervisor.get("pid") if supervisor else None,
                "endpoints": supervisor.get("endpoints") if supervisor else None,
            },
            "runtime": runtime_stats(web.workspace),
            "streams": web.hub.subscribers,
            "events_cursor": f"e:{log_end(web.workspace.events_file)}",
        }
    )


# -- writes (publish a file) --------------------------------------------------------------------


async def create_task(request: Request) -> Response:
    """`POST /api/tasks` {prompt | content, title?, profile?, mode?, parent?, id?}."""
    web = _web(request)
    body = await _body(request)
    return JSON(publish.submit_task(web.workspace, web.index, body), status_code=202)


async def post_message(request: Request) -> Response:
    """`POST /api/tasks/{task_id}/messages` {text | content, id?}."""
    web = _web(request)
    task_id = request.path_params["task_id"]
    body = await _body(request)
    return JSON(publish.send_message(web.workspace, web.index, task_id, body), status_code=202)


async def cancel(request: Request) -> Response:
    """`POST /api/tasks/{task_id}/cancel` (body empty or `{}`)."""
    web = _web(request)
    body = await _body(request, optional=True)
    if body != {}:
        raise UsageError("cancel takes no fields; send {} or an empty body")
    return JSON(
        publish.cancel_task(web.workspace, web.index, request.path_params["task_id"]),
        status_code=202,
    )


async def answer(request: Request) -> Response:
    """`POST /api/tasks/{task_id}/permissions/{request_id}` {decision, always?, reason?}."""
    web = _web(request)
    body = await _body(request)
    result = publish.answer_permission(
        web.workspace,
        web.index,
        request.path_params["task_id"],
        request.path_params["request_id"],
        body,
    )
    return JSON(result, status_code=202)
