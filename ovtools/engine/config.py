"""`EngineConfig`: where a batch job runs (this process or a Ray cluster) and how.

The one declaration of the batch-engine settings: the CLI's ``--engine``,
``--ray-address``, ``--concurrency``, ``--num-gpus``, ``--ray-batch-size`` and
``--resume`` options are derived from these fields (type, default, help).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineConfig:
    """Settings of a batch run (:func:`ovtools.engine.run_batch`).

    Raises:
        ValueError: on construction, a value outside its range (named with the value given).
    """

    engine: Literal["local", "ray"] = field(default="local", metadata={
        "help": "Where the batch runs: local (this process) or ray (a Ray Data pipeline of actors that each "
                "hold the model; needs ovtools[ray])."})
    ray_address: str | None = field(default=None, metadata={
        "help": "Ray cluster to join (e.g. ray://head:10001 or auto). Default: $RAY_ADDRESS, else a local "
                "cluster started for the run and stopped after it."})
    concurrency: int = field(default=1, metadata={
        "help": "Ray actors, each holding one copy of the pipeline (one per GPU on a GPU cluster)."})
    num_gpus: float = field(default=0.0, metadata={
        "help": "GPUs reserved per Ray actor (1 = one actor per GPU; 0.5 = two actors share a GPU)."})
    num_cpus: float = field(default=1.0, metadata={
        "help": "CPUs reserved per Ray actor (also the torch threads Ray lets the actor use)."})
    ray_batch_size: int = field(default=8, metadata={
        "help": "Inputs (images or scenes) handed to an actor per call; a crash retries at most this many."})
    local_num_cpus: int | None = field(default=None, metadata={
        "help": "CPUs of the local Ray cluster started when no address is given. Default: all of this machine's."})
    resume: bool = field(default=False, metadata={
        "help": "Skip inputs that already have a row (result or error) in the output; new rows are added."})
    progress: bool = field(default=True, metadata={
        "help": "Show a progress bar on stderr."})

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        for name in ("concurrency", "ray_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.local_num_cpus is not None and (isinstance(self.local_num_cpus, bool)
                                                or not isinstance(self.local_num_cpus, int)
                                                or self.local_num_cpus < 1):
            raise ValueError(f"local_num_cpus must be an integer >= 1 or None, got {self.local_num_cpus!r}")
        if not isinstance(self.num_gpus, (int, float)) or isinstance(self.num_gpus, bool) or self.num_gpus < 0:
            raise ValueError(f"num_gpus must be a number >= 0, got {self.num_gpus!r}")
        if not isinstance(self.num_cpus, (int, float)) or isinstance(self.num_cpus, bool) or self.num_cpus <= 0:
            raise ValueError(f"num_cpus must be a number > 0, got {self.num_cpus!r}")
