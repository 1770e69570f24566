"""CLI surface (click). The composition root: only `up` imports the runtime, lazily."""
