"""Agent layer: agent processes and their ACP connections. The only layer that imports `acp`."""
