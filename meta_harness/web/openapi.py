"""The OpenAPI 3.1 description of `/api`, written by hand next to the routes it describes.

A test checks that every route of the app (path and method) is described here and that
nothing here is missing from the app, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from meta_harness import __version__

JsonSchema = dict[str, Any]

_ERROR = {"$ref": "#/components/schemas/Error"}
_ANY_OBJECT: JsonSchema = {"type": "object"}


def _json(schema: JsonSchema, description: str) -> JsonSchema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, JsonSchema]:
    reasons = {
        400: "malformed request: bad JSON, unknown field, invalid id or cursor",
        401: "token missing or wrong (only when bound to a non-loopback address)",
        404: "no such task or permission request",
        409: "the task has ended, or the request is already answered",
        413: "request body too large",
        415: "the body is not application/json",
        503: "too many open streams",
    }
    return {str(code): _json(_ERROR, reasons[code]) for code in (401, *codes)}


def _param(name: str, where: str, description: str, schema: JsonSchema) -> JsonSchema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_TASK_ID = _param(
    "task_id", "path", "task id", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
)
_REQUEST_ID = _param("request_id", "path", "permission request id", {"type": "string"})
_TAIL = _param(
    "tail",
    "query",
    "start this many bytes before the end when no cursor is given",
    {"type": "integer", "minimum": 0},
)
_LAST_ID = _param(
    "last_event_id",
    "query",
    "resume cursor, as in the Last-Event-ID header (the header wins)",
    {"type": "string"},
)
_CONTENT = {"type": "array", "items": {"type": "object"}, "description": "ACP content blocks"}
_PUBLISHED = _json({"$ref": "#/components/schemas/Published"}, "the file was published")
_SSE = {
    "description": (
        "text/event-stream; each event's id is a byte-offset cursor "
        "(`t:<transcript offset>,e:<events offset>`); events `transcript` and `event` carry "
        '`{"offset": <record start>, "record": {...}}`'
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> JsonSchema:
    return {"summary": summary, "responses": responses, **extra}


def _body(schema: JsonSchema, required: bool = True) -> JsonSchema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


PATHS: dict[str, dict[str, JsonSchema]] = {
    "/api/tasks": {
        "get": _op(
            "The task tree: root tasks with their children nested",
            {"200": _json({"$ref": "#/components/schemas/TaskTree"}, "tasks"), **_errors()},
        ),
        "post": _op(
            "Submit a new task (publishes inbox/web-<id>.json)",
            {"202": _PUBLISHED, **_errors(400, 404, 409, 413, 415)},
            requestBody=_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "prompt": {"type": "string"},
                        "content": _CONTENT,
                        "title": {"type": "string", "maxLength": 200},
                        "profile": {"type": "string"},
                        "mode": {"enum": ["session", "oneshot"]},
                        "parent": {"type": "string"},
                        "id": {"type": "string"},
                    },
                }
            ),
        ),
    },
    "/api/tasks/{task_id}": {
        "get": _op(
            "One task: record, session phase, inbox counts, permission requests, children",
            {"200": _json(_ANY_OBJECT, "the task"), **_errors(400, 404)},
            parameters=[_TASK_ID],
        ),
    },
    "/api/tasks/{task_id}/transcript": {
        "get": _op(
            "A page of transcript records starting at a byte offset",
            {
                "200": _json({"$ref": "#/components/schemas/TranscriptPage"}, "records"),
                **_errors(400, 404),
            },
            parameters=[
                _TASK_ID,
                _param(
                    "offset",
                    "query",
                    "byte offset of a record start",
                    {"type": "integer", "minimum": 0},
                ),
                _param(
                    "limit",
                    "query",
                    "records per page (max 2000)",
                    {"type": "integer", "minimum": 1},
                ),
            ],
        ),
    },
    "/api/tasks/{task_id}/stream": {
        "get": _op(
            "Live SSE: the task's transcript records and events, resumable with Last-Event-ID",
            {"200": _SSE, **_errors(400, 404, 503)},
            parameters=[
                _TASK_ID,
                _param(
                    "events", "query", "which events to include", {"enum": ["task", "all", "none"]}
                ),
                _TAIL,
                _LAST_ID,
            ],
        ),
    },
    "/api/tasks/{task_id}/messages": {
        "post": _op(
            "Send a message to a task (publishes tasks/<id>/inbox/<msg-id>.json)",
            {"202": _PUBLISHED, **_errors(400, 404, 409, 413, 415)},
            parameters=[_TASK_ID],
            requestBody=_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "text": {"type": "string"},
                        "content": _CONTENT,
                        "id": {"type": "string"},
                    },
                }
            ),
        ),
    },
    "/api/tasks/{task_id}/cancel": {
        "post": _op(
            "Cancel a task and its children (publishes a cancel control drop)",
            {"202": _PUBLISHED, **_errors(400, 404, 409, 415)},
            parameters=[_TASK_ID],
            requestBody=_body({"type": "object", "additionalProperties": False}, required=False),
        ),
    },
    "/api/tasks/{task_id}/permissions/{request_id}": {
        "post": _op(
            "Answer a pending permission request (publishes <req>.answer.json)",
            {"202": _PUBLISHED, **_errors(400, 404, 409, 413, 415)},
            parameters=[_TASK_ID, _REQUEST_ID],
            requestBody=_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["decision"],
                    "properties": {
                        "decision": {"enum": ["allow", "reject"]},
                        "always": {"type": "boolean", "default": False},
                        "reason": {"type": "string", "maxLength": 1000},
                    },
                }
            ),
        ),
    },
    "/api/permissions": {
        "get": _op(
            "Every pending permission request of the workspace",
            {
                "200": _json(
                    {"type": "object", "properties": {"requests": {"type": "array"}}}, "requests"
                ),
                **_errors(),
            },
        ),
    },
    "/api/stats": {
        "get": _op(
            "Tasks per phase, sessions per phase, pending permissions, slot and swap figures",
            {"200": _json({"$ref": "#/components/schemas/Stats"}, "stats"), **_errors()},
        ),
    },
    "/api/events": {
        "get": _op(
            "Live SSE: workspace events, resumable with Last-Event-ID (`e:<offset>`)",
            {"200": _SSE, **_errors(400, 503)},
            parameters=[
                _param("task", "query", "only this task's events", {"type": "string"}),
                _TAIL,
                _LAST_ID,
            ],
        ),
    },
    "/api/openapi.json": {
        "get": _op("This description", {"200": _json(_ANY_OBJECT, "OpenAPI 3.1"), **_errors()}),
    },
}

COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Published": {
            "type": "object",
            "properties": {
                "task": {"type": "string"},
                "message": {"type": "string"},
                "request": {"type": "string"},
                "file": {
                    "type": "string",
                    "description": "the published file, relative to the workspace",
                },
            },
        },
        "TaskSummary": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "parent": {"type": ["string", "null"]},
                "phase": {"enum": ["pending", "active", "waiting", "done", "failed", "cancelled"]},
                "session": {
                    "enum": [
                        "absent",
                        "starting",
                        "restoring",
                        "idle",
                        "busy",
                        "stopping",
                        "swapped",
                        "crashed",
                    ]
                },
                "pending_permissions": {"type": "integer"},
                "children": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/TaskSummary"},
                },
            },
        },
        "TaskTree": {
            "type": "object",
            "properties": {
                "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/TaskSummary"}},
                "count": {"type": "integer"},
            },
        },
        "TranscriptPage": {
            "type": "object",
            "properties": {
                "offset": {"type": "integer"},
                "next_offset": {"type": "integer"},
                "end": {"type": "integer"},
                "more": {"type": "boolean"},
                "records": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"offset": {"type": "integer"}, "record": {"type": "object"}},
                    },
                },
            },
        },
        "Stats": {
            "type": "object",
            "properties": {
                "tasks": {"type": "object", "additionalProperties": {"type": "integer"}},
                "sessions": {"type": "object", "additionalProperties": {"type": "integer"}},
                "permissions": {"type": "object", "properties": {"pending": {"type": "integer"}}},
                "supervisor": {"type": "object"},
                "runtime": {
                    "type": ["object", "null"],
                    "description": "stats.json: slots, swaps, turns",
                },
                "streams": {"type": "integer"},
                "events_cursor": {
                    "type": "string",
                    "description": "`e:<offset>`: resume /api/events after this snapshot",
                },
            },
        },
    },
    "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meta-harness HTTP API",
            "version": __version__,
            "description": (
                "Reads workspace files; changes state only by publishing drop and answer files. "
                "A token is required only when the server is bound to a non-loopback address."
            ),
        },
        "paths": PATHS,
        "components": COMPONENTS,
        "security": [{}, {"token": []}],
    }
