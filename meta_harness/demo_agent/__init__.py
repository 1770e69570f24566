"""Deterministic demo ACP agent: a stdlib-only protocol peer for tests, demos and the default.

Owns one agent process speaking ACP v1 (JSON-RPC 2.0, one JSON object per line on stdin/stdout),
its on-disk session state (so a SIGKILLed agent can `session/load`), and a tiny MCP
streamable-HTTP client. It imports nothing from `meta_harness` and nothing outside the stdlib:
spawn → `initialize` must stay far below 100 ms. Run it as
`python -m meta_harness.demo_agent [--state-dir DIR] [--no-load] [--no-resume] [--no-close]
[--fail-load] [--log-level LEVEL]`.

Methods: initialize, session/new, session/load, session/resume, session/close, session/list
(not advertised), session/prompt, session/cancel (notification). Anything else → -32601; bad
params → -32602; an unknown session → -32002. Flags: `--no-load` (no loadSession; session/load →
-32601), `--no-resume`, `--no-close` (capability dropped, method → -32601), `--fail-load`
(session/load always → -32002 "session not found").

State (dir = `--state-dir`, else `$MH_DEMO_STATE_DIR`, else `./.demo-agent`), per session in
`<state>/sessions/`:
- `<sid>.meta.json`  {"sessionId","cwd","mcpServers","createdAt","updatedAt"}, written atomically.
- `<sid>.jsonl`      one `update` object (the `params.update` of session/update) per line, appended
                     and fsynced BEFORE the notification is sent; load replays them in order.
- `<sid>.received.jsonl`  {"messageId","text","ts"} per prompt, fsynced when the prompt arrives
                     (`text` = the prompt's text blocks joined with "\\n", header included; `ts` =
                     float Unix seconds).

Prompt handling. Each prompt block is recorded and emitted as a `user_message_chunk` (live and on
replay). The text blocks are joined with "\\n"; a leading header line matching
`^\\[meta-harness message [^\\]]*\\]\\n?` is stripped; then each line starting with `/` is a
command, run in order, and each run of other lines is answered `echo: <text>` (surrounding blank
lines trimmed; an empty prompt answers `echo: `). Every agent reply is newline-terminated and
streamed as `agent_message_chunk`s split after whitespace ("echo: ", "hello ", "world\\n").
`\\n` and `\\\\` escapes are decoded in the TEXT of /say, /think, /write, /edit, /spawn, /complete.
A bad or unknown command answers `unknown command: /x` or `bad arguments for /x: why` and the
turn goes on. Commands:
- `/say TEXT`        TEXT as agent text.          `/think TEXT`  TEXT as agent_thought_chunk.
- `/plan A; B; C`    a `plan` update, entries {content, priority "medium", status "pending"}.
- `/stream N`        N agent_message_chunks of exactly 1024 ASCII chars
                     ("stream i/N " padded with "." and ending in "\\n").
- `/sleep MS`        sleep MS milliseconds (a session/cancel ends the turn "cancelled").
- `/hang`            wait for session/cancel, then stopReason "cancelled".
- `/crash`           fsync, then `os._exit(3)` mid-turn (no response).
- `/fail`            the prompt answers JSON-RPC error -32603 "demo failure".
- `/refuse`          stopReason "refusal".
- `/write PATH TEXT` fs/write_text_file {sessionId, path, content}; says `wrote PATH` or
                     `write failed: <client error>`. Relative paths are joined to the session cwd.
- `/read PATH`       fs/read_text_file {sessionId, path}; says the content (or `read failed: …`).
- `/edit PATH TEXT`  tool_call (kind edit, status pending, title "Edit PATH", content [diff
                     {path, newText}], locations [{path}]), then session/request_permission with
                     options allow-once/allow-always/reject-once/reject-always. Allowed →
                     fs/write_text_file, tool_call_update completed, says `edited PATH`. Rejected →
                     tool_call_update failed, says `permission denied`. Outcome cancelled →
                     tool_call_update failed, stopReason "cancelled". allow_always/reject_always are
                     remembered per session and tool kind (in memory only; not asked again).
- `/ask KIND TITLE`  tool_call of that kind (status pending) + permission request; says
                     `permission: <option kind>` (`permission: allow_always (remembered)` when not
                     asked); tool_call_update completed (allowed) or failed (rejected).
- `/run CMD ARGS…`   (shlex-split) tool_call kind execute, title "Run CMD ARGS…", permission as
                     for /edit, then terminal/create {sessionId, command, args, cwd, outputByteLimit
                     65536}, tool_call_update in_progress with content [{type terminal,
                     terminalId}], terminal/wait_for_exit, terminal/output, terminal/release,
                     tool_call_update completed; says
                     `<output>[(output truncated)\\n]exit status: N` (or `exit status: signal
                     SIG`). A cancel sends terminal/kill + terminal/release.
- `/spawn-grandchild` starts `sleep 3600` in the agent's own process group; says `grandchild pid N`.
- `/mcp SERVER TOOL JSON` tools/call on the session's http MCP server named SERVER (cached MCP
                     session per server per process); tool_call (kind other, title "mcp SERVER
                     TOOL", status in_progress) and tool_call_update completed|failed around it;
                     says `tool result: TEXT` or `tool error: TEXT`.
- `/spawn PROMPT`    = `/mcp meta-harness task_spawn {"prompt": PROMPT}`.
- `/complete TEXT`   = `/mcp meta-harness task_complete {"result": TEXT}`.
Tool call ids are `call-<n>`, counted per session across restarts. fs/terminal commands check the
client's advertised capabilities first. A session/cancel ends the turn "cancelled" after closing
open tool calls with status failed. stdin EOF → running turns are cancelled, in-flight requests
get up to 1 s to answer, exit 0; SIGTERM → the default action (immediate exit). Logging goes to
stderr only; fd 1 is re-pointed at stderr at startup so only protocol frames reach stdout.

Modules (stdlib and siblings only; this `__init__` imports nothing, so `python -m` pays only for
what `__main__` needs): `__main__` entry point, `flags` command line, `wire` stdio framing and
request/response matching, `agent` ACP methods and routing, `params` request validation,
`session` one live session, `store` session files, `turn` cancellation, `prompt` the prompt
interpreter, `commands` the `/` commands, `mcp_client` the MCP HTTP client, `protocol` shared
names, codes, enums and errors. Startup budget: os.path, not pathlib (~6 ms); argparse, uuid,
subprocess, shlex and urllib are avoided or imported only when used.
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: stay import-free
if TYPE_CHECKING:
    from .flags import Options as Options


def __getattr__(name: str) -> type:
    """`from meta_harness.demo_agent import Options` loads `flags` only when asked."""
    if name == "Options":
        from .flags import Options

        return Options
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
