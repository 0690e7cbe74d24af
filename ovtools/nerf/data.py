"""Training data of ``ovtools-field``: images with optional depth, rays with CLIP targets, and the pipeline.

* :class:`FieldDataset` — nerfstudio's ``InputDataset`` plus the depth image when the dataparser
  found one (``depth_file_path`` in ``transforms.json``); unlike nerfstudio's ``DepthDataset`` it
  never generates pseudo-depth (that downloads ZoeDepth from torch hub).
* :class:`FieldDataManager` — nerfstudio's ``VanillaDataManager`` whose training batches also carry,
  per ray, the CLIP target ``batch["clip"]`` (N, D) at the ray's pixel: with ``clip_targets="masks"``
  (the default) the feature of the pixel's smallest mask (:class:`~ovtools.nerf.masktargets.MaskTargets`;
  zero rows, which get no loss, outside every mask), with ``"pyramid"`` LERF's crop pyramid sampled at
  the pixel and a crop scale drawn log-uniformly over ``pyramid_scales``
  (:class:`~ovtools.nerf.pyramid.CropPyramid`, Kerr et al. 2023, LERF, §3.3); for the pyramid the ray
  bundle carries ``metadata["clip_image_scale"]`` and ``metadata["clip_pixel_ratio"]``
  (H / f_y), for masks with depth images ``metadata["clip_depth"]`` (the ray's measured depth), for
  :class:`~ovtools.nerf.model.OVFieldModel`.
* :class:`FieldPipeline` — nerfstudio's ``VanillaPipeline`` that, when it is built for training,
  loads the CLIP named by the model config (``encoder_model``, ``encoder_pretrained``) and computes
  (or reads from the cache) the CLIP targets of the training images.  Loading a run for queries
  (``test_mode`` ``"test"``/``"inference"``) builds no targets and loads no CLIP.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Tuple, Type, Union

import numpy as np
import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.data.utils.data_utils import get_depth_image_from_path
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE

from ..encoders import CLIPEncoder
from .masktargets import MaskTargets
from .pyramid import CropPyramid, PyramidSpec

__all__ = ["FieldDataManager", "FieldDataManagerConfig", "FieldDataset", "FieldPipeline", "FieldPipelineConfig"]


class FieldDataset(InputDataset):
    """Images, plus ``"depth_image"`` float32 (H, W, 1) in model-frame units where the data has depth files."""

    exclude_batch_keys_from_device = InputDataset.exclude_batch_keys_from_device + ["depth_image"]

    def __init__(self, dataparser_outputs, scale_factor: float = 1.0) -> None:
        super().__init__(dataparser_outputs, scale_factor)
        self.depth_filenames = self.metadata.get("depth_filenames")
        self.depth_unit_scale_factor = float(self.metadata.get("depth_unit_scale_factor", 1e-3))

    @property
    def has_depth(self) -> bool:
        """Whether every image has a depth file."""
        return bool(self.depth_filenames) and len(self.depth_filenames) == len(self)

    def get_metadata(self, data: Dict) -> Dict:
        if not self.has_depth:
            return {}
        i = data["image_idx"]
        cams = self._dataparser_outputs.cameras
        scale = self.depth_unit_scale_factor * self._dataparser_outputs.dataparser_scale
        depth = get_depth_image_from_path(filepath=self.depth_filenames[i], height=int(cams.height[i]),
                                          width=int(cams.width[i]), scale_factor=scale)
        return {"depth_image": depth}


@dataclass
class FieldDataManagerConfig(VanillaDataManagerConfig):
    """Rays with CLIP targets from mask-pooled features or a crop pyramid."""

    _target: Type = field(default_factory=lambda: FieldDataManager)
    clip_targets: Literal["masks", "pyramid"] = "masks"
    """masks: each pixel regresses the CLIP feature of its smallest mask (LangSplat/OpenNeRF-style, segment3d's masked
    crops; per-point mIoU 0.85 on a held-out world scene); pyramid: LERF's multi-scale square crops (blurrier: 0.43)."""
    mask_proposals: str = "regions"
    """clip_targets=masks: mask source, regions (no weights) or sam (set mask_proposal_options to its checkpoint)."""
    mask_proposal_options: Dict[str, Any] = field(default_factory=dict)
    """clip_targets=masks: options of the mask source, e.g. {"checkpoint": "sam_vit_b.pth"}."""
    mask_min_area: int = 64
    """clip_targets=masks: masks smaller than this many pixels are ignored."""
    mask_context_padding: float = 0.2
    """clip_targets=masks: crop context per side, fraction of the mask box's longer side."""
    depth_anchored_language: bool = True
    """clip_targets=masks with depth images: the language field is trained at each ray's measured surface point
    (origin + depth along the ray) instead of at the rendered samples of highest weight, so that a small object's
    feature is not blurred with what lies behind it while the radiance field is still soft."""
    pyramid_scales: Tuple[float, ...] = (0.07, 0.1, 0.14, 0.2, 0.28, 0.4)
    """clip_targets=pyramid: crop sides of the CLIP pyramid as fractions of the image height (LERF §3.3); also the
    range of the crop scales drawn per ray for the language field's scale input."""
    pyramid_stride: float = 0.5
    """clip_targets=pyramid: spacing of the crop centres as a fraction of the crop side (LERF: 0.5)."""
    pyramid_cache_dir: Optional[Path] = None
    """folder of cached CLIP targets (pyramids and masks); None = $OVTOOLS_PYRAMID_DIR or ~/.cache/ovtools/pyramid."""
    pyramid_batch_size: int = 256
    """crops per CLIP forward pass while the targets are computed."""


class FieldDataManager(VanillaDataManager[FieldDataset]):
    """See the module docs; :meth:`set_pyramid` must be called before :meth:`next_train`."""

    config: FieldDataManagerConfig
    pyramid: Optional[Union[CropPyramid, MaskTargets]] = None

    @property
    def pyramid_spec(self) -> PyramidSpec:
        return PyramidSpec(tuple(self.config.pyramid_scales), float(self.config.pyramid_stride))

    def set_pyramid(self, pyramid: Union[CropPyramid, MaskTargets]) -> None:
        """Use ``pyramid`` (crop pyramid or mask targets of the training images, in dataset order) for the CLIP targets.

        Raises:
            ValueError: its image count or size differs from the training set's.
        """
        cams = self.train_dataset.cameras
        size = (int(cams.height[0]), int(cams.width[0]))
        if pyramid.n_images != len(self.train_dataset) or pyramid.image_size != size:
            raise ValueError(f"CLIP targets of {pyramid.n_images} images of {pyramid.image_size} do not match the "
                             f"{len(self.train_dataset)} training images of {size}")
        self.pyramid = pyramid

    def training_images(self) -> list[np.ndarray]:
        """The training images as RGB uint8 (H, W, 3), in dataset order."""
        return [np.ascontiguousarray(self.train_dataset.get_numpy_image(i)[..., :3])
                for i in range(len(self.train_dataset))]

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        ray_bundle, batch = super().next_train(step)
        if self.pyramid is None:
            raise RuntimeError("FieldDataManager.next_train needs the CLIP targets; build them with "
                               "FieldPipeline (test_mode='val') or call set_pyramid()")
        idx = batch["indices"]  # (N, 3) camera, row, column
        cam, y, x = idx[:, 0].long(), idx[:, 1].float(), idx[:, 2].float()
        if isinstance(self.pyramid, MaskTargets):  # one target whatever the scale: the field is trained and queried
            batch["clip"] = self.pyramid.sample(cam.cpu(), y.cpu(), x.cpu()).to(self.device)  # at default_query_scale
            if "depth_image" in batch and self.config.depth_anchored_language:  # (zero rows: in no mask, no loss)
                if ray_bundle.metadata is None:
                    ray_bundle.metadata = {}
                ray_bundle.metadata["clip_depth"] = batch["depth_image"].reshape(-1, 1).to(self.device)
            return ray_bundle, batch
        lo, hi = min(self.config.pyramid_scales), max(self.config.pyramid_scales)
        u = torch.rand(cam.shape[0])
        scale = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))  # log-uniform over the pyramid
        batch["clip"] = self.pyramid.sample(cam.cpu(), y.cpu(), x.cpu(), scale).to(self.device)
        cams = self.train_dataset.cameras
        ratio = (cams.height[cam.cpu()].float().reshape(-1) / cams.fy[cam.cpu()].reshape(-1)).to(self.device)
        if ray_bundle.metadata is None:
            ray_bundle.metadata = {}
        ray_bundle.metadata["clip_image_scale"] = scale.to(self.device)[:, None]
        ray_bundle.metadata["clip_pixel_ratio"] = ratio[:, None]
        return ray_bundle, batch


@dataclass
class FieldPipelineConfig(VanillaPipelineConfig):
    """VanillaPipeline that prepares the CLIP targets (masks or crop pyramid) for training."""

    _target: Type = field(default_factory=lambda: FieldPipeline)
    cpu_threads: Optional[int] = None
    """torch intra-op threads when running on the CPU (None = torch's default). With a few thousand samples
    per step, 1 thread is the fastest on a shared machine (2 threads were 7x slower per step while other jobs ran)."""


class FieldPipeline(VanillaPipeline):
    """See the module docs."""

    def __init__(self, config: FieldPipelineConfig, device: str, test_mode: Literal["test", "val", "inference"] = "val",
                 world_size: int = 1, local_rank: int = 0, grad_scaler=None) -> None:
        if config.cpu_threads and not str(device).startswith("cuda"):
            torch.set_num_threads(int(config.cpu_threads))
        super().__init__(config, device, test_mode, world_size, local_rank, grad_scaler)
        if test_mode == "val" and isinstance(self.datamanager, FieldDataManager):
            self.datamanager.set_pyramid(self.build_pyramid())

    def build_pyramid(self) -> Union[CropPyramid, MaskTargets]:
        """Load the model config's CLIP and compute (or read from the cache) the training images' CLIP targets:
        :class:`MaskTargets` or :class:`CropPyramid` as the data manager's ``clip_targets`` says.

        Raises:
            ValueError: the targets' embedding size differs from the language field's, or a bad mask setting.
        """
        dm: FieldDataManager = self.datamanager  # type: ignore[assignment]
        mcfg, dcfg = self.model.config, dm.config
        dev = "cuda" if str(self.device).startswith("cuda") else "cpu"
        encoder = CLIPEncoder(mcfg.encoder_model, mcfg.encoder_pretrained, device=dev, precision=mcfg.encoder_precision)
        images = dm.training_images()
        quiet = CONSOLE.quiet or not sys.stderr.isatty()  # tqdm's redrawn bar only on a terminal
        if dcfg.clip_targets == "masks":
            CONSOLE.print(f"CLIP mask targets of {len(images)} images with {mcfg.encoder_model} / "
                          f"{mcfg.encoder_pretrained} ({dcfg.mask_proposals} masks)")
            pyramid = MaskTargets.build(
                images, encoder, mask_proposals=dcfg.mask_proposals, proposal_options=dcfg.mask_proposal_options,
                min_mask_area=dcfg.mask_min_area, context_padding=dcfg.mask_context_padding,
                cache_dir=dcfg.pyramid_cache_dir, batch_size=min(dcfg.pyramid_batch_size, 128), progress=not quiet)
        else:
            CONSOLE.print(f"CLIP crop pyramid of {len(images)} images with {mcfg.encoder_model} / "
                          f"{mcfg.encoder_pretrained} ({len(dm.pyramid_spec.scales)} scales)")
            pyramid = CropPyramid.build(images, encoder, dm.pyramid_spec, cache_dir=dcfg.pyramid_cache_dir,
                                        batch_size=dcfg.pyramid_batch_size, progress=not quiet)
        want = self.model.language_field.embed_dim
        if pyramid.embed_dim != want:
            raise ValueError(f"the CLIP {mcfg.encoder_model!r} embeds in {pyramid.embed_dim} dimensions but the "
                             f"language field outputs {want} (pipeline.model.embed_dim)")
        return pyramid
