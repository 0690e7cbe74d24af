"""The typer application object shared by every command module (``-h``/``--help``, ``--version``)."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__

app = typer.Typer(
    name="ovtools",
    help="Open-vocabulary vision on CLIP: classify, detect, segment images and 3D scenes with labels in plain "
    "language; evaluate, probe and train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: it wraps long option names instead of cutting them ("--contained-fra…")
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ovtools {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    """Open-vocabulary vision on CLIP: classify, detect, segment images and 3D scenes with labels in plain
    language; evaluate, probe and train."""
