"""The nerfstudio Model of ``ovtools-field``: nerfacto's radiance field plus LERF's language field.

Radiance: nerfacto (proposal sampling, hash-grid field, scene contraction; nerfstudio's
``NerfactoModel``), optionally depth-supervised with DS-NeRF's loss (Deng et al. 2022) when the data
has depth.  Language: :class:`~ovtools.nerf.field.LanguageField`, rendered at the
``num_language_samples`` samples of highest weight per ray, averaged with those (detached)
weights and L2-normalised (Kerr et al. 2023, LERF, §3.2); trained with LERF's Huber loss against
the ray's CLIP target (:mod:`ovtools.nerf.data`: the feature of the pixel's smallest mask by
default, or the crop pyramid's embedding at the pixel and scale).  With mask targets and a depth
image, a training ray's feature is instead the language field at the measured surface point,
``origin + depth × directions_norm × direction`` (``metadata["clip_depth"]``): early in training
the radiance field is soft, and the mix of its highest-weight samples blended a small object's
target into what lies behind it (per-point mIoU on a tuning scene 0.42 → 0.65).

Differences from nerfacto: no LPIPS network is built (nerfacto downloads AlexNet weights for it at
start-up; evaluation reports PSNR and SSIM), and rays without a depth image skip the depth loss.

Scales (crop-pyramid targets): during training the data manager draws a crop size per ray as a fraction of the image
height (``metadata["clip_image_scale"]``, with ``metadata["clip_pixel_ratio"]`` = H / f_y); the
crop's physical size at a sample at distance ``t`` along the ray is ``scale × (H / f_y) × t``
(LERF, §3.3).  At inference the crop size in model-frame units is given per ray in
``metadata["clip_scales"]`` (N, 1), else :attr:`OVFieldModelConfig.default_query_scale` is used.
Mask targets do not depend on a crop size: the field is trained and queried at ``default_query_scale``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Type

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.field_components.spatial_distortions import SceneContraction
from nerfstudio.fields.density_fields import HashMLPDensityField
from nerfstudio.fields.nerfacto_field import NerfactoField
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components import losses
from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler, UniformSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, NormalsRenderer, RGBRenderer
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.model_components.shaders import NormalsShader
from nerfstudio.models.base_model import Model
from nerfstudio.models.depth_nerfacto import DepthNerfactoModelConfig
from nerfstudio.models.nerfacto import NerfactoModel
from nerfstudio.utils import colormaps
from torch.nn import Parameter
from torchmetrics.functional import structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio

from ..encoders.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED
from ..encoders.loading import register_model_configs
from .field import LanguageField, LanguageFieldConfig

__all__ = ["OVFieldModel", "OVFieldModelConfig", "clip_embed_dim", "hub_model_config"]

EPS = 1e-8


@dataclass
class OVFieldModelConfig(DepthNerfactoModelConfig):
    """nerfacto + depth supervision + a language field distilled from an ovtools CLIP."""

    _target: Type = field(default_factory=lambda: OVFieldModel)
    encoder_model: str = DEFAULT_MODEL
    """open_clip architecture (or hf-hub: id) whose image features the language field regresses; e.g.
    ovtools-shapes for the generated evaluation world."""
    encoder_pretrained: Optional[str] = DEFAULT_PRETRAINED
    """pretrained tag or local checkpoint of that model (shapes3d for the evaluation world)."""
    encoder_precision: str = "fp32"
    """precision of the CLIP while the crop pyramid is computed: fp32 | fp16 | bf16 | auto."""
    embed_dim: int = 0
    """CLIP embedding size; 0 = the architecture's (open_clip model config of encoder_model)."""
    language_field: LanguageFieldConfig = field(default_factory=LanguageFieldConfig)
    """sizes of the language field's hash grid and MLP."""
    num_language_samples: int = 12
    """samples per ray (those of highest weight) where the language field is evaluated."""
    language_loss_weight: float = 0.1
    """weight of the Huber loss between rendered and pyramid CLIP embeddings (LERF: 0.1)."""
    language_min_accumulation: float = 0.5
    """rays whose accumulated opacity is below this get no language loss (background)."""
    default_query_scale: float = 0.02
    """crop size (model-frame units) used when a ray bundle carries no clip_scales; the one scale of mask targets.
    With crop-pyramid targets 0.02 gave the best per-point mIoU on the generated world (0.53 vs 0.45 at 0.1, small
    preset, 600 iterations)."""


def clip_embed_dim(config: OVFieldModelConfig) -> int:
    """The CLIP embedding size ``D``: ``config.embed_dim`` if set, else from open_clip's config of ``encoder_model``.

    For an ``hf-hub:org/repo`` id the size is read from the repository's ``open_clip_config.json`` in the
    local Hugging Face cache (where loading the model put it); nothing is downloaded.

    Raises:
        ValueError: ``embed_dim`` is 0 and the size is unknown: open_clip knows no architecture
            ``encoder_model``, or an ``hf-hub:`` id is not in the local cache; set ``embed_dim``.
    """
    if config.embed_dim > 0:
        return int(config.embed_dim)
    name = config.encoder_model
    if name.startswith("hf-hub:"):
        arch = hub_model_config(name[len("hf-hub:"):])
    else:
        register_model_configs()
        arch = open_clip.get_model_config(name)
    if not arch or "embed_dim" not in arch:
        where = ""
        if name.startswith("hf-hub:"):
            where = " (its open_clip_config.json is not in the local Hugging Face cache)"
        raise ValueError(f"cannot tell the embedding size of CLIP model {name!r}{where}; set "
                         "--pipeline.model.embed-dim")
    return int(arch["embed_dim"])


def hub_model_config(repo_id: str) -> dict | None:
    """``model_cfg`` of an open_clip hub repository from the local Hugging Face cache, or ``None`` (not cached,
    unreadable).  Never downloads."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "open_clip_config.json")
    if not isinstance(path, str):
        return None
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return cfg.get("model_cfg") if isinstance(cfg, dict) else None


class OVFieldModel(NerfactoModel):
    """nerfacto with a LERF language field; see the module docs.

    Public API used by :mod:`ovtools.nerf` queries: :meth:`get_outputs` (adds ``"clip"``),
    :meth:`language_at`, :meth:`density_at`.
    """

    config: OVFieldModelConfig
    render_language: bool = True
    """Whether :meth:`get_outputs` renders ``"clip"`` outside training (set False on an instance to render
    only rgb/depth/accumulation, about half the cost on the CPU)."""

    def populate_modules(self) -> None:
        """Build nerfacto's modules (as ``NerfactoModel.populate_modules``, without LPIPS) and the language field."""
        Model.populate_modules(self)
        cfg = self.config
        contraction = None if cfg.disable_scene_contraction else SceneContraction(order=float("inf"))
        self.field = NerfactoField(
            self.scene_box.aabb, hidden_dim=cfg.hidden_dim, num_levels=cfg.num_levels, max_res=cfg.max_res,
            base_res=cfg.base_res, features_per_level=cfg.features_per_level, log2_hashmap_size=cfg.log2_hashmap_size,
            hidden_dim_color=cfg.hidden_dim_color, hidden_dim_transient=cfg.hidden_dim_transient,
            spatial_distortion=contraction, num_images=self.num_train_data, use_pred_normals=cfg.predict_normals,
            use_average_appearance_embedding=cfg.use_average_appearance_embedding,
            appearance_embedding_dim=cfg.appearance_embed_dim if cfg.use_appearance_embedding else 0,
            average_init_density=cfg.average_init_density, implementation=cfg.implementation,
        )
        self.camera_optimizer = cfg.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")
        self.proposal_networks = torch.nn.ModuleList()
        n_prop = cfg.num_proposal_iterations
        n_nets = 1 if cfg.use_same_proposal_network else n_prop
        for i in range(n_nets):
            args = cfg.proposal_net_args_list[min(i, len(cfg.proposal_net_args_list) - 1)]
            self.proposal_networks.append(HashMLPDensityField(
                self.scene_box.aabb, spatial_distortion=contraction, **args,
                average_init_density=cfg.average_init_density, implementation=cfg.implementation))
        self.density_fns = [self.proposal_networks[min(i, n_nets - 1)].density_fn for i in range(n_prop)]

        def update_schedule(step):
            return np.clip(np.interp(step, [0, cfg.proposal_warmup], [0, cfg.proposal_update_every]), 1,
                           cfg.proposal_update_every)

        self.proposal_sampler = ProposalNetworkSampler(
            num_nerf_samples_per_ray=cfg.num_nerf_samples_per_ray,
            num_proposal_samples_per_ray=cfg.num_proposal_samples_per_ray,
            num_proposal_network_iterations=n_prop, single_jitter=cfg.use_single_jitter,
            update_sched=update_schedule,
            initial_sampler=UniformSampler(single_jitter=cfg.use_single_jitter)
            if cfg.proposal_initial_sampler == "uniform" else None,
        )
        self.collider = NearFarCollider(near_plane=cfg.near_plane, far_plane=cfg.far_plane)
        self.renderer_rgb = RGBRenderer(background_color=cfg.background_color)
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="median")
        self.renderer_expected_depth = DepthRenderer(method="expected")
        self.renderer_normals = NormalsRenderer()
        self.normals_shader = NormalsShader()
        self.rgb_loss = losses.MSELoss()
        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = structural_similarity_index_measure
        self.lpips = None  # never built: it would download AlexNet weights
        self.step = 0
        self.depth_sigma = torch.tensor([cfg.starting_depth_sigma if cfg.should_decay_sigma else cfg.depth_sigma])
        self.language_field = LanguageField(self.scene_box.aabb, clip_embed_dim(cfg), cfg.language_field,
                                            spatial_distortion=contraction, implementation=cfg.implementation)

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = super().get_param_groups()
        groups["language_field"] = list(self.language_field.parameters())
        return groups

    # --------------------------------------------------------------------- rendering
    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, torch.Tensor]:
        """Render rays: nerfacto's ``rgb``, ``depth``, ``expected_depth``, ``accumulation`` (N, 1|3) and
        ``clip`` float32 (N, D) L2-normalised (unless :attr:`render_language` is False outside training),
        plus training-only lists for the losses."""
        if self.training:
            self.camera_optimizer.apply_to_raybundle(ray_bundle)
        samples, weights_list, samples_list = self.proposal_sampler(ray_bundle, density_fns=self.density_fns)
        fout = self.field.forward(samples, compute_normals=self.config.predict_normals)
        weights = samples.get_weights(fout[FieldHeadNames.DENSITY])
        weights_list.append(weights)
        samples_list.append(samples)
        outputs = {
            "rgb": self.renderer_rgb(rgb=fout[FieldHeadNames.RGB], weights=weights),
            "accumulation": self.renderer_accumulation(weights=weights),
            "expected_depth": self.renderer_expected_depth(weights=weights, ray_samples=samples),
        }
        with torch.no_grad():
            outputs["depth"] = self.renderer_depth(weights=weights, ray_samples=samples)
        if ray_bundle.metadata is not None and "directions_norm" in ray_bundle.metadata:
            outputs["directions_norm"] = ray_bundle.metadata["directions_norm"]
        if self.training:
            outputs["weights_list"], outputs["ray_samples_list"] = weights_list, samples_list
        for i in range(self.config.num_proposal_iterations):
            outputs[f"prop_depth_{i}"] = self.renderer_depth(weights=weights_list[i], ray_samples=samples_list[i])
        if self.render_language or self.training:
            outputs["clip"] = self._render_language(ray_bundle, samples, weights.detach())
        return outputs

    def _render_language(self, ray_bundle: RayBundle, samples, weights: torch.Tensor) -> torch.Tensor:
        meta = ray_bundle.metadata or {}
        if self.training and "clip_depth" in meta:  # measured surface: the language field at that one point
            depth = meta["clip_depth"].reshape(-1, 1)
            norm = meta["directions_norm"].reshape(-1, 1) if "directions_norm" in meta else torch.ones_like(depth)
            if not bool((depth > 0).all()):
                rendered = self._render_language_samples(ray_bundle, samples, weights)
            points = ray_bundle.origins + ray_bundle.directions * (depth * norm)
            scales = torch.full_like(depth, self.config.default_query_scale)
            at_surface = F.normalize(self.language_field(points, scales), dim=-1)
            return at_surface if bool((depth > 0).all()) else torch.where(depth > 0, at_surface, rendered)
        return self._render_language_samples(ray_bundle, samples, weights)

    def _render_language_samples(self, ray_bundle: RayBundle, samples, weights: torch.Tensor) -> torch.Tensor:
        k = min(self.config.num_language_samples, weights.shape[-2])
        top_w, top_i = torch.topk(weights, k, dim=-2, sorted=False)  # (N, k, 1)
        positions = torch.gather(samples.frustums.get_positions(), -2, top_i.expand(-1, -1, 3))
        meta = ray_bundle.metadata or {}
        if "clip_scales" in meta:  # crop size in model units per ray
            scales = meta["clip_scales"].reshape(-1, 1, 1).expand(-1, k, 1)
        elif "clip_image_scale" in meta:  # training: fraction of the image height → size at each sample
            mids = (samples.frustums.starts + samples.frustums.ends) / 2
            dist = torch.gather(mids, -2, top_i)
            ratio = (meta["clip_image_scale"] * meta["clip_pixel_ratio"]).reshape(-1, 1, 1)
            scales = ratio * dist
        else:
            scales = torch.full_like(top_w, self.config.default_query_scale)
        emb = self.language_field(positions, scales)  # (N, k, D)
        mean = (top_w * emb).sum(-2) / (top_w.sum(-2) + EPS)
        return F.normalize(mean, dim=-1)

    @torch.no_grad()
    def language_at(self, positions: torch.Tensor, scales) -> torch.Tensor:
        """CLIP features of the language field at 3D points.

        Args:
            positions: float (N, 3) in the model frame (nerfstudio's dataparser-normalised world).
            scales: crop size in model-frame units: float or (N,) tensor.

        Returns:
            float32 (N, D) L2-normalised, on the model's device.

        Raises:
            ValueError: ``positions`` is not (N, 3) or ``scales`` has another length.
        """
        p = torch.as_tensor(positions, dtype=torch.float32, device=self.device)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"positions must have shape (N, 3), got {tuple(p.shape)}")
        s = torch.as_tensor(scales, dtype=torch.float32, device=self.device).reshape(-1)
        if s.numel() == 1:
            s = s.expand(p.shape[0])
        if s.shape[0] != p.shape[0]:
            raise ValueError(f"scales must be a float or have shape ({p.shape[0]},), got {tuple(s.shape)}")
        return F.normalize(self.language_field(p, s[:, None]), dim=-1)

    @torch.no_grad()
    def density_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Volume density (1 / model-frame unit) of the radiance field at 3D points: float (N, 3) → float32 (N,)."""
        p = torch.as_tensor(positions, dtype=torch.float32, device=self.device)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"positions must have shape (N, 3), got {tuple(p.shape)}")
        return self.field.density_fn(p).reshape(-1).float()

    # ------------------------------------------------------------------------ losses
    def get_metrics_dict(self, outputs, batch) -> Dict[str, torch.Tensor]:
        metrics = super().get_metrics_dict(outputs, batch)
        if self.training and "depth_image" in batch and self.config.depth_loss_mult > 0:
            sigma = self._get_sigma().to(self.device)
            depth = batch["depth_image"].to(self.device)
            total = 0.0
            for w, s in zip(outputs["weights_list"], outputs["ray_samples_list"]):
                total = total + losses.depth_loss(
                    weights=w, ray_samples=s, termination_depth=depth, predicted_depth=outputs["expected_depth"],
                    sigma=sigma, directions_norm=outputs["directions_norm"],
                    is_euclidean=self.config.is_euclidean_depth, depth_loss_type=self.config.depth_loss_type)
            metrics["depth_loss"] = total / len(outputs["weights_list"])
        if "clip" in batch:
            target = batch["clip"].to(self.device)
            keep = (outputs["accumulation"].detach() >= self.config.language_min_accumulation).float()
            keep = keep * (target.norm(dim=-1, keepdim=True) > 0.5).float()  # zero rows: pixel in no mask
            huber = F.huber_loss(outputs["clip"], target, delta=1.25, reduction="none").sum(-1, keepdim=True)
            metrics["language_loss"] = (huber * keep).sum() / keep.sum().clamp(min=1.0)
            metrics["language_cos"] = ((outputs["clip"] * target).sum(-1, keepdim=True) * keep).sum() / keep.sum().clamp(
                min=1.0)
        return metrics

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        loss = super().get_loss_dict(outputs, batch, metrics_dict)
        if self.training and metrics_dict is not None:
            if "depth_loss" in metrics_dict:
                loss["depth_loss"] = self.config.depth_loss_mult * metrics_dict["depth_loss"]
            if "language_loss" in metrics_dict:
                loss["language_loss"] = self.config.language_loss_weight * metrics_dict["language_loss"]
        return loss

    def _get_sigma(self) -> torch.Tensor:
        if self.config.should_decay_sigma:
            self.depth_sigma = torch.maximum(self.config.sigma_decay_rate * self.depth_sigma,
                                             torch.tensor([self.config.depth_sigma]))
        return self.depth_sigma

    def get_image_metrics_and_images(self, outputs, batch):
        """PSNR and SSIM (no LPIPS), and the rgb / accumulation / depth images."""
        gt = self.renderer_rgb.blend_background(batch["image"].to(self.device))
        pred = outputs["rgb"]
        a, b = torch.moveaxis(gt, -1, 0)[None], torch.moveaxis(pred, -1, 0)[None]
        metrics = {"psnr": float(self.psnr(a, b).item()), "ssim": float(self.ssim(a, b))}
        images = {
            "img": torch.cat([gt, pred], dim=1),
            "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
        }
        return metrics, images
