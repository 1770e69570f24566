"""The one exception tree of meta-harness.

Every error carries a message a user can act on and an exit code. Errors are raised
anywhere and converted to output only at the edges: the CLI (exit code + one line),
the MCP server (tool error) and the HTTP API (status code). Agent errors follow trio's
split between "closed by us" (`AgentClosed`) and "broken by the peer" (`AgentBroken`).
"""

from __future__ import annotations


class MetaHarnessError(Exception):
    """Base of every error meta-harness raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MetaHarnessError):
    """The user asked for something malformed (bad argument, bad id)."""

    exit_code = 2
    http_status = 400


class InvalidId(UsageError):
    """An id that would become a path part is not safe (`/`, `..`, too long, empty)."""


class NotFound(MetaHarnessError):
    """A task, request or file the user named does not exist."""

    exit_code = 3
    http_status = 404


class Conflict(MetaHarnessError):
    """The request is valid but the current state forbids it (e.g. sending to a finished task)."""

    exit_code = 4
    http_status = 409


class TimedOut(MetaHarnessError):
    """A bounded wait ended before what it waited for happened (`send --wait --timeout`, demo)."""

    exit_code = 124  # as timeout(1)
    http_status = 504


class ConfigError(MetaHarnessError):
    """A config file or value is wrong; the message names the file, the key and the reason."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, source: str, key: str, reason: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


class WorkspaceError(MetaHarnessError):
    """The directory is not a usable workspace."""

    exit_code = 66  # EX_NOINPUT


class WorkspaceLocked(WorkspaceError):
    """Another supervisor already runs on this workspace."""

    exit_code = 75  # EX_TEMPFAIL

    def __init__(self, workspace: str, holder: str) -> None:
        super().__init__(
            f"another supervisor already runs on {workspace} ({holder}); "
            "stop it first, or use that one"
        )


class DropRejected(MetaHarnessError):
    """A dropped file failed validation; it is moved to `rejected/` with this reason."""

    http_status = 400


class IllegalTransition(MetaHarnessError):
    """A phase change that the transition table forbids (a bug, never user input)."""


class AgentError(MetaHarnessError):
    """Something went wrong talking to an agent process."""

    http_status = 502


class AgentStartError(AgentError):
    """The agent could not be started or did not answer `initialize`."""


class AgentClosed(AgentError):
    """The connection was closed by us (swap-out, cancel, shutdown); not a failure of the agent."""


class AgentBroken(AgentError):
    """The agent went away on its own (crash, EOF, kill) while we still needed it."""


class SessionLoadFailed(AgentError):
    """`session/load` or `session/resume` was refused or failed."""


class AgentRequestFailed(AgentError):
    """The agent answered a request with a JSON-RPC error (the process is still fine)."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"agent answered {method} with error {code}: {message}")
        self.method = method
        self.code = code
