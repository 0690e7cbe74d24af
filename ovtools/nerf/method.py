"""nerfstudio method configs ``ovtools-field`` and ``ovtools-field-small``, registered by entry point.

pyproject.toml declares::

    [project.entry-points."nerfstudio.method_configs"]
    ovtools-field = "ovtools.nerf.method:ovtools_field"
    ovtools-field-small = "ovtools.nerf.method:ovtools_field_small"

so that, with ovtools installed, ``ns-train ovtools-field --data DATA`` trains (and ``ns-train --help``
lists) them.  Both read nerfstudio-data folders (``transforms.json``; ``ovtools datagen --kind
scenes3d --rgbd-views 32`` writes them) with depth supervision where ``depth_file_path`` is given.

* ``ovtools-field`` — nerfacto's sizes (4096 rays per batch, 30 000 iterations), a LERF-sized language
  field; for a GPU.
* ``ovtools-field-small`` — CPU-friendly: 1024 rays, small hash grids, fewer samples, 4 pyramid
  scales at stride 0.75, 1500 iterations (about 10 minutes for one generated scene on 2 CPU cores).

Neither starts a viewer or a network logger (``vis="tensorboard"`` writes event files in the run
folder), builds LPIPS or fetches anything; the CLIP is the one named by
``--pipeline.model.encoder-model`` / ``--pipeline.model.encoder-pretrained`` (default: ovtools'
default model; the generated world uses ``ovtools-shapes`` / ``shapes3d``).  Training runs on CUDA
when torch sees a GPU, else on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from .data import FieldDataManagerConfig, FieldPipelineConfig
from .field import LanguageFieldConfig
from .model import OVFieldModelConfig

__all__ = ["METHOD_NAMES", "FieldTrainerConfig", "make_config", "ovtools_field", "ovtools_field_small",
           "register_methods"]

METHOD_NAMES = ("ovtools-field", "ovtools-field-small")


@dataclass
class FieldTrainerConfig(TrainerConfig):
    """nerfstudio's TrainerConfig with an optional fixed run folder."""

    run_dir: Optional[Path] = None
    """write the run here instead of OUTPUT_DIR/EXPERIMENT/METHOD/TIMESTAMP (set by ovtools.nerf.train_field)."""

    def get_base_dir(self) -> Path:
        if self.run_dir is not None:
            return Path(self.run_dir)
        return super().get_base_dir()


def register_methods() -> None:
    """Add both methods to nerfstudio's method table (``all_methods``) if its entry-point scan missed them.

    nerfstudio finds plug-ins through installed distributions' ``nerfstudio.method_configs`` entry points;
    code run from a source checkout (or before ``pip install``) is not one, yet nerfstudio's
    ``eval_setup`` looks the saved run's method up in that table.  Idempotent.
    """
    # Imported here, not at the top: importing nerfstudio's method table scans the entry points, which load
    # this module; at import time of this module that was a circular import (`import ovtools.nerf.method` as a
    # process's first nerf import failed with "partially initialized module").
    from nerfstudio.configs.method_configs import all_descriptions, all_methods

    for name, spec in (("ovtools-field", ovtools_field), ("ovtools-field-small", ovtools_field_small)):
        if name not in all_methods:
            all_methods[name] = spec.config
            all_descriptions[name] = spec.description


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _optimizers(lr: float, max_steps: int, language_lr: float) -> dict:
    def adam(rate: float, final: float) -> dict:
        return {"optimizer": AdamOptimizerConfig(lr=rate, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=final, max_steps=max_steps)}

    return {"proposal_networks": adam(lr, lr / 100), "fields": adam(lr, lr / 100),
            "language_field": adam(language_lr, language_lr / 10)}


def make_config(method: str) -> FieldTrainerConfig:
    """A fresh :class:`TrainerConfig` of ``method`` (one of :data:`METHOD_NAMES`).

    Raises:
        ValueError: unknown method name (the message lists the valid ones).
    """
    if method == "ovtools-field":
        return _full()
    if method == "ovtools-field-small":
        return _small()
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHOD_NAMES)}")


def _dataparser() -> NerfstudioDataParserConfig:
    # depth PNGs written by ovtools are millimetres (transforms.json records depth_unit_scale_factor 0.001)
    return NerfstudioDataParserConfig(depth_unit_scale_factor=1e-3, load_3D_points=False)


def _full() -> FieldTrainerConfig:
    steps = 30000
    device = _device()
    return FieldTrainerConfig(
        method_name="ovtools-field",
        steps_per_eval_batch=500, steps_per_eval_image=2000, steps_per_eval_all_images=1_000_000,
        steps_per_save=2000, max_num_iterations=steps, mixed_precision=device == "cuda",
        machine=MachineConfig(device_type=device),
        pipeline=FieldPipelineConfig(
            datamanager=FieldDataManagerConfig(dataparser=_dataparser(), train_num_rays_per_batch=4096,
                                               eval_num_rays_per_batch=4096),
            model=OVFieldModelConfig(
                eval_num_rays_per_chunk=1 << 15, average_init_density=0.01, implementation="torch"
                if device == "cpu" else "tcnn", camera_optimizer=CameraOptimizerConfig(mode="off"),
                depth_loss_mult=1e-2),
        ),
        optimizers=_optimizers(1e-2, 200_000, 1e-2),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="tensorboard",
    )


def _small() -> FieldTrainerConfig:
    steps = 1500
    device = _device()
    return FieldTrainerConfig(
        method_name="ovtools-field-small",
        steps_per_eval_batch=250, steps_per_eval_image=1_000_000, steps_per_eval_all_images=1_000_000,
        steps_per_save=500, max_num_iterations=steps, mixed_precision=False,
        machine=MachineConfig(device_type=device),
        pipeline=FieldPipelineConfig(
            cpu_threads=1,
            datamanager=FieldDataManagerConfig(
                dataparser=_dataparser(), train_num_rays_per_batch=1024, eval_num_rays_per_batch=1024,
                pyramid_scales=(0.075, 0.1, 0.14, 0.2), pyramid_stride=0.5),
            model=OVFieldModelConfig(
                eval_num_rays_per_chunk=1 << 13, average_init_density=0.01, implementation="torch",
                camera_optimizer=CameraOptimizerConfig(mode="off"), use_appearance_embedding=False,
                background_color="black", num_levels=8, max_res=512, log2_hashmap_size=17, hidden_dim=32,
                hidden_dim_color=32, num_proposal_iterations=1, num_proposal_samples_per_ray=(48,),
                num_nerf_samples_per_ray=16,
                proposal_net_args_list=[
                    {"hidden_dim": 16, "log2_hashmap_size": 15, "num_levels": 5, "max_res": 128, "use_linear": False},
                ],
                proposal_warmup=1000, proposal_weights_anneal_max_num_iters=500, depth_loss_mult=1e-2,
                language_field=LanguageFieldConfig(num_levels=8, max_res=128, log2_hashmap_size=16,
                                                   features_per_level=2, hidden_dim=128, num_layers=3),
                num_language_samples=6,
            ),
        ),
        optimizers=_optimizers(1e-2, steps, 1e-2),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 13),
        vis="tensorboard",
    )


ovtools_field = MethodSpecification(
    config=_full(),
    description="ovtools language field (LERF-style CLIP field over nerfacto, depth-supervised where the data has "
                "depth); full size, for a GPU",
)
ovtools_field_small = MethodSpecification(
    config=_small(),
    description="ovtools language field, small: CPU-friendly sizes (~10 min per generated scene on 2 cores)",
)
