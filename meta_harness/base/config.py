"""Layered configuration: built-in < user < workspace < environment < `--set`.

Each layer is a TOML document (the environment and `--set` are turned into one). Layers
are deep-merged (tables merge, everything else replaces); each leaf remembers the layer
and file it came from, so `config show` can say where a value came from and a bad value
is reported with its file, key and reason. Profiles may `extends` other profiles; a
resolved profile is what a task snapshots. Pure apart from reading the files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meta_harness.base.errors import ConfigError
from meta_harness.base.layout import Workspace

ENV_PREFIX = "META_HARNESS_"
ENV_PASSTHROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TMPDIR",
    "TZ",
    "USER",
    "LOGNAME",
    "SHELL",
    "HOME",
)


_M = TypeVar("_M", bound=BaseModel)


class Layer(StrEnum):
    BUILTIN = "builtin"
    USER = "user"
    WORKSPACE = "workspace"
    ENV = "env"
    CLI = "cli"


class Action(StrEnum):
    ALLOW = "allow"
    REJECT = "reject"
    ASK = "ask"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SupervisorSettings(Strict):
    max_live: int = Field(8, ge=1, le=10_000)
    idle_swap_after: float = Field(600.0, ge=0)
    default_profile: str = "demo"
    drop_settle: float = Field(1.0, ge=0)
    max_drop_bytes: int = Field(8 * 1024 * 1024, ge=1024)


class AgentDef(Strict):
    description: str = ""
    command: list[str]
    env: dict[str, str] = {}
    env_from: list[str] = []  # variables passed through by name from the supervisor's env
    env_passthrough: list[str] = list(ENV_PASSTHROUGH)

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value or not value[0]:
            raise ValueError("must name the program to run, e.g. ['claude-agent-acp']")
        return value


class McpServerDef(Strict):
    type: Literal["stdio", "http", "sse"] = "stdio"
    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    url: str | None = None
    headers: dict[str, str] = {}


class PermissionRule(Strict):
    action: Action
    # ACP tool kind: read, edit, delete, move, search, execute, think, fetch, other
    kind: str | None = None
    title: str | None = None  # glob on the tool call title
    tool: str | None = None  # glob on the tool name (from the title or _meta)


class PermissionPolicy(Strict):
    default: Action = Action.ASK
    timeout: float = Field(86400.0, ge=0)
    rules: list[PermissionRule] = []


class Limits(Strict):
    max_depth: int = Field(4, ge=0)
    max_children: int = Field(100, ge=0)
    restart_burst: int = Field(5, ge=1)
    restart_window: float = Field(300.0, gt=0)
    max_live: int | None = Field(None, ge=1)


class Profile(Strict):
    name: str
    description: str = ""
    agent: str
    mode: Literal["session", "oneshot"] = "session"
    cwd: str = "{workspace}"
    instructions: list[str] = []
    skills: list[str] = []
    mcp_servers: list[str] = []
    env: dict[str, str] = {}
    fs_roots: list[str] = []
    on_load_failure: Literal["fail", "fresh"] = "fail"
    on_interrupted_turn: Literal["continue", "leave"] = "continue"
    permissions: PermissionPolicy = PermissionPolicy()
    limits: Limits = Limits()


class Settings(Strict):
    supervisor: SupervisorSettings = SupervisorSettings()
    agents: dict[str, AgentDef] = {}
    mcp_servers: dict[str, McpServerDef] = {}
    profiles: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class Origin:
    layer: Layer
    source: str


@dataclass
class Config:
    settings: Settings
    raw: dict[str, Any]
    origins: dict[tuple[str, ...], Origin]
    profiles: dict[str, Profile] = field(default_factory=dict)
    workspace_text: str | None = None  # the meta-harness.toml this config was loaded from

    def workspace_changed(self, workspace: Workspace) -> bool:
        """Whether `meta-harness.toml` now differs from the text this config was loaded from."""
        try:
            return _read_text(workspace.config_file) != self.workspace_text
        except ConfigError:
            return True

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(
                "config", f"profiles.{name}", f"no such profile (known: {known})"
            ) from None

    def agent(self, name: str) -> AgentDef:
        try:
            return self.settings.agents[name]
        except KeyError:
            raise ConfigError("config", f"agents.{name}", "no such agent") from None

    def origin(self, *path: str) -> Origin | None:
        for i in range(len(path), 0, -1):
            found = self.origins.get(tuple(path[:i]))
            if found:
                return found
        return None


def user_config_file(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "meta-harness" / "config.toml"


def _read_text(path: Path) -> str:
    """A config file's text; "" if it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "", f"invalid TOML: {e}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    return _parse_toml(_read_text(path), str(path))


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_path(target: dict[str, Any], path: list[str], value: Any, source: str) -> None:
    node = target
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(source, ".".join(path), f"{part!r} is not a table")
        node = child
    node[path[-1]] = value


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """`META_HARNESS_SUPERVISOR__MAX_LIVE=4` sets `supervisor.max_live = 4`."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if path:
            _set_path(out, path, _parse_value(value), f"environment {key}")
    return out


def overrides_layer(overrides: Iterable[str]) -> dict[str, Any]:
    """`--set supervisor.max_live=4` (values are TOML; bare words are strings)."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", item, "expected KEY=VALUE, e.g. supervisor.max_live=4")
        _set_path(out, key.strip().split("."), _parse_value(value.strip()), "--set")
    return out


def _merge(
    base: dict[str, Any],
    layer: dict[str, Any],
    origins: dict[tuple[str, ...], Origin],
    origin: Origin,
    prefix: tuple[str, ...] = (),
) -> None:
    for key, value in layer.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origins, origin, path)
        else:
            base[key] = _copy(value)
            for stale in [p for p in origins if p[: len(path)] == path]:
                del origins[stale]
            _record(origins, path, value, origin)


def _record(
    origins: dict[tuple[str, ...], Origin], path: tuple[str, ...], value: Any, origin: Origin
) -> None:
    origins[path] = origin
    if isinstance(value, dict):
        for k, v in value.items():
            _record(origins, (*path, k), v, origin)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def builtin_layer() -> dict[str, Any]:
    return tomllib.loads(
        resources.files("meta_harness.base").joinpath("defaults.toml").read_text("utf-8")
    )


def load_config(
    workspace: Workspace | None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
    workspace_text: str | None = None,
) -> Config:
    """Merge every layer and validate. Raises ConfigError naming file, key and reason."""
    env = os.environ if env is None else env
    layers: list[tuple[dict[str, Any], Origin]] = [
        (builtin_layer(), Origin(Layer.BUILTIN, "built-in defaults")),
    ]
    user_file = user_config_file(env)
    layers.append((_read_toml(user_file), Origin(Layer.USER, str(user_file))))
    if workspace is not None:
        if workspace_text is None:
            workspace_text = _read_text(workspace.config_file)
        ws_data = _parse_toml(workspace_text, str(workspace.config_file))
        layers.append((ws_data, Origin(Layer.WORKSPACE, str(workspace.config_file))))
    layers.append((env_layer(env), Origin(Layer.ENV, "environment")))
    layers.append((overrides_layer(overrides), Origin(Layer.CLI, "--set")))

    raw: dict[str, Any] = {}
    origins: dict[tuple[str, ...], Origin] = {}
    for data, origin in layers:
        _merge(raw, data, origins, origin)

    settings = _validate(Settings, raw, (), origins)
    config = Config(settings=settings, raw=raw, origins=origins, workspace_text=workspace_text)
    for name in settings.profiles:
        config.profiles[name] = _resolve_profile(config, name)
    default = settings.supervisor.default_profile
    if default not in config.profiles:
        _fail(origins, ("supervisor", "default_profile"), f"no profile named {default!r}")
    return config


def _resolve_profile(config: Config, name: str) -> Profile:
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            cycle = " -> ".join([*chain, current])
            _fail(config.origins, ("profiles", name, "extends"), f"cycle: {cycle}")
        raw = config.settings.profiles.get(current)
        if raw is None:
            _fail(
                config.origins, ("profiles", chain[-1], "extends"), f"no profile named {current!r}"
            )
        if not isinstance(raw, dict):
            _fail(config.origins, ("profiles", current), "must be a table")
        chain.append(current)
        parent = raw.get("extends")
        if parent is not None and not isinstance(parent, str):
            _fail(config.origins, ("profiles", current, "extends"), "must be a profile name")
        current = parent
    merged: dict[str, Any] = {}
    scratch: dict[tuple[str, ...], Origin] = {}
    for link in reversed(chain):
        layer = {k: v for k, v in config.settings.profiles[link].items() if k != "extends"}
        _merge(merged, layer, scratch, Origin(Layer.BUILTIN, link))
    merged["name"] = name
    profile = _validate(Profile, merged, ("profiles", name), config.origins)
    if profile.agent not in config.settings.agents:
        _fail(config.origins, ("profiles", name, "agent"), f"no agent named {profile.agent!r}")
    for server in profile.mcp_servers:
        if server not in config.settings.mcp_servers:
            _fail(
                config.origins, ("profiles", name, "mcp_servers"), f"no MCP server named {server!r}"
            )
    return profile


def _validate(
    model: type[_M],
    data: dict[str, Any],
    prefix: tuple[str, ...],
    origins: dict[tuple[str, ...], Origin],
) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        path = (*prefix, *(str(p) for p in first["loc"]))
        reason = first["msg"]
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        _fail(origins, path, reason)


def _fail(origins: dict[tuple[str, ...], Origin], path: tuple[str, ...], reason: str) -> NoReturn:
    source = "config"
    for i in range(len(path), 0, -1):
        found = origins.get(path[:i])
        if found:
            source = found.source
            break
    raise ConfigError(source, ".".join(path), reason)
