"""The typer application object shared by every command module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ovtools",
    help="Open-vocabulary vision on CLIP: classify, detect and evaluate with labels in plain language.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
