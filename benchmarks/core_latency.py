"""Benchmark: drop file -> prompt at the demo agent, through a real supervisor.

Starts `meta_harness.runtime.supervisor.run` in a subprocess on a throw-away workspace
(empty meta-harness.toml, the built-in demo agent), warms one task's session, then sends
messages one at a time: t0 = `time.time()` just before the drop file is published
(dot-name + rename into `tasks/<id>/inbox/`); the next message goes only after the
previous one's `ack` is in the WAL. Afterwards the timestamps are read from the files
(all `time.time()`, one clock): WAL `msg` (durable), WAL `sent`, the transcript's
outgoing `session/prompt` frame (written by the supervisor) and the demo agent's
`received.jsonl` (taken when the prompt arrived). Goal: drop -> received p50 <= 5 ms,
p99 <= 25 ms. Prints figures; asserts nothing.
Run: `/work/venv/bin/python benchmarks/core_latency.py [--quick] [--messages N]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    prompt_frames,
    publish,
    received_records,
    running_supervisor,
    wal_times,
    warm_task,
)

TASK = "bench-latency"
GOAL_P50_MS = 5.0
GOAL_P99_MS = 25.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 messages, 5 warm-ups")
    parser.add_argument("--messages", type=int, default=None, help="measured messages")
    parser.add_argument("--warmups", type=int, default=None, help="unmeasured messages first")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause after each ack")
    args = parser.parse_args()
    count = args.messages or (200 if args.quick else 1000)
    warmups = args.warmups if args.warmups is not None else (5 if args.quick else 20)

    with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
        root = Path(tmp)
        ws = make_workspace(root)
        with running_supervisor(ws, isolated_env(root), root / "supervisor.log") as sup:
            wal = warm_task(ws, sup, TASK, warmups)
            inbox = ws.task(TASK).inbox
            t0: dict[str, float] = {}
            for i in range(count):
                message_id = f"m-{i}"
                t0[message_id] = time.time()
                publish(inbox, f"{message_id}.json", {"id": message_id, "text": f"hello {i}"})
                wal.wait_for("ack", message_id)
                if args.gap_ms:
                    time.sleep(args.gap_ms / 1000)
        wal_ts = wal_times(ws, TASK)
        frames = prompt_frames(ws, TASK)
        received = {r["messageId"]: float(r["ts"]) for r in received_records(ws, TASK)}

    def ms(a: dict[str, float], b: dict[str, float]) -> list[float]:
        return [(b[m] - a[m]) * 1000 for m in t0 if m in a and m in b]

    durable = {m: wal_ts[("msg", m)] for m in t0 if ("msg", m) in wal_ts}
    sent = {m: wal_ts[("sent", m)] for m in t0 if ("sent", m) in wal_ts}
    acked = {m: wal_ts[("ack", m)] for m in t0 if ("ack", m) in wal_ts}
    print(f"core latency, {machine()}, {count} messages one at a time, {warmups} warm-ups")
    print_rows(
        "end to end (t0 = just before the drop file is published)",
        [
            ("drop -> received by agent", ms(t0, received)),
            ("drop -> prompt written", ms(t0, frames)),
            ("drop -> acked (turn over)", ms(t0, acked)),
        ],
    )
    print_rows(
        "stages",
        [
            ("drop -> WAL msg (watcher+ingest)", ms(t0, durable)),
            ("WAL msg -> WAL sent (runner)", ms(durable, sent)),
            ("WAL sent -> prompt written", ms(sent, frames)),
            ("prompt written -> received", ms(frames, received)),
        ],
    )
    got = ms(t0, received)
    if got:
        from _common import describe

        d = describe(got)
        verdict = "meets" if d["p50"] <= GOAL_P50_MS and d["p99"] <= GOAL_P99_MS else "MISSES"
        print(
            f"drop -> received: p50 {d['p50']:.2f} ms (goal <= {GOAL_P50_MS:g}), "
            f"p99 {d['p99']:.2f} ms (goal <= {GOAL_P99_MS:g}): {verdict} the goal"
        )


if __name__ == "__main__":
    main()
