"""Runtime layer: the asyncio shell that watches the workspace and drives agents."""
