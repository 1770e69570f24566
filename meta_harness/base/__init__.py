"""Base layer: files, ids, workspace layout, config and the error tree. Imports nothing above it."""
