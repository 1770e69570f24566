"""Writes a task's transcript: every ACP frame, both directions, plus supervisor notes.

One `write()` per line on an O_APPEND descriptor, so live followers (`logs -f`, SSE)
see whole lines. Not fsync'd: the inbox WAL carries durability, the transcript is the
story. The record format lives in `domain.transcript`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from meta_harness.domain.transcript import Direction, frame_line, note_line

logger = logging.getLogger(__name__)


class TranscriptWriter:
    def __init__(self, path: Path, epoch: int) -> None:
        self.path = path
        self.epoch = epoch
        self.loading = False  # frames received now are a session/load replay
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def frame(self, direction: Direction, raw: bytes) -> None:
        load = self.loading and direction is Direction.IN
        self._write(frame_line(direction, self.epoch, raw, load=load))

    def note(self, note: str, **fields: Any) -> None:
        self._write(note_line(self.epoch, note, **fields))

    def _write(self, line: bytes) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, line)
        except OSError:
            logger.exception("cannot append to %s", self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
