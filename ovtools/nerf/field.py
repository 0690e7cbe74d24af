"""The scale-conditioned language field of LERF (Kerr et al. 2023, LERF: Language Embedded Radiance Fields, §3.2).

``F_lang(x, s) -> R^D``: a multi-resolution hash grid over the (contracted) position ``x`` followed by
an MLP that also takes the log of the physical crop size ``s`` the feature describes, so that the
same point answers "sphere" at object scale and "floor" or "scene" at larger scales.  Its output
is rendered along rays with the radiance field's weights (detached, §3.2) and normalised; it is
trained to regress the CLIP embedding of the crop pyramid (:mod:`ovtools.nerf.pyramid`) at the
ray's pixel and scale.

Positions are in the model's frame (nerfstudio's dataparser-normalised world, scene box
``aabb``); scales are crop sides in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.encodings import HashEncoding
from nerfstudio.field_components.mlp import MLP
from nerfstudio.field_components.spatial_distortions import SpatialDistortion
from torch import Tensor, nn

__all__ = ["LanguageField", "LanguageFieldConfig"]

MIN_SCALE = 1e-4  # smallest crop size fed to log(); model-frame units


@dataclass(frozen=True)
class LanguageFieldConfig:
    """Sizes of the language field.

    Attributes:
        num_levels: hash-grid levels.
        min_res: coarsest grid resolution (cells per unit of the normalised box).
        max_res: finest grid resolution.
        log2_hashmap_size: log2 of the hash table size per level.
        features_per_level: features per level.
        hidden_dim: width of the MLP's hidden layers.
        num_layers: MLP layers (hidden ones + the output layer).
    """

    num_levels: int = 12
    min_res: int = 16
    max_res: int = 256
    log2_hashmap_size: int = 19
    features_per_level: int = 4
    hidden_dim: int = 256
    num_layers: int = 4


class LanguageField(nn.Module):
    """Hash grid + MLP from (position, log scale) to an unnormalised D-dim CLIP embedding.

    Args:
        aabb: float (2, 3) scene box in the model frame (used when ``spatial_distortion`` is ``None``).
        embed_dim: ``D``, the CLIP embedding size.
        config: grid and MLP sizes.
        spatial_distortion: nerfacto's scene contraction (maps R^3 into a ball of radius 2), or ``None``.
        implementation: ``"torch"`` (any device) or ``"tcnn"`` (tiny-cuda-nn, CUDA only).
    """

    def __init__(self, aabb: Tensor, embed_dim: int, config: LanguageFieldConfig = LanguageFieldConfig(),
                 spatial_distortion: SpatialDistortion | None = None, implementation: str = "torch") -> None:
        super().__init__()
        self.register_buffer("aabb", aabb.clone().float())
        self.spatial_distortion = spatial_distortion
        self.embed_dim = int(embed_dim)
        self.encoding = HashEncoding(
            num_levels=config.num_levels, min_res=config.min_res, max_res=config.max_res,
            log2_hashmap_size=config.log2_hashmap_size, features_per_level=config.features_per_level,
            implementation=implementation,
        )
        self.mlp = MLP(
            in_dim=self.encoding.get_out_dim() + 1, num_layers=config.num_layers, layer_width=config.hidden_dim,
            out_dim=self.embed_dim, activation=nn.ReLU(), out_activation=None, implementation="torch",
        )

    def normalized_positions(self, positions: Tensor) -> Tensor:
        """Model-frame positions (..., 3) → hash-grid coordinates in [0, 1]^3 (contracted as nerfacto does)."""
        if self.spatial_distortion is not None:
            return (self.spatial_distortion(positions) + 2.0) / 4.0
        return SceneBox.get_normalized_positions(positions, self.aabb)

    def forward(self, positions: Tensor, scales: Tensor) -> Tensor:
        """Embeddings at positions and crop sizes.

        Args:
            positions: float (..., 3) in the model frame.
            scales: float (..., 1) crop side in model-frame units (clamped to >= 1e-4).

        Returns:
            float32 (..., D), not normalised (the renderer averages, then normalises).
        """
        shape = positions.shape[:-1]
        x = self.normalized_positions(positions.reshape(-1, 3))
        feats = self.encoding(x)
        log_s = torch.log(scales.reshape(-1, 1).float().clamp(min=MIN_SCALE))
        out = self.mlp(torch.cat([feats, log_s.to(feats.dtype)], dim=-1))
        return out.float().reshape(*shape, self.embed_dim)
