"""`run_batch`: a classify / detect / segment / segment3d job over many inputs, on either engine.

    from ovtools.engine import EngineConfig, run_batch
    run_batch("detect", ["world/images/"], "dets.jsonl", preset="detect-shapes",
              config=EngineConfig(engine="ray", concurrency=2))

Inputs are listed (:func:`~ovtools.engine.inputs.list_inputs`), arguments that
yield nothing become error rows, inputs already in the output are skipped with
``resume``, and the rest run on the local engine or on Ray; rows stream into a
JSON Lines or Parquet file (:mod:`ovtools.engine.sinks`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .config import EngineConfig
from .inputs import is_uri, list_inputs
from .local import run_local
from .records import check_task, error_row
from .sinks import RowSink


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did.

    Attributes:
        output: the output file.
        n_inputs: sources listed (plus arguments that gave none).
        n_skipped: inputs skipped because the output already had their rows (``resume``).
        n_rows: rows written by this run.
        n_errors: error rows written by this run.
        seconds: wall time of the processing (listing and output excluded).
    """

    output: Path
    n_inputs: int
    n_skipped: int
    n_rows: int
    n_errors: int
    seconds: float


class _CountingSink:
    """Counts error rows on their way to the real sink."""

    def __init__(self, sink: RowSink) -> None:
        self.sink = sink
        self.errors = 0

    def write(self, rows) -> None:
        rows = list(rows)
        self.errors += sum(1 for r in rows if "error" in r)
        self.sink.write(rows)


def run_batch(task: str, inputs: Sequence[str | Path], output: str | Path, *, preset: str | Path | None = None,
              overrides: Mapping[str, Any] | None = None, config: EngineConfig | None = None,
              recursive: bool = False, pipe=None) -> BatchSummary:
    """Run ``task`` on every input and stream one row per image (or scene) into ``output``.

    Args:
        task: ``"classify"``, ``"detect"``, ``"segment"`` or ``"segment3d"``.
        inputs: files, folders, glob patterns, object-store URIs (see
            :func:`~ovtools.engine.inputs.list_inputs`).
        output: ``.jsonl`` / ``.ndjson`` or ``.parquet`` file (rows as in :mod:`ovtools.engine.records`).
        preset: preset name or YAML path (``None`` → the task's ``*-default`` preset).
        overrides: preset keys (``labels``, ``score_threshold``, ...); must pickle (Ray sends them
            to every actor).
        config: engine settings (default: local engine).
        recursive: descend into sub-folders / below URI prefixes.
        pipe: local engine only: an already built pipeline to use instead of building one.

    Returns:
        :class:`BatchSummary`.

    Raises:
        ValueError: unknown task, or ``pipe`` with the Ray engine.
        OutputPathError: unusable output (unknown suffix, an input, a folder).
        ConfigError, UnknownNameError, WeightsUnavailableError: the pipeline cannot be built
            (local engine; on Ray the actor error carries the cause).
        ImportError: ``engine="ray"`` (or a URI / Parquet output) without ``ovtools[ray]``.
    """
    check_task(task)
    cfg = config or EngineConfig()
    if pipe is not None and cfg.engine != "local":
        raise ValueError("pipe= is only for the local engine; Ray actors build their own pipeline")
    overrides = dict(overrides or {})
    sources, problems = list_inputs(inputs, task, recursive)
    local_inputs = [s for s in sources if not is_uri(s)]
    sink = RowSink(output, task, resume=cfg.resume, inputs=local_inputs)
    counting = _CountingSink(sink)
    try:
        todo = [s for s in sources if s not in sink.done]
        bad = [(name, reason) for name, reason in problems if name not in sink.done]
        counting.write([error_row(task, name, reason) for name, reason in bad])
        n_skipped = len(sources) + len(problems) - len(todo) - len(bad)
        bar = tqdm(total=len(todo), desc=f"{task} ({cfg.engine})", unit="input", file=sys.stderr,
                   disable=not cfg.progress or len(todo) < 2, dynamic_ncols=True)
        t0 = time.perf_counter()
        with bar:
            if cfg.engine == "ray":
                from .ray import run_ray  # optional extra: ovtools[ray]

                run_ray(task, preset, overrides, todo, counting, bar, cfg)
            else:
                run_local(task, preset, overrides, todo, counting, bar, cfg.ray_batch_size, pipe)
        seconds = time.perf_counter() - t0
    except BaseException:
        sink.abort()
        raise
    path = sink.close()
    return BatchSummary(path, len(sources) + len(problems), n_skipped, sink.written, counting.errors, seconds)
