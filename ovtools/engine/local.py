"""The local engine: one pipeline in this process, inputs in groups, rows streamed to the sink.

The reference the Ray engine is checked against: both call
:func:`ovtools.engine.records.rows_for` on the same groups of inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .records import build_pipeline, rows_for


def run_local(task: str, preset: str | Path | None, overrides: Mapping[str, Any], sources: Sequence[str],
              sink, bar, group_size: int = 8, pipe=None) -> None:
    """Process ``sources`` in this process.

    Args:
        task: ``"classify"``, ``"detect"``, ``"segment"`` or ``"segment3d"``.
        preset: preset name or YAML path (``None`` → the task's default preset).
        overrides: preset keys.
        sources: local paths or object-store URIs, one per image or scene.
        sink: a :class:`~ovtools.engine.sinks.RowSink` (``write(rows)``).
        bar: a progress bar with ``update(n)``.
        group_size: inputs per :func:`rows_for` call (classify runs each group as one batch).
        pipe: an already built pipeline of ``task`` (then ``preset`` / ``overrides`` are not used).

    Raises:
        ConfigError, UnknownNameError, WeightsUnavailableError: the pipeline cannot be built.
    """
    if pipe is None:
        pipe = build_pipeline(task, preset, overrides)
    for start in range(0, len(sources), group_size):
        group = list(sources[start:start + group_size])
        sink.write(rows_for(pipe, task, group))
        bar.update(len(group))
