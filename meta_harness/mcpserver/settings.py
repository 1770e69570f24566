"""The config as the MCP surface sees it: loaded from the files, reloaded when they change.

The composition root may hand the surface the supervisor's own `config()` instead
(that one also knows `--set` overrides). This default re-merges the layers only when
the user or workspace config file changed (mtime, size), and keeps the last good
config when an edit is broken, as the supervisor does.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from meta_harness.base.config import Config, load_config, user_config_file
from meta_harness.base.errors import ConfigError
from meta_harness.base.layout import Workspace

logger = logging.getLogger(__name__)

ConfigSource = Callable[[], Config]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class FileConfig:
    """`FileConfig(ws)()` is the current config; cheap when nothing changed."""

    def __init__(self, workspace: Workspace, overrides: Iterable[str] = ()) -> None:
        self.workspace = workspace
        self.overrides = tuple(overrides)
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._config: Config | None = None

    def __call__(self) -> Config:
        user = user_config_file(os.environ)
        key = (_stamp(user), _stamp(self.workspace.config_file), str(user))
        with self._lock:
            if self._config is not None and key == self._key:
                return self._config
            try:
                self._config = load_config(self.workspace, overrides=self.overrides)
            except ConfigError as e:
                if self._config is None:
                    raise
                logger.error("config edit ignored by the MCP server, keeping the last good: %s", e)
            self._key = key
            return self._config
