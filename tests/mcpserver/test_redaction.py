"""MCP secrets (task tokens, API keys in headers and env) never reach a transcript in clear.

The agent gets the full entries; the transcript line of each `session/new`, `load`,
`resume` and `fork` frame has every `headers[].value` and `env[].value` as `***`.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from meta_harness.agent.transcript import TranscriptWriter
from meta_harness.agent.transport import StdioTransport
from meta_harness.domain.transcript import REDACTED, redact_mcp_servers, redacted_frame

pytestmark = pytest.mark.anyio

SERVERS: list[dict[str, Any]] = [
    {
        "type": "http",
        "name": "meta-harness",
        "url": "http://127.0.0.1:1/mcp/",
        "headers": [{"name": "X-Task-Token", "value": "t-1.secret"}],
    },
    {
        "name": "files",
        "command": "/bin/x",
        "args": ["--flag"],
        "env": [{"name": "K", "value": "key"}],
    },
]


def test_header_and_env_values_are_hidden_and_everything_else_kept() -> None:
    before = copy.deepcopy(SERVERS)
    redacted = redact_mcp_servers(SERVERS)
    assert before == SERVERS  # the agent's copy is untouched
    assert redacted[0]["headers"] == [{"name": "X-Task-Token", "value": REDACTED}]
    assert redacted[1]["env"] == [{"name": "K", "value": REDACTED}]
    assert redacted[0]["url"] == SERVERS[0]["url"] and redacted[1]["args"] == ["--flag"]


@pytest.mark.parametrize(
    "method", ["session/new", "session/load", "session/resume", "session/fork"]
)
def test_session_setup_frames_are_redacted(method: str) -> None:
    frame = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": method,
        "params": {"cwd": "/w", "mcpServers": SERVERS},
    }
    redacted = redacted_frame(frame)
    assert redacted is not None
    text = orjson.dumps(redacted)
    assert b"t-1.secret" not in text and b'"key"' not in text
    assert redacted["params"]["cwd"] == "/w" and redacted["id"] == 3


def test_other_frames_and_frames_without_servers_stay_byte_exact() -> None:
    assert redacted_frame({"method": "session/prompt", "params": {"prompt": []}}) is None
    assert redacted_frame({"method": "session/new", "params": {"mcpServers": []}}) is None
    assert redacted_frame({"id": 1, "result": {"sessionId": "s"}}) is None


class _Pipe:
    """The stdin pipe of a fake agent: keeps what the transport writes."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None


async def test_the_transport_sends_the_secrets_to_the_agent_but_not_to_the_transcript(
    tmp_path: Path,
) -> None:
    pipe = _Pipe()
    transcript = TranscriptWriter(tmp_path / "transcript.jsonl", epoch=1)
    transport = StdioTransport(asyncio.StreamReader(), pipe, transcript)  # type: ignore[arg-type]
    new = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "session/new",
        "params": {"cwd": "/w", "mcpServers": SERVERS},
    }
    prompt = {"jsonrpc": "2.0", "id": 2, "method": "session/prompt", "params": {"sessionId": "s"}}
    await transport.send(new)
    await transport.send(prompt)
    transcript.close()

    assert b"t-1.secret" in pipe.data and b'"key"' in pipe.data
    lines = (tmp_path / "transcript.jsonl").read_bytes().splitlines()
    assert b"t-1.secret" not in lines[0] and b'"value":"***"' in lines[0]
    assert lines[1].endswith(b',"frame":' + orjson.dumps(prompt) + b"}")  # byte-exact
