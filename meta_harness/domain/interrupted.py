"""A turn cut short by a crash: the follow-up message that asks the agent to go on.

After the agent or the supervisor died mid-turn, the `session/load` replay shows
whether the agent had received the message in flight. If it had, the message is acked
`recovered` (never sent twice), but its turn may have ended halfway through the work.
Unless the transcript shows the agent's answer to it (only the ack was lost), the
profile's `on_interrupted_turn = "continue"` gives the task one more message, with an
id derived from the interrupted one (so a second crash cannot add it twice), delivered
before anything else queued.
"""

from __future__ import annotations

import hashlib
import re

from meta_harness.domain.drops import MessageDrop

SENDER = "supervisor"
_SUFFIX = re.compile(r"\.continue(\d*)$")
_MAX_ID = 200  # layout's message-id limit

TEXT = (
    "[meta-harness] Your turn on message {id} was cut off: the agent process or the "
    "supervisor restarted while you were working on it. If that work is not finished, "
    "continue it now. If it is finished, repeat your final answer briefly."
)


def continuation_id(message_id: str) -> str:
    """`m1` → `m1.continue`; a continuation cut off again → `m1.continue2`, and so on."""
    found = _SUFFIX.search(message_id)
    if found is None:
        base, n = message_id, 1
    else:
        base, n = message_id[: found.start()], int(found.group(1) or 1) + 1
    candidate = f"{base}.continue{n if n > 1 else ''}"
    if len(candidate) <= _MAX_ID:
        return candidate
    digest = hashlib.sha256(base.encode()).hexdigest()[:32]
    return f"c-{digest}.continue{n if n > 1 else ''}"


def continuation(message_id: str) -> MessageDrop:
    """The follow-up message for the interrupted turn of `message_id`."""
    return MessageDrop(
        id=continuation_id(message_id),
        sender=SENDER,
        content=[{"type": "text", "text": TEXT.format(id=message_id)}],
        meta={"continues": message_id},
    )
