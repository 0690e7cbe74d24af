"""`EngineConfig`: where a batch job runs (this process or a Ray cluster) and how.

The one declaration of the batch-engine settings: the commands' ``--engine``,
``--ray-address``, ``--concurrency``, ``--num-gpus``, ``--num-cpus``, ``--ray-batch-size``,
``--local-num-cpus`` and ``--resume`` options are derived from these fields
(:mod:`ovtools.cli.derive`), with their types, ranges and help texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..config import Config, setting

Engine = Literal["local", "ray"]
ENGINES = get_args(Engine)


@dataclass(frozen=True)
class EngineConfig(Config):
    """Settings of a batch run (:func:`ovtools.engine.run_batch`).

    Raises:
        TypeError / ValueError: on construction, a value of the wrong type or out of its range (named, with
            the value given).
    """

    engine: Engine = setting(
        "local", "Where the batch runs: local (this process) or ray (a Ray Data pipeline of actors that each hold "
        "the model; needs the ray extra). Rows stream into --output (.jsonl or .parquet).")
    ray_address: str | None = setting(
        None, "Ray cluster to join (e.g. ray://head:10001 or auto); null = $RAY_ADDRESS, else a local cluster "
        "started for the run and stopped after it.")
    concurrency: int = setting(1, "Ray actors, each holding one copy of the pipeline (one per GPU on a GPU "
                               "cluster).", minimum=1)
    num_gpus: float = setting(0.0, "GPUs reserved per Ray actor (1 = one actor per GPU; 0.5 = two actors share "
                              "a GPU).", minimum=0.0)
    num_cpus: float = setting(1.0, "CPUs reserved per Ray actor (also the torch threads Ray lets the actor use).",
                              minimum=0.0, exclusive_minimum=True)
    ray_batch_size: int = setting(8, "Inputs (images or scenes) handed to an actor per call; a crash retries at "
                                  "most this many.", minimum=1)
    local_num_cpus: int | None = setting(None, "CPUs of the local Ray cluster started when no address is given; "
                                         "null = all of this machine's.", minimum=1)
    resume: bool = setting(False, "Skip inputs that already have a row (result or error) in --output; new rows "
                           "are added.")
    progress: bool = setting(True, "Show a progress bar on stderr (the commands turn it off with --quiet).",
                             cli=False)
