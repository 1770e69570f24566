"""`config show`, `config check` and `agents`: the merged config and where each value came from.

Layers (built-in < user < workspace < environment < `--set`) are merged by
`base.config.load_config`; each leaf keeps its origin (`Config.origin`). For a profile,
a value comes from the first profile along its `extends` chain that sets it, and from
that profile's origin; a value no profile sets is the model's default.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import click
import orjson

from meta_harness.cli.context import CliContext, pass_cli
from meta_harness.cli.output import print_json, table

if TYPE_CHECKING:
    from meta_harness.base.config import Config
    from meta_harness.base.layout import Workspace

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
VALUE_COLUMN = 56  # `config show` aligns origins after this many characters at most


def _leaves(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every (path, value) whose value is not a table."""
    if isinstance(value, dict) and value:
        return [
            leaf for key, child in value.items() for leaf in _leaves(child, (*prefix, str(key)))
        ]
    return [(prefix, value)]


def _lookup(table_: dict[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = table_
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _profile_chain(config: Config, name: str) -> list[str]:
    chain: list[str] = []
    current: Any = name
    while isinstance(current, str) and current not in chain:
        chain.append(current)
        current = (config.settings.profiles.get(current) or {}).get("extends")
    return chain


def _origin(config: Config, path: tuple[str, ...]) -> dict[str, str]:
    found = config.origin(*path)
    if found is None:
        return {"layer": "default", "source": "model default"}
    return {"layer": found.layer.value, "source": found.source}


def _entries(config: Config, profile: str | None) -> list[dict[str, Any]]:
    if profile is None:
        return [
            {"key": ".".join(path), "value": value, **_origin(config, path)}
            for path, value in _leaves(config.raw)
        ]
    resolved = config.profile(profile).model_dump(mode="json", exclude_none=True)
    chain = _profile_chain(config, profile)
    out = []
    for path, value in _leaves(resolved):
        owner = next((p for p in chain if _lookup(config.settings.profiles[p], path)), None)
        where = (
            {"profile": owner, **_origin(config, ("profiles", owner, *path))}
            if owner is not None
            else {"profile": None, "layer": "default", "source": "model default"}
        )
        out.append({"key": ".".join(path), "value": value, **where})
    return out


@click.group()
def config() -> None:
    """Inspect the merged configuration."""


@config.command("show")
@click.option("-p", "--profile", help="Show this profile, resolved (extends applied).")
@json_option
@pass_cli
def config_show(cli: CliContext, profile: str | None, as_json: bool) -> None:
    """Print every config value with the layer and file it came from."""
    workspace = _optional_workspace(cli)
    loaded = cli.config(workspace)
    entries = _entries(loaded, profile)
    if as_json:
        print_json({e["key"]: {k: v for k, v in e.items() if k != "key"} for e in entries})
        return
    lefts = [f"{e['key']} = {orjson.dumps(e['value']).decode()}" for e in entries]
    pad = min(max((len(x) for x in lefts), default=0), VALUE_COLUMN)
    for left, e in zip(lefts, entries, strict=True):
        click.echo(f"{left.ljust(pad)}  # {_where(e, profile)}")


def _where(entry: dict[str, Any], profile: str | None) -> str:
    layer, source = entry["layer"], entry["source"]
    where = (
        "--set"
        if source == "--set"
        else layer
        if source in ("built-in defaults", "model default")
        else f"{layer} {source}"
    )
    if entry.get("profile") and entry["profile"] != profile:
        where = f"profiles.{entry['profile']} ({where})"
    return where


@config.command("check")
@json_option
@pass_cli
def config_check(cli: CliContext, as_json: bool) -> None:
    """Load and validate every layer; print OK, or the error naming file, key and reason."""
    workspace = _optional_workspace(cli)
    loaded = cli.config(workspace)
    sources = sorted({o.source for o in loaded.origins.values()})
    if as_json:
        print_json({"ok": True, "sources": sources, "profiles": sorted(loaded.profiles)})
        return
    click.echo(f"OK: {len(loaded.profiles)} profiles, {len(loaded.settings.agents)} agents")
    for source in sources:
        click.echo(f"  from {source}")


@click.group(invoke_without_command=True)
@json_option
@pass_cli
@click.pass_context
def agents(ctx: click.Context, cli: CliContext, as_json: bool) -> None:
    """List the agent definitions: name, command and description (`agents doctor` checks them)."""
    if ctx.invoked_subcommand is not None:
        return
    loaded = cli.config(_optional_workspace(cli))
    found = loaded.settings.agents
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    "command": a.command,
                    "description": a.description,
                    "env_from": a.env_from,
                }
                for name, a in sorted(found.items())
            ]
        )
        return
    rows = [[name, shlex.join(a.command), a.description] for name, a in sorted(found.items())]
    click.echo(table(["NAME", "COMMAND", "DESCRIPTION"], rows))


def _optional_workspace(cli: CliContext) -> Workspace | None:
    """The workspace if there is one: the config commands also work outside a workspace."""
    from meta_harness.base.errors import WorkspaceError

    try:
        return cli.workspace()
    except WorkspaceError:
        if cli.workspace_option is not None:
            raise
        return None


@agents.command()
@click.argument("names", nargs=-1)
@json_option
@pass_cli
def doctor(cli: CliContext, names: tuple[str, ...], as_json: bool) -> None:
    """Check that agents are installed, start, and answer `initialize`; print capabilities.

    Starts each agent (default: all defined) exactly as a task would, in a scratch
    directory, and ends it again. Exits 1 if any agent fails.
    """
    import asyncio

    from meta_harness.base.layout import Workspace
    from meta_harness.runtime.doctor import check_agents

    found = _optional_workspace(cli)
    workspace = found or Workspace.at(".")
    loaded = cli.config(found)
    chosen = list(names) or sorted(loaded.settings.agents)
    results = asyncio.run(check_agents(loaded, workspace, chosen))
    if as_json:
        print_json([r.__dict__ for r in results])
    else:
        for r in results:
            if r.ok:
                caps = r.capabilities
                session = caps.get("sessionCapabilities") or {}
                mcp = caps.get("mcpCapabilities") or {}
                features = [
                    "loadSession" if caps.get("loadSession") else "no loadSession (pinned)",
                    *(k for k in ("resume", "close", "list", "fork") if k in session),
                    "mcp:" + ",".join(["stdio", *(k for k in ("http", "sse") if mcp.get(k))]),
                ]
                info = f"{r.agent_info.get('name', '?')} {r.agent_info.get('version', '')}".strip()
                took = f"{r.seconds:.2f} s" if r.seconds is not None else "?"
                click.echo(f"ok    {r.agent:<10} {info} ({took}): {', '.join(features)}")
            else:
                click.echo(f"FAIL  {r.agent:<10} {r.error}")
                if r.stderr_tail.strip():
                    click.echo("      stderr: " + r.stderr_tail.strip().splitlines()[-1][:200])
    if not all(r.ok for r in results):
        raise SystemExit(1)
