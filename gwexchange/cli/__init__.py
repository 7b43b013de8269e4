"""The ``gwx`` command: ``app`` (typer) and ``main`` (the console script)."""

from gwexchange.cli.app import app, main

__all__ = ["app", "main"]
