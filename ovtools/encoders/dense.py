"""Dense (per-patch) CLIP features in the MaskCLIP manner.

MaskCLIP (Zhou, Loy & Dai, "Extract Free Dense Labels from CLIP", ECCV 2022,
§3.2) observes that CLIP's last attention layer mixes all positions into the
pooled token; dropping the query/key path and keeping only the *value*
projection followed by the output projection gives per-position features that
live in the same joint space as the text embeddings.

* ViT (open_clip ``VisionTransformer``): the last residual block is run with
  its attention replaced by ``out_proj(v_proj(ln_1(x)))`` (residual and MLP
  kept), then ``ln_post`` and ``proj`` are applied to every patch token.
* ModifiedResNet: the attention pool is replaced by ``c_proj(v_proj(x + pos))``
  at every spatial position.

Positional embeddings are bicubically interpolated to the input's grid, so any
input size that is a multiple of the patch size (ViT) or of 32 (ResNet) works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer


def resize_pos_embed(pos: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """Positional embeddings of the patches on a ``gh × gw`` grid.

    Bicubic interpolation of the learned square table, as ViT fine-tuning at a new resolution
    does (Dosovitskiy et al. ICLR 2021, §3.2; open_clip's ``resize_pos_embed``).

    Args:
        pos: (1 + n*n, C) positional table; row 0 belongs to the class token.
        gh, gw: patch grid rows and columns.

    Returns:
        (gh*gw, C) table in ``pos``'s dtype, rows in raster order (the table itself when ``gh = gw = n``).

    Raises:
        ValueError: the patch rows do not form a square grid.
    """
    patches = pos[1:]
    n = int(math.isqrt(patches.shape[0]))
    if n * n != patches.shape[0]:
        raise ValueError(f"positional embedding of {patches.shape[0]} patches is not square")
    if (gh, gw) == (n, n):
        return patches
    grid = patches.reshape(1, n, n, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(gh * gw, -1).to(pos.dtype)


def _vit_dense(visual, x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = visual.conv1(x)
    gh, gw = x.shape[-2:]
    x = x.reshape(b, x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).reshape(1, 1, -1).expand(b, 1, -1)
    pos = visual.positional_embedding.to(x.dtype)
    x = torch.cat([cls + pos[:1], x + resize_pos_embed(pos, gh, gw)], dim=1)
    x = visual.ln_pre(x)
    blocks = visual.transformer.resblocks
    batch_first = getattr(visual.transformer, "batch_first", True)
    if not batch_first:
        x = x.permute(1, 0, 2)
    for blk in blocks[:-1]:
        x = blk(x)
    if not batch_first:
        x = x.permute(1, 0, 2)
    last = blocks[-1]
    attn = last.attn
    d = x.shape[-1]
    y = last.ln_1(x)
    v = F.linear(y, attn.in_proj_weight[2 * d :], attn.in_proj_bias[2 * d :] if attn.in_proj_bias is not None else None)
    x = x + last.ls_1(attn.out_proj(v))
    x = x + last.ls_2(last.mlp(last.ln_2(x)))
    x = visual.ln_post(x[:, 1:])
    if visual.proj is not None:
        x = x @ visual.proj
    return x.reshape(b, gh, gw, -1)


def _resnet_dense(visual, x: torch.Tensor) -> torch.Tensor:
    x = visual.stem(x)
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
    b, c, gh, gw = x.shape
    pool = visual.attnpool
    x = x.flatten(2).permute(0, 2, 1)  # (B, HW, C)
    x = x + resize_pos_embed(pool.positional_embedding, gh, gw).to(x.dtype)
    x = pool.c_proj(pool.v_proj(x))
    return x.reshape(b, gh, gw, -1)


def supports_dense(visual) -> bool:
    """Whether :func:`dense_patch_features` knows this open_clip image tower."""
    if isinstance(visual, VisionTransformer):
        return getattr(visual, "attn_pool", None) is None and hasattr(visual.transformer, "resblocks")
    return isinstance(visual, ModifiedResNet)


def dense_patch_features(visual, x: torch.Tensor) -> torch.Tensor:
    """Per-patch features of a normalised image batch.

    Args:
        visual: an open_clip image tower (``model.visual``): ``VisionTransformer``
            or ``ModifiedResNet``.
        x: float tensor (B, 3, H, W), normalised with the model's mean/std; H and W
            multiples of the patch size (ViT) or 32 (ResNet).

    Returns:
        Tensor (B, h, w, D) in the joint embedding space (not normalised), where
        (h, w) is the feature grid (H/patch, W/patch for ViT; H/32, W/32 for ResNet).

    Raises:
        NotImplementedError: the tower is another kind (timm, attention-pool ViT).
    """
    if not supports_dense(visual):
        raise NotImplementedError(
            f"dense features are implemented for open_clip VisionTransformer and ModifiedResNet towers, "
            f"not {type(visual).__name__}; use scoring='crop'"
        )
    if isinstance(visual, ModifiedResNet):
        return _resnet_dense(visual, x)
    return _vit_dense(visual, x)
