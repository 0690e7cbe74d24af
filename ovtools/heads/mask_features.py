"""One CLIP feature per mask, three ways: masked crops, dense mask pooling, ConceptFusion.

* ``"crop"``: each mask's box is enlarged by ``context_padding``, made square, and the
  image *and* the mask are cropped+resized to the encoder's input with one batched
  :func:`torchvision.ops.roi_align` call; pixels outside the (soft, resampled) mask are
  replaced by ``mask_fill`` (``"mean"``: 0 in normalised space, i.e. the encoder's mean
  colour; ``"blur"``: the same crop of a strongly blurred image; ``"none"``: unchanged);
  the crops are encoded in batches.  One forward pass per mask — accurate, slow.
  (The masked-crop recipe of OVSeg, Liang et al. CVPR 2023, §3, and of "SAM + CLIP"
  pipelines.)
* ``"dense"``: one forward pass of :meth:`CLIPEncoder.dense_features` (MaskCLIP, Zhou et al.
  ECCV 2022, §3.2) on the image resized to multiples of the patch size; each mask is
  area-downsampled to the (gh, gw) patch grid and the patch features are averaged with
  those weights, then renormalised.  Fast, coarse at the grid's resolution.
* ``"fusion"``: ConceptFusion (Jatavallabhula et al., "ConceptFusion: Open-set Multimodal
  3D Mapping", RSS 2023, §3.2, Eqs. 1–3): with ``f_G`` the global feature of the whole
  image and ``f_i`` mask i's crop feature, ``φ_i = cos(f_i, f_G)`` (global similarity),
  ``ψ_i = mean_{j≠i} cos(f_i, f_j)`` (uniqueness among masks), ``w_i = softmax_i((φ_i +
  ψ_i) / T)`` and the pixel-aligned feature ``normalize(w_i f_G + (1 - w_i) f_i)``.

Every mode returns float32 (N, D) L2-normalised features on the encoder's device.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

from ..geometry import boxes_from_masks, masked_roi_crops, square_context_boxes
from .frame import resize_float

#: How a mask gets its feature (see the module docstring).
MaskScoring = Literal["crop", "dense", "fusion"]
#: What replaces the pixels outside a mask in its crop.
MaskFill = Literal["mean", "blur", "none"]
SCORINGS = get_args(MaskScoring)
MASK_FILLS = get_args(MaskFill)


class MaskFeatures:
    """Callable ``(x, masks) -> (N, D)`` features for one scoring mode.

    Args:
        encoder: a :class:`~ovtools.encoders.CLIPEncoder`.
        scoring: ``"crop"``, ``"dense"`` or ``"fusion"``.
        mask_fill: ``"mean"``, ``"blur"`` or ``"none"`` (crop and fusion).
        context_padding: crop context, fraction of the mask box's longer side per side.
        batch_size: crops per forward pass.
        temperature: ConceptFusion softmax temperature.
        dense_side: dense pass input's longer side in pixels (``None``: the frame's size).

    Raises:
        ValueError: unknown ``scoring`` or ``mask_fill``.
    """

    def __init__(self, encoder, scoring: str = "crop", mask_fill: str = "mean", context_padding: float = 0.2,
                 batch_size: int = 64, temperature: float = 1.0, dense_side: int | None = None) -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {list(SCORINGS)}, got {scoring!r}")
        if mask_fill not in MASK_FILLS:
            raise ValueError(f"mask_fill must be one of {list(MASK_FILLS)}, got {mask_fill!r}")
        self.encoder, self.scoring, self.mask_fill = encoder, scoring, mask_fill
        self.context_padding, self.batch_size = float(context_padding), int(batch_size)
        self.temperature, self.dense_side = float(temperature), dense_side

    def __call__(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Features of every mask.

        Args:
            x: float32 (1, 3, h, w) image in [0, 1] (not normalised), the processing frame.
            masks: bool (N, h, w) on the same frame.

        Returns:
            float32 (N, D) L2-normalised, on the encoder's device ((0, D) for N = 0).
        """
        enc = self.encoder
        if masks.shape[0] == 0:
            return torch.zeros(0, enc.embed_dim, device=enc.device)
        if self.scoring == "dense":
            return self.dense(x, masks)
        local = self.crops(x, masks)
        if self.scoring == "crop":
            return local
        return self.fuse(self.global_feature(x), local)

    def crops(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Masked-crop features, float32 (N, D) L2-normalised."""
        enc = self.encoder
        xn = enc.normalize(x).float().to(enc.device)
        fill = None
        if self.mask_fill == "blur":
            k = max(3, (max(x.shape[-2:]) // 16) | 1)
            fill = enc.normalize(_box_blur(x, k)).float().to(enc.device)
        rois = square_context_boxes(torch.from_numpy(boxes_from_masks(masks.cpu())), self.context_padding)
        rois = rois.to(enc.device)
        mf = masks.float().to(enc.device) if self.mask_fill != "none" else None
        size = enc.image_size
        out = []
        for i in range(0, len(rois), self.batch_size):
            r = rois[i : i + self.batch_size]
            crops = masked_roi_crops(xn, r, size, None if mf is None else mf[i : i + self.batch_size], fill)
            out.append(enc.encode_pixels(crops, batch_size=self.batch_size))
        return torch.cat(out)

    def global_feature(self, x: torch.Tensor) -> torch.Tensor:
        """float32 (1, D) feature of the whole frame (resized to the encoder's input, aspect not kept)."""
        enc = self.encoder
        return enc.encode_pixels(enc.normalize(resize_float(x, enc.image_size)).float().to(enc.device))

    def fuse(self, f_global: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """ConceptFusion blend (module docs): float32 (N, D) L2-normalised."""
        phi = (local @ f_global.T)[:, 0]                               # (N,)
        n = local.shape[0]
        sim = local @ local.T
        psi = (sim.sum(1) - sim.diagonal()) / max(n - 1, 1)           # mean similarity to the others
        w = torch.softmax((phi + psi) / self.temperature, dim=0)[:, None]
        return F.normalize(w * f_global + (1 - w) * local, dim=-1)

    def dense(self, x: torch.Tensor, masks: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """Mask pooling of MaskCLIP patch features, float32 (N, D) L2-normalised.

        ``side``: longer side of the dense pass's input in pixels (default: ``dense_side``, else the frame's).
        """
        enc = self.encoder
        ps = enc.patch_size
        h, w = x.shape[-2:]
        side = side or self.dense_side
        f = (side / max(h, w)) if side else 1.0
        dh, dw = max(ps, round(h * f / ps) * ps), max(ps, round(w * f / ps) * ps)
        fmap = enc.dense_features(enc.normalize(resize_float(x, (dh, dw))))[0].float()  # (gh, gw, D)
        gh, gw, d = fmap.shape
        weights = F.adaptive_avg_pool2d(masks[:, None].float(), (gh, gw))[:, 0].flatten(1).to(fmap.device)
        pooled = weights @ fmap.reshape(gh * gw, d)
        return F.normalize(pooled, dim=-1)


def _box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """Separable box blur of (1, 3, H, W) with odd kernel ``k`` (edge padding), applied twice (≈ Gaussian)."""
    pad = k // 2
    kernel = torch.ones(3, 1, 1, k, dtype=x.dtype, device=x.device) / k
    for _ in range(2):
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="replicate"), kernel, groups=3)
        x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="replicate"), kernel.transpose(2, 3), groups=3)
    return x
