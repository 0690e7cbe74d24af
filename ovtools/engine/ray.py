"""The Ray engine: a Ray Data pipeline of actors that each hold the model once.

Inputs (local paths or object-store URIs) become a Ray dataset; an actor pool
(``ActorPoolStrategy(size=concurrency)``, ``num_gpus`` / ``num_cpus`` per actor)
builds the task's pipeline once per actor from ``(task, preset, overrides)`` and
maps groups of ``ray_batch_size`` inputs to rows with
:func:`ovtools.engine.records.rows_for` — the function the local engine calls, so
both give the same rows.  Rows stream back to the driver in input order and are
appended to the output as they arrive.

Failures: an input that cannot be read or processed is an error row written by
the actor (the job goes on).  A worker process or node that dies is handled by
Ray: the actor is restarted (the model loads again) and its unfinished group is
re-run; a group whose task still fails after Ray's retries becomes error rows
("no result ...") instead of failing the job.

Cluster: ``ray_address`` (or ``$RAY_ADDRESS``) joins an existing cluster; else
a local cluster is started for the run (``local_num_cpus`` CPUs, no dashboard)
and stopped after it.  An already initialised Ray session is used as it is.
This module imports ``ray`` (the ``ovtools[ray]`` extra).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
import ray.data

from ..encoders.loading import MODEL_CONFIGS_ENV
from ..errors import EngineError
from .config import EngineConfig
from .records import build_pipeline, error_row, rows_for

#: Environment variables handed to every actor (where a cluster's workers would not have them).
FORWARDED_ENV = (MODEL_CONFIGS_ENV, "OVTOOLS_CACHE_DIR", "HF_HUB_OFFLINE", "HF_HOME")


class PipelineActor:
    """A Ray Data map_batches callable: builds the pipeline once, then maps ``{"source"}`` batches to rows.

    Args:
        task: the batch task.
        preset: preset name or YAML path (``None`` → the task's default preset).
        overrides: preset keys.

    Returns (per call):
        ``{"source": [str], "row": [JSON string of the row]}`` in the batch's order.
    """

    def __init__(self, task: str, preset: str | None, overrides: Mapping[str, Any]) -> None:
        self.task = task
        self.pipe = build_pipeline(task, preset, overrides)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[str]]:
        sources = [str(s) for s in batch["source"]]
        rows = rows_for(self.pipe, self.task, sources)
        return {"source": sources, "row": [json.dumps(r, ensure_ascii=False) for r in rows]}


def root_cause(error: BaseException) -> str:
    """One line naming what went wrong inside a Ray task or actor (not Ray's wrapper and traceback)."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        nxt = getattr(e, "cause", None) or e.__cause__
        if not isinstance(nxt, BaseException):
            break
        e = nxt
    if e is not None and not type(e).__module__.startswith("ray"):
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    lines = re.findall(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception): .+)$", str(error), re.MULTILINE)
    return lines[-1].strip() if lines else str(error).strip().splitlines()[0]


def connect(cfg: EngineConfig) -> bool:
    """Join ``cfg.ray_address`` / ``$RAY_ADDRESS`` or start a local cluster, unless Ray is initialised.

    Returns:
        Whether this call initialised Ray (then the caller shuts it down).
    """
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    kwargs.update(log_to_driver=False, logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=cfg.local_num_cpus, include_dashboard=False, **kwargs)
    return True


def run_ray(task: str, preset: str | Path | None, overrides: Mapping[str, Any], sources: Sequence[str],
            sink, bar, cfg: EngineConfig) -> None:
    """Process ``sources`` on a Ray cluster (arguments as :func:`ovtools.engine.local.run_local`).

    Raises:
        EngineError: the job failed on the cluster, e.g. no actor could build the pipeline (unknown
            model, missing weights); the message names the cause.
    """
    if not sources:
        return
    started = connect(cfg)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.execution_options.preserve_order, ctx.max_errored_blocks)
    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # our bar replaces Ray Data's progress lines
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True  # rows come back in input order
        ctx.max_errored_blocks = -1  # a group that fails after retries becomes error rows below
        n_groups = math.ceil(len(sources) / cfg.ray_batch_size)
        ds = ray.data.from_items([{"source": s} for s in sources], override_num_blocks=n_groups)
        ds = ds.map_batches(
            PipelineActor,
            fn_constructor_kwargs={"task": task, "preset": None if preset is None else str(preset),
                                   "overrides": dict(overrides)},
            batch_size=cfg.ray_batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=cfg.concurrency),
            num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus)
        seen: set[str] = set()
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                rows = [json.loads(r) for r in batch["row"]]
                seen.update(str(s) for s in batch["source"])
                sink.write(rows)
                bar.update(len(rows))
        except ray.exceptions.RayError as e:  # e.g. no actor could build the pipeline
            raise EngineError(f"the Ray job failed: {root_cause(e)}") from None
        missing = [s for s in sources if s not in seen]
        if missing:
            sink.write([error_row(task, s, "no result: its group failed on a Ray worker after retries")
                        for s in missing])
            bar.update(len(missing))
    finally:
        ctx.enable_progress_bars, ctx.execution_options.preserve_order, ctx.max_errored_blocks = saved
        if started:
            ray.shutdown()


__all__ = ["PipelineActor", "connect", "run_ray"]
