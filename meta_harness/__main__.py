"""`python -m meta_harness` runs the CLI."""

from meta_harness.cli.main import main

main()
