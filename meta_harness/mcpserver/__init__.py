"""The built-in MCP server: orchestration tools for agents, and each task's MCP server list.

A surface: it changes state only by publishing drop files and reads state only from
files, so it never touches runtime objects. `tools.build_mcp` makes the server;
`entries.mcp_entries` builds the `mcpServers` a task's agent gets. Kept import-free:
`python -m meta_harness.mcpserver.stdio` (the stdlib proxy) imports this package.
"""
