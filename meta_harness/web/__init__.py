"""The HTTP surface: a JSON API, resumable SSE streams and a dashboard page, all over files.

Reads state only from workspace files and changes state only by publishing drop and answer
files, so it works the same inside the supervisor (`service.http_service`) or beside it.
Imports `base` and `domain` (plus Starlette, uvicorn, sse-starlette); never the runtime.
"""
