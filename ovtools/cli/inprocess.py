"""Run an ``ovtools`` command inside this Python process (tests and notebooks that want the CLI itself).

Library code never needs this: every command is a thin layer over a library function
(``ovtools eval`` → :func:`ovtools.eval.evaluate`, ``ovtools probe`` →
:func:`ovtools.eval.probe_evaluation`, ``ovtools datagen`` → :mod:`ovtools.datasets.export`).
"""

from __future__ import annotations

import typer.main

from .app import app


def run_cli(args: list[str]) -> None:
    """Run an ``ovtools`` command in this process.

    Raises:
        RuntimeError: the command exited with a non-zero code (the code and arguments are named).
    """
    command = typer.main.get_command(app)
    try:
        code = command.main([str(a) for a in args], prog_name="ovtools", standalone_mode=False)
        if isinstance(code, int) and code != 0:  # click returns an Exit's code without standalone mode
            raise RuntimeError(f"`ovtools {' '.join(map(str, args))}` exited with code {code}")
    except SystemExit as e:  # typer.Exit is turned into SystemExit by click for non-zero codes
        if e.code not in (0, None):
            raise RuntimeError(f"`ovtools {' '.join(map(str, args))}` exited with code {e.code}") from None
    except RuntimeError:
        raise
    except Exception as e:
        code = getattr(e, "exit_code", None)
        if code in (0, None) and type(e).__name__ == "Exit":
            return
        raise RuntimeError(f"`ovtools {' '.join(map(str, args))}` failed: {e}") from e
