"""Locate, launch and reliably stop the real ACP agents (Claude and Codex) for tests and benchmarks.

Owns: the pinned agent versions, the install check (running scripts/install-agents, or skipping
loudly when npm is unreachable), the argv and explicit environment of each agent pointed at a mock
LLM URL, spawning an agent in its own process group (stderr in a file, killed as a group), and a
small recording ACP client. It does not speak to the LLM (tests/support/mock_llm.py) nor decide
what a test sends over ACP.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import watchfiles
from acp import PROTOCOL_VERSION, Agent, Client, RequestError, connect_to_agent
from acp.client.connection import ClientSideConnection
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    CreateElicitationResponse,
    CreateTerminalResponse,
    DeniedOutcome,
    ElicitationMode,
    EnvVariable,
    FileSystemCapabilities,
    Implementation,
    InitializeResponse,
    KillTerminalResponse,
    PermissionOption,
    ReadTextFileResponse,
    ReleaseTerminalResponse,
    RequestPermissionResponse,
    TerminalOutputResponse,
    TextContentBlock,
    ToolCallUpdate,
    WaitForTerminalExitResponse,
    WriteTextFileResponse,
)

logger = logging.getLogger(__name__)

CLAUDE_PACKAGE = "@zed-industries/claude-agent-acp"
CLAUDE_VERSION = "0.23.1"
CODEX_PACKAGE = "@zed-industries/codex-acp"
CODEX_VERSION = "0.16.0"
CODEX_NATIVE_PACKAGE = "@zed-industries/codex-acp-linux-x64"
# A model codex knows: an unknown one makes it print a warning as agent text.
CODEX_MODEL = "gpt-5.4"
CODEX_KEY_VAR = "MOCK_LLM_API_KEY"  # the env var named by the mock provider's env_key
DUMMY_KEY = "sk-mock-not-a-real-key"
# Anything not sent to loopback goes to this proxy, where nothing listens: outbound HTTP(S) fails
# at once and without a DNS lookup (Claude Code fetches a plugin blocklist from GitHub otherwise).
BLACKHOLE_PROXY = "http://127.0.0.1:9"
NO_PROXY = "127.0.0.1,localhost,::1"

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-agents"

INSTALL_TIMEOUT = 600.0  # two npm installs (~300 MB) take 10-30 s; a slow mirror gets room
NPM_VIEW_TIMEOUT = 60.0  # one registry metadata lookup; failing it means npm is unreachable
AGENT_STOP_GRACE = 2.0  # room to exit on stdin EOF (claude and codex never do: SIGTERM follows)
GROUP_EXIT_WAIT = 5.0  # after SIGKILL, a process group empties within milliseconds
UPDATE_WAIT = 60.0  # a real agent's slowest step (claude session/load) takes ~5 s
SAVE_WAIT = 10.0  # claude-agent-acp appends its session file 10-150 ms after a prompt returns
SAVE_RECHECK_MS = 200  # re-check without a file event too: one may land before the watch starts


@dataclass(frozen=True)
class InstalledAgents:
    """Where the pinned agents live once installed."""

    root: Path
    claude_entry: Path  # node script: dist/index.js
    codex_binary: Path  # native binary, launched directly (its npm wrapper leaves it orphaned)


@dataclass(frozen=True)
class AgentLaunch:
    """Everything needed to start one agent process: nothing is inherited implicitly."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path


def agents_dir() -> Path:
    default = Path.home() / ".cache" / "meta-harness" / "agents"
    return Path(os.environ.get("MH_AGENTS_DIR") or default)


def _installed_version(root: Path, package: str) -> str | None:
    manifest = root / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _layout(root: Path) -> InstalledAgents:
    modules = root / "node_modules"
    return InstalledAgents(
        root=root,
        claude_entry=modules / CLAUDE_PACKAGE / "dist" / "index.js",
        codex_binary=modules / CODEX_NATIVE_PACKAGE / "bin" / "codex-acp",
    )


def _is_complete(agents: InstalledAgents) -> bool:
    return (
        _installed_version(agents.root, CLAUDE_PACKAGE) == CLAUDE_VERSION
        and _installed_version(agents.root, CODEX_PACKAGE) == CODEX_VERSION
        and agents.claude_entry.is_file()
        and os.access(agents.codex_binary, os.X_OK)
    )


def _npm_reachable() -> str | None:
    """None if npm can see both pinned packages, else why not."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not on PATH"
    for spec in (f"{CLAUDE_PACKAGE}@{CLAUDE_VERSION}", f"{CODEX_PACKAGE}@{CODEX_VERSION}"):
        try:
            done = subprocess.run(
                [npm, "view", spec, "version"],
                capture_output=True,
                text=True,
                timeout=NPM_VIEW_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"`npm view {spec}` timed out after {NPM_VIEW_TIMEOUT:.0f} s"
        if done.returncode != 0:
            errors = [ln for ln in done.stderr.splitlines() if ln.startswith("npm error")]
            return f"`npm view {spec}` failed: {'; '.join(errors[:2]) or done.returncode}"
    return None


@functools.cache
def ensure_agents_installed() -> InstalledAgents:
    """Return the installed agents, installing them first if needed.

    Skips the calling test (loudly) only when the cache lacks the agents AND npm is unreachable;
    an install that fails with npm reachable is an error, not a skip.
    """
    agents = _layout(agents_dir())
    if _is_complete(agents):
        return agents
    why = _npm_reachable()
    if why is not None:
        pytest.skip(
            f"REAL AGENTS NOT TESTED: the agent cache {agents.root} lacks "
            f"{CLAUDE_PACKAGE}@{CLAUDE_VERSION} / {CODEX_PACKAGE}@{CODEX_VERSION} and npm is "
            f"unreachable ({why}). Run scripts/install-agents with registry access."
        )
    logger.info("installing real agents into %s", agents.root)
    subprocess.run(
        [str(INSTALL_SCRIPT)],
        env={**os.environ, "MH_AGENTS_DIR": str(agents.root)},
        check=True,
        timeout=INSTALL_TIMEOUT,
        stdout=subprocess.DEVNULL,
    )
    if not _is_complete(agents):
        raise RuntimeError(f"scripts/install-agents ran but {agents.root} is incomplete")
    return agents


# ---------------------------------------------------------------------------------------------
# Launches


def _scratch_dirs(scratch: Path) -> tuple[Path, Path, Path]:
    home, work, tmp = scratch / "home", scratch / "work", scratch / "tmp"
    for path in (home, work, tmp):
        path.mkdir(parents=True, exist_ok=True)
    return home, work, tmp


def _base_env(home: Path, tmp: Path) -> dict[str, str]:
    user = getpass.getuser()
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "TMPDIR": str(tmp),
        "HTTP_PROXY": BLACKHOLE_PROXY,
        "HTTPS_PROXY": BLACKHOLE_PROXY,
        "ALL_PROXY": BLACKHOLE_PROXY,
        "NO_PROXY": NO_PROXY,
        "http_proxy": BLACKHOLE_PROXY,
        "https_proxy": BLACKHOLE_PROXY,
        "all_proxy": BLACKHOLE_PROXY,
        "no_proxy": NO_PROXY,
    }


def claude_launch(
    mock_url: str, scratch: Path, agents: InstalledAgents | None = None
) -> AgentLaunch:
    """claude-agent-acp on node, talking to the mock's Anthropic Messages API."""
    agents = agents or ensure_agents_installed()
    home, work, tmp = _scratch_dirs(scratch)
    node = shutil.which("node") or "node"
    env = _base_env(home, tmp) | {
        "ANTHROPIC_BASE_URL": mock_url,
        "ANTHROPIC_API_KEY": DUMMY_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    if os.geteuid() == 0:
        # Claude Code refuses to skip permissions as root unless told it runs in a sandbox. Seen
        # elsewhere: session/new failing with -32603 "Query closed before response received";
        # here (fresh HOME) it only hides the bypassPermissions mode. Harmless either way.
        env["IS_SANDBOX"] = "1"
    return AgentLaunch("claude", (node, str(agents.claude_entry)), env, work)


def codex_launch(
    mock_url: str, scratch: Path, agents: InstalledAgents | None = None
) -> AgentLaunch:
    """The native codex-acp binary with a `mock` model provider at the mock's Responses API."""
    agents = agents or ensure_agents_installed()
    home, work, tmp = _scratch_dirs(scratch)
    codex_home = scratch / "codex-home"
    codex_home.mkdir(exist_ok=True)
    provider = (
        f'{{name="mock",base_url="{mock_url}/v1",env_key="{CODEX_KEY_VAR}",wire_api="responses"}}'
    )
    argv = (
        str(agents.codex_binary),
        "-c", "model_provider=mock",
        "-c", f"model={CODEX_MODEL}",
        "-c", f"model_providers.mock={provider}",
        "-c", "analytics.enabled=false",
        "-c", "check_for_update_on_startup=false",
    )  # fmt: skip
    env = _base_env(home, tmp) | {"CODEX_HOME": str(codex_home), CODEX_KEY_VAR: DUMMY_KEY}
    return AgentLaunch("codex", argv, env, work)


LAUNCHERS: dict[str, Callable[[str, Path], AgentLaunch]] = {
    "claude": claude_launch,
    "codex": codex_launch,
}


# ---------------------------------------------------------------------------------------------
# Running one agent process


@dataclass
class RunningAgent:
    """A live agent process (its own process group) and the ACP connection to it."""

    launch: AgentLaunch
    conn: ClientSideConnection
    process: asyncio.subprocess.Process
    stderr_path: Path

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session makes the child its group's leader

    async def kill(self) -> None:
        """SIGKILL the whole process group and wait until it is empty."""
        _signal_group(self.pgid, signal.SIGKILL)
        await self.process.wait()
        await wait_group_empty(self.pgid)

    async def stop(self) -> None:
        """Shutdown ladder: stdin EOF, grace, SIGTERM the group, grace, SIGKILL the group."""
        with contextlib.suppress(Exception):
            await self.conn.close()
        if self.process.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.process.stdin.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                await asyncio.wait_for(self.process.wait(), AGENT_STOP_GRACE)
                break
            except TimeoutError:
                log = logger.info if sig is signal.SIGTERM else logger.warning
                log("agent %s (pgid %d) alive: %s", self.launch.name, self.pgid, sig.name)
            _signal_group(self.pgid, sig)
        await self.process.wait()
        await wait_group_empty(self.pgid)

    async def initialize(self) -> InitializeResponse:
        """The ACP handshake as our test client makes it: fs offered, terminals not."""
        return await self.conn.initialize(
            protocol_version=PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=True, write_text_file=True),
                terminal=False,
            ),
            client_info=Implementation(name="meta-harness-tests", version="0"),
        )

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


async def _exited(pid: int) -> None:
    """Wait (without polling) until `pid` has exited, using a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def wait_group_empty(pgid: int) -> None:
    """SIGKILL what is left of the group and wait until every member has exited."""
    async with asyncio.timeout(GROUP_EXIT_WAIT):
        while members := group_members(pgid):
            logger.debug("process group %d still has %s", pgid, members)
            _signal_group(pgid, signal.SIGKILL)
            await asyncio.gather(*(_exited(pid) for pid in members))


@contextlib.asynccontextmanager
async def start_agent(
    launch: AgentLaunch, client: Client, stderr_path: Path, **connection_kwargs: Any
) -> AsyncIterator[RunningAgent]:
    """Spawn `launch` in a new session (own process group), connect `client`, stop it on exit."""
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    with stderr_path.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            *launch.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=launch.env,
            cwd=launch.cwd,
            start_new_session=True,
        )
    assert process.stdin is not None and process.stdout is not None
    conn = connect_to_agent(client, process.stdin, process.stdout, **connection_kwargs)
    running = RunningAgent(launch, conn, process, stderr_path)
    try:
        yield running
    finally:
        await running.stop()


# ---------------------------------------------------------------------------------------------
# Where the agents keep their sessions (to wait until a turn is on disk before a SIGKILL)


def state_dirs(launch: AgentLaunch) -> list[Path]:
    """The agent's private state directories (HOME, and CODEX_HOME when set)."""
    return [Path(launch.env[key]) for key in ("HOME", "CODEX_HOME") if key in launch.env]


def session_files(launch: AgentLaunch, session_id: str) -> list[Path]:
    """Session transcripts named after the session id.

    Claude: $HOME/.claude/projects/<cwd-slug>/<id>.jsonl; Codex:
    $CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl. Both append-only JSONL.
    """
    return [p for d in state_dirs(launch) for p in d.rglob(f"*{session_id}*.jsonl")]


def session_saved(launch: AgentLaunch, session_id: str, needles: Sequence[str]) -> bool:
    for path in session_files(launch, session_id):
        text = path.read_text(errors="replace")
        if all(needle in text for needle in needles):
            return True
    return False


async def wait_session_saved(launch: AgentLaunch, session_id: str, *needles: str) -> None:
    """Wait until the agent's session file holds every needle (plain text, JSON-escape free).

    A prompt's answer is no proof the turn is on disk: claude-agent-acp writes it a little
    later, and a SIGKILL before that loses the turn (or the whole session after one prompt).
    """
    if session_saved(launch, session_id, needles):
        return
    async with asyncio.timeout(SAVE_WAIT):
        async for _changes in watchfiles.awatch(
            *state_dirs(launch),
            watch_filter=None,
            debounce=20,
            step=10,
            rust_timeout=SAVE_RECHECK_MS,
            yield_on_timeout=True,
        ):
            if session_saved(launch, session_id, needles):
                return


# ---------------------------------------------------------------------------------------------
# A small recording ACP client


def choose_option(options: Sequence[PermissionOption], approve: bool) -> str | None:
    """Pick an option by its kind (ids differ per agent): once before always."""
    kinds = ("allow_once", "allow_always") if approve else ("reject_once", "reject_always")
    for kind in kinds:
        for option in options:
            if option.kind == kind:
                return option.option_id
    return None


class RecordingClient:
    """A duck-typed ACP client (no Protocol subclass: unimplemented methods answer -32601).

    Records every session update, answers permissions by option kind, and serves fs/* inside
    the agent's working directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.updates: list[Any] = []
        self.permissions: list[tuple[ToolCallUpdate, list[PermissionOption], str | None]] = []
        self.fs_calls: list[tuple[str, str]] = []
        self.approve = True
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for(self, predicate: Callable[[list[Any]], bool], what: str) -> None:
        """Wait (bounded by UPDATE_WAIT) until the updates received so far satisfy `predicate`."""
        async with asyncio.timeout(UPDATE_WAIT):
            while not predicate(self.updates):
                await self._changed.wait()
        logger.debug("client saw %s", what)

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)
        self._notify()

    async def request_permission(
        self,
        session_id: str,
        tool_call: ToolCallUpdate,
        options: list[PermissionOption],
        **kwargs: Any,
    ) -> RequestPermissionResponse:
        chosen = choose_option(options, self.approve)
        self.permissions.append((tool_call, options, chosen))
        if chosen is None:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=chosen)
        )

    def _inside(self, path: str) -> Path:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise RequestError.invalid_params({"path": path, "reason": "outside the workspace"})
        return resolved

    async def read_text_file(
        self,
        session_id: str,
        path: str,
        line: int | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> ReadTextFileResponse:
        self.fs_calls.append(("read", path))
        lines = self._inside(path).read_text().splitlines(keepends=True)
        start = (line or 1) - 1
        end = None if limit is None else start + limit
        return ReadTextFileResponse(content="".join(lines[start:end]))

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> WriteTextFileResponse:
        self.fs_calls.append(("write", path))
        target = self._inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return WriteTextFileResponse()

    # Everything below is not offered (terminal=False) and answers -32601, the way a missing
    # method would: methods of a Protocol subclass would answer `null` instead (a trap).

    async def create_terminal(
        self,
        session_id: str,
        command: str,
        args: list[str] | None = None,
        env: list[EnvVariable] | None = None,
        cwd: str | None = None,
        output_byte_limit: int | None = None,
        **kwargs: Any,
    ) -> CreateTerminalResponse:
        raise RequestError.method_not_found("terminal/create")

    async def terminal_output(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> TerminalOutputResponse:
        raise RequestError.method_not_found("terminal/output")

    async def release_terminal(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> ReleaseTerminalResponse | None:
        raise RequestError.method_not_found("terminal/release")

    async def wait_for_terminal_exit(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> WaitForTerminalExitResponse:
        raise RequestError.method_not_found("terminal/wait_for_exit")

    async def kill_terminal(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> KillTerminalResponse | None:
        raise RequestError.method_not_found("terminal/kill")

    async def create_elicitation(
        self, message: str, mode: ElicitationMode, **kwargs: Any
    ) -> CreateElicitationResponse:
        raise RequestError.method_not_found("elicitation/create")

    async def complete_elicitation(self, elicitation_id: str, **kwargs: Any) -> None:
        raise RequestError.method_not_found("elicitation/complete")

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RequestError.method_not_found(method)

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        logger.debug("ignoring extension notification %s", method)

    def on_connect(self, conn: Agent) -> None:
        logger.debug("connected to %r", conn)


def texts(updates: Sequence[Any], kind: type[Any]) -> str:
    """All text of the updates of one kind (e.g. AgentMessageChunk), joined."""
    return "".join(
        u.content.text
        for u in updates
        if isinstance(u, kind) and isinstance(u.content, TextContentBlock)
    )
