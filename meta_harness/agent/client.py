"""The client side of ACP that the supervisor offers each agent.

Handles what the agent asks of us: session updates (handed to the runtime's hooks;
the raw frames are already in the transcript), `fs/*` confined to the session's allowed
roots, `terminal/*`, and `session/request_permission` (decided by the runtime's hooks,
which apply the profile's rules and may hold the call until someone answers). Every
method not offered answers -32601: no Protocol stubs are inherited (see the SDK notes'
"protocol-stub trap"), so this class does not subclass `acp.Client`.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from acp import RequestError
from acp.schema import (
    AllowedOutcome,
    CreateTerminalResponse,
    DeniedOutcome,
    EnvVariable,
    KillTerminalResponse,
    PermissionOption,
    ReadTextFileResponse,
    ReleaseTerminalResponse,
    RequestPermissionResponse,
    TerminalExitStatus,
    TerminalOutputResponse,
    ToolCallUpdate,
    WaitForTerminalExitResponse,
    WriteTextFileResponse,
)
from pydantic import BaseModel

from meta_harness.agent.terminals import Terminals
from meta_harness.base.errors import MetaHarnessError
from meta_harness.base.fs import atomic_write

logger = logging.getLogger(__name__)

MAX_READ_BYTES = 16 * 1024 * 1024  # fs/read_text_file refuses larger files


class ClientHooks(Protocol):
    """What the runtime provides to one agent connection."""

    def on_update(self, session_id: str, update: dict[str, Any]) -> None: ...

    async def on_permission(
        self, session_id: str, tool_call: dict[str, Any], options: list[dict[str, Any]]
    ) -> str | None:
        """The optionId to answer with, or None for `cancelled`."""
        ...


def _dump(model: BaseModel | Any) -> Any:
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return model


class SupervisorClient:
    """One per agent connection."""

    def __init__(
        self,
        hooks: ClientHooks,
        *,
        roots: list[Path],
        cwd: Path,
        terminal_env: Mapping[str, str],
    ) -> None:
        self._hooks = hooks
        self._roots = [r.resolve() for r in roots]
        self._cwd = cwd
        self._terminal_env = dict(terminal_env)
        self.terminals = Terminals()

    # -- updates and permissions -------------------------------------------------------

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self._hooks.on_update(session_id, _dump(update))

    async def request_permission(
        self,
        session_id: str,
        tool_call: ToolCallUpdate,
        options: list[PermissionOption],
        **kwargs: Any,
    ) -> RequestPermissionResponse:
        option_id = await self._hooks.on_permission(
            session_id, _dump(tool_call), [_dump(o) for o in options]
        )
        if option_id is None:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=option_id)
        )

    # -- fs ------------------------------------------------------------------------------

    def _confined(self, path: str) -> Path:
        candidate = Path(path)
        if not candidate.is_absolute():
            raise RequestError.invalid_params({"path": path, "reason": "path must be absolute"})
        resolved = candidate.resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self._roots):
            roots = ", ".join(str(r) for r in self._roots)
            raise RequestError.invalid_params(
                {"path": path, "reason": f"outside the allowed roots ({roots})"}
            )
        return resolved

    async def read_text_file(
        self,
        session_id: str,
        path: str,
        line: int | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> ReadTextFileResponse:
        target = self._confined(path)
        try:
            if target.stat().st_size > MAX_READ_BYTES:
                raise RequestError.invalid_params({"path": path, "reason": "file too large"})
            text = target.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            raise RequestError.resource_not_found(path) from None
        except (IsADirectoryError, PermissionError) as e:
            raise RequestError.invalid_params({"path": path, "reason": e.strerror}) from None
        if line is not None or limit is not None:
            lines = text.splitlines(keepends=True)
            start = max((line or 1) - 1, 0)
            end = start + limit if limit is not None else None
            text = "".join(lines[start:end])
        return ReadTextFileResponse(content=text)

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> WriteTextFileResponse:
        target = self._confined(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, content.encode("utf-8"), durable=False)
        except OSError as e:
            raise RequestError.invalid_params({"path": path, "reason": e.strerror}) from None
        return WriteTextFileResponse()

    # -- terminals ---------------------------------------------------------------------------

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
        work = self._confined(cwd) if cwd else self._cwd
        full_env = dict(self._terminal_env)
        for var in env or []:
            full_env[var.name] = var.value
        try:
            terminal_id = await self.terminals.create(
                command, list(args or []), full_env, work, output_byte_limit
            )
        except OSError as e:
            raise RequestError.invalid_params({"command": command, "reason": str(e)}) from None
        return CreateTerminalResponse(terminal_id=terminal_id)

    def _terminal(self, terminal_id: str) -> Any:
        try:
            return self.terminals.get(terminal_id)
        except MetaHarnessError:
            raise RequestError.resource_not_found(terminal_id) from None

    async def terminal_output(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> TerminalOutputResponse:
        term = self._terminal(terminal_id)
        code = term.process.returncode
        status = None if code is None else _exit_status(code)
        return TerminalOutputResponse(
            output=term.text(), truncated=term.truncated, exit_status=status
        )

    async def wait_for_terminal_exit(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> WaitForTerminalExitResponse:
        self._terminal(terminal_id)
        term = await self.terminals.wait(terminal_id)
        status = _exit_status(term.process.returncode or 0)
        return WaitForTerminalExitResponse(exit_code=status.exit_code, signal=status.signal)

    async def kill_terminal(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> KillTerminalResponse:
        self._terminal(terminal_id)
        await self.terminals.kill(terminal_id)
        return KillTerminalResponse()

    async def release_terminal(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> ReleaseTerminalResponse:
        self._terminal(terminal_id)
        await self.terminals.release(terminal_id)
        return ReleaseTerminalResponse()

    # -- not offered -----------------------------------------------------------------------

    async def create_elicitation(self, *args: Any, **kwargs: Any) -> Any:
        raise RequestError.method_not_found("elicitation/create")

    async def complete_elicitation(self, *args: Any, **kwargs: Any) -> None:
        raise RequestError.method_not_found("elicitation/complete")

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RequestError.method_not_found(method)

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        logger.debug("ignoring extension notification %s", method)

    async def aclose(self) -> None:
        await self.terminals.aclose()


def _exit_status(code: int) -> TerminalExitStatus:
    if code < 0:
        return TerminalExitStatus(exit_code=None, signal=signal.Signals(-code).name)
    return TerminalExitStatus(exit_code=code, signal=None)


def roots_for(cwd: Path, extra: list[str]) -> list[Path]:
    return [cwd, *(Path(os.path.expanduser(p)) for p in extra)]
