"""meta-harness: a file-mediated supervisor for ACP coding agents.

Kept empty on purpose: `python -m meta_harness.demo_agent` and the CLI's fast
read commands import this package, so it must cost nothing.
"""

__version__ = "0.1.0"
