"""Test helpers shared by several test packages (mock LLM server, real-agent launches)."""
