"""The guard: a token when bound beyond loopback, loopback Host names otherwise, no foreign
origins, JSON-only posts, capped bodies, and the token file kept private."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from meta_harness.base.errors import WorkspaceError
from meta_harness.base.layout import Workspace
from meta_harness.web.app import create_app
from meta_harness.web.auth import (
    Guard,
    host_name,
    is_loopback,
    load_or_create_token,
    loopback_hosts,
)

TOKEN = "ab" * 32


@pytest.fixture
def guarded(ws: Workspace) -> Iterator[TestClient]:
    """The real app with a token, as served on a non-loopback address."""
    with TestClient(create_app(ws, token=TOKEN), base_url="http://192.0.2.10:8080") as client:
        yield client


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_only_loopback_binds_go_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_token_is_made_once_with_mode_0600_and_then_reused(ws: Workspace) -> None:
    token, fresh = load_or_create_token(ws)
    assert fresh and len(token) == 64
    assert stat.S_IMODE(os.stat(ws.http_token_file).st_mode) == 0o600
    again, fresh_again = load_or_create_token(ws)
    assert (again, fresh_again) == (token, False)


def test_a_token_file_readable_by_others_is_made_private(ws: Workspace) -> None:
    token, _ = load_or_create_token(ws)
    os.chmod(ws.http_token_file, 0o644)
    assert load_or_create_token(ws) == (token, False)
    assert stat.S_IMODE(os.stat(ws.http_token_file).st_mode) == 0o600


def test_a_token_file_that_holds_no_token_is_refused(ws: Workspace) -> None:
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    ws.http_token_file.write_text("hunter2\n")
    with pytest.raises(WorkspaceError, match="does not hold a token"):
        load_or_create_token(ws)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": f"Bearer {TOKEN[:-1]}"},
        {"x-token": TOKEN},
        {b"authorization": "Bearer ünïcode".encode()},
    ],
)
@pytest.mark.parametrize("path", ["/", "/api/tasks", "/api/events", "/static/dashboard.js"])
def test_requests_without_the_right_token_get_401(
    guarded: TestClient, headers: dict[str, str] | dict[bytes, bytes], path: str
) -> None:
    response = guarded.get(path, headers=headers)
    assert response.status_code == 401
    assert "token" in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_token_is_accepted_as_a_bearer_header_or_a_query_parameter(
    guarded: TestClient,
) -> None:
    assert (
        guarded.get("/api/tasks", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    assert guarded.get(f"/api/tasks?token={TOKEN}").status_code == 200
    assert guarded.get("/api/tasks?token=wrong").status_code == 401


def test_the_page_passes_its_token_on_to_its_assets(guarded: TestClient) -> None:
    page = guarded.get(f"/?token={TOKEN}")
    assert page.status_code == 200
    assert f"/static/dashboard.js?token={TOKEN}" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8080", 200),
        ("localhost:8080", 200),
        ("[::1]:8080", 200),
        ("localhost", 200),
        ("evil.example:8080", 421),
        ("127.0.0.1.evil.example", 421),
        ("", 421),
    ],
)
def test_a_loopback_server_answers_only_to_loopback_host_names(
    client: TestClient, host: str, status: int
) -> None:
    assert client.get("/api/stats", headers={"host": host}).status_code == status


def test_a_foreign_origin_is_refused_and_the_own_origin_allowed(client: TestClient) -> None:
    foreign = client.post(
        "/api/tasks", json={"prompt": "x"}, headers={"origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    null = client.post("/api/tasks", json={"prompt": "x"}, headers={"origin": "null"})
    assert null.status_code == 403
    own = client.post("/api/tasks", json={"prompt": "x"}, headers={"origin": "http://127.0.0.1"})
    assert own.status_code == 202


def test_the_mcp_mount_is_left_to_the_mcp_server(ws: Workspace) -> None:
    async def inner(request: Request) -> PlainTextResponse:
        return PlainTextResponse("mcp says hi")

    app = Starlette(
        routes=[Mount("/mcp", routes=[Route("/", inner, methods=["GET", "POST"])])],
        middleware=[],
    )
    guarded = Guard(app, token=TOKEN, allowed_hosts=None, max_body=10)
    with TestClient(guarded) as client:
        response = client.post("/mcp/", content=b"x" * 100, headers={"content-type": "text/plain"})
        assert response.status_code == 200 and response.text == "mcp says hi"


def test_host_names_lose_their_port() -> None:
    assert host_name("[::1]:8080") == "::1"
    assert host_name("LOCALHOST:1") == "localhost"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert "127.0.0.2" in loopback_hosts("127.0.0.2")
