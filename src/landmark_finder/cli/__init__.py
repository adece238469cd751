"""The command-line shell: one Typer app, one command group per module."""
