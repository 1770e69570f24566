"""`meta-harness stats`: slots in use (also per profile), queue depth, swaps, phases.

Reads `.meta-harness/stats.json`, which the running supervisor rewrites after changes
(at most twice a second). Without a running supervisor it says so and shows the last
published figures.
"""

from __future__ import annotations

import click
import orjson

from meta_harness.base.errors import NotFound
from meta_harness.cli.context import CliContext, pass_cli
from meta_harness.cli.output import print_json
from meta_harness.cli.state import supervisor_status

STATS_FILE = "stats.json"


def _ms(value: object) -> str:
    return f"{float(value) * 1000:.0f} ms" if isinstance(value, (int, float)) else "-"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def stats(cli: CliContext, as_json: bool) -> None:
    """Slots in use, queue depth, swaps and swap-in latency, task and session phases."""
    workspace = cli.workspace()
    path = workspace.state_dir / STATS_FILE
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFound("no statistics yet: the supervisor has not run in this workspace") from None
    if as_json:
        print_json(data)
        return
    status = supervisor_status(workspace)
    slots, swaps = data.get("slots", {}), data.get("swaps", {})
    if status.running:
        click.echo(f"supervisor: running (pid {status.pid})")
    else:
        click.echo("supervisor: not running (figures from its last run)")
    click.echo(
        f"slots: {slots.get('live', 0)}/{slots.get('max_live', '?')} live, "
        f"{slots.get('queue_depth', 0)} queued"
    )
    per_profile = slots.get("profiles")
    if isinstance(per_profile, dict) and per_profile:
        live = ", ".join(f"{name} {count}" for name, count in sorted(per_profile.items()))
        click.echo(f"live by profile: {live}")
    click.echo(
        f"swaps: {swaps.get('in', 0)} in, {swaps.get('out', 0)} out; swap-in p50 "
        f"{_ms(swaps.get('swap_in_p50'))}, p99 {_ms(swaps.get('swap_in_p99'))}"
    )
    click.echo(f"turns: {data.get('turns', 0)}, agent crashes: {data.get('crashes', 0)}")
    tasks = ", ".join(f"{k} {v}" for k, v in sorted(data.get("tasks", {}).items())) or "none"
    sessions = ", ".join(f"{k} {v}" for k, v in sorted(data.get("sessions", {}).items())) or "none"
    click.echo(f"tasks: {tasks}")
    click.echo(f"sessions: {sessions}")
