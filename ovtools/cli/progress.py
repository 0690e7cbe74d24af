"""What a running command shows on stderr: stage lines and per-item progress, on a terminal or not.

* :func:`stage` prints one line per stage (``detect: loading ViT-B-32 (laion2b_s34b_b79k)``);
* :func:`make_progress` gives a rich progress bar on a terminal, and, when stderr is a pipe or a
  file (CI logs, ``2> log.txt``), a :class:`LineProgress` that prints ``detect: 3/10 images, 12 s``
  at most every 2 seconds and once at the end;
* :func:`set_quiet` (``--quiet``) silences both; failures (``skipped <file>: <reason>``) are
  always printed.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

stderr = Console(stderr=True, highlight=False)
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no stage lines and no progress for the rest of this command."""
    _state["quiet"] = bool(quiet)


def stage(command: str, message: str) -> None:
    """One line on stderr, ``<command>: <message>`` (nothing under ``--quiet``)."""
    if not _state["quiet"]:
        stderr.print(f"{command}: {message}", markup=False, highlight=False, soft_wrap=True)


class LineProgress:
    """The progress-bar interface of :func:`make_progress` as plain lines, for stderr that is not a terminal.

    Args:
        total: number of items.
        description: the command, first word of each line.
        unit: what an item is (``"images"``, ``"scenes"``).
        interval: seconds between two lines at the least.
        quiet: print nothing but failures.
    """

    def __init__(self, total: int, description: str, unit: str = "images", interval: float = 2.0,
                 quiet: bool = False) -> None:
        self.total, self.description, self.unit, self.interval, self.quiet = total, description, unit, interval, quiet
        self.done = 0
        self.console = stderr
        self._t0 = self._last = time.perf_counter()

    def __enter__(self) -> LineProgress:
        self._t0 = self._last = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        return None

    def advance(self, task: int = 0, advance: int = 1) -> None:
        """Count ``advance`` more items done; print a line if ``interval`` passed or all are done."""
        self.done += advance
        now = time.perf_counter()
        if not self.quiet and self.total > 1 and (now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            self.console.print(f"{self.description}: {self.done}/{self.total} {self.unit}, {now - self._t0:.0f} s",
                               markup=False, highlight=False, soft_wrap=True)


def make_progress(total: int, description: str, unit: str = "images", interval: float = 2.0):
    """Progress for ``total`` items on stderr: a rich bar on a terminal, :class:`LineProgress` lines otherwise
    (at most one every ``interval`` seconds, and one at the end).

    Returns:
        ``(progress, task_id)``; use ``progress`` as a context manager and ``progress.advance(task_id)``
        per item; ``progress.console.print`` writes above the bar.
    """
    if not stderr.is_terminal:
        return LineProgress(total, description, unit, interval, quiet=_state["quiet"]), 0
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=stderr, disable=total < 2 or _state["quiet"], transient=False)
    return progress, progress.add_task(description, total=total)
