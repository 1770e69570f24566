"""Entry point of `python -m meta_harness.demo_agent`.

Parses the flags, logs to stderr, keeps stdout private for protocol frames, feeds stdin lines to
the agent, and at stdin EOF drains and exits 0.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from .agent import Agent
from .flags import Options
from .wire import Wire, read_lines

# Named explicitly: under `python -m` this module's __name__ is "__main__".
logger = logging.getLogger("meta_harness.demo_agent")


def main(argv: list[str] | None = None) -> NoReturn:
    options = Options(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=options.log_level,
        format="%(asctime)s demo-agent[%(process)d] %(levelname)s %(message)s",
    )
    # Keep the protocol stream private: fd 1 now points at stderr for anything else
    # (stray prints, grandchildren); frames go to a duplicate of the original stdout.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    wire = Wire(out_fd)
    agent = Agent(options, wire)
    logger.info("started, state dir %s", options.state_dir)
    for line in read_lines(0):
        try:
            agent.on_line(line)
        except Exception:  # one bad message must not end the connection
            logger.exception("failed to handle a message")
    logger.info("stdin closed; exiting")
    agent.drain()
    os._exit(0)


if __name__ == "__main__":
    main()
