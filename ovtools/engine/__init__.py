"""Batch engines: many images or scenes through one pipeline, locally or on a Ray cluster.

* :class:`EngineConfig` — the engine settings (``engine: local | ray``, cluster address,
  actors, GPUs per actor, inputs per call, resume); the CLI options derive from it.
* :func:`run_batch` — list inputs, skip those already done, run, stream rows to
  JSON Lines or Parquet.
* :func:`rows_for` / :func:`process_image` — one row per input, shared by the CLI's
  local loop, the local engine and the Ray actors.

``ovtools.engine.ray`` imports Ray (``pip install 'ovtools[ray]'``); nothing else here does.
"""

from .batch import BatchSummary, run_batch
from .config import EngineConfig
from .inputs import list_inputs
from .records import ItemResult, build_pipeline, error_row, image_result, process_image, rows_for

__all__ = ["BatchSummary", "EngineConfig", "ItemResult", "build_pipeline", "error_row", "image_result",
           "list_inputs", "process_image", "rows_for", "run_batch"]
