"""LERF's multi-scale crop pyramid of CLIP image features (Kerr et al. 2023, LERF, §3.1 and §3.3).

A language field is supervised with CLIP embeddings of image crops: for every training image and
every scale ``s`` of :attr:`PyramidSpec.scales` (crop side as a fraction of the image height), square
crops of side ``k = s × H`` pixels are centred on a grid with stride ``stride × k``, resampled to the
encoder's input size with ``roi_align`` (outside the image reads as the CLIP mean colour, as
ovtools' masked crops do) and encoded with the shared :class:`~ovtools.encoders.CLIPEncoder`.
A ray's target at pixel ``(y, x)`` and scale ``s`` is the embedding interpolated bilinearly between
the four nearest crop centres and linearly (in ``log s``) between the two nearest scales (§3.3).

The pyramid is computed once per (images, model, weights, scales, stride) and kept as a
safetensors file (float16) under ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torchvision.ops import roi_align
from tqdm.auto import tqdm

from ..encoders import CLIPEncoder
from ..encoders.loading import weights_fingerprint
from ..io.writers import atomic_output

__all__ = ["CropPyramid", "PyramidSpec", "check_images", "default_pyramid_dir", "targets_cache_key"]

FORMAT = "ovtools-crop-pyramid-1"


def default_pyramid_dir() -> Path:
    """``$OVTOOLS_PYRAMID_DIR`` or ``~/.cache/ovtools/pyramid``."""
    env = os.environ.get("OVTOOLS_PYRAMID_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ovtools" / "pyramid"


def check_images(images: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    """The images as C-contiguous arrays, checked to be RGB uint8 (H, W, 3) of one size.

    Raises:
        ValueError: no images (naming ``what`` needs them), or an image of another size, dtype or shape.
    """
    if len(images) == 0:
        raise ValueError(f"{what} needs at least one image")
    arrays = [np.ascontiguousarray(im) for im in images]
    h, w = arrays[0].shape[:2]
    for i, a in enumerate(arrays):
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape[:2] != (h, w):
            raise ValueError(f"image {i} must be uint8 ({h}, {w}, 3) like image 0, got {a.dtype} {a.shape}")
    return arrays


def targets_cache_key(fmt: str, images: Sequence[np.ndarray], encoder: CLIPEncoder, *settings: str) -> str:
    """Cache key of CLIP targets: hex digest of ``fmt``, the encoder (name, tag, weights, precision), ``settings``
    and the images' shapes and bytes."""
    hsh = hashlib.sha256(fmt.encode())
    for part in (encoder.name, str(encoder.pretrained), weights_fingerprint(encoder.model), str(encoder.dtype),
                 *settings):
        hsh.update(part.encode() + b"\0")
    for a in images:
        hsh.update(repr(a.shape).encode())
        hsh.update(np.ascontiguousarray(a).tobytes())
    return hsh.hexdigest()[:32]


@dataclass(frozen=True)
class PyramidSpec:
    """Crop scales and grid stride of a pyramid.

    Attributes:
        scales: crop sides as fractions of the image height, increasing, each in (0, 2].
        stride: crop-centre spacing as a fraction of the crop side (LERF: 0.5), in (0, 1].

    Raises:
        ValueError: on construction, for an empty, unsorted or out-of-range ``scales`` or a bad ``stride``.
    """

    scales: tuple[float, ...] = (0.07, 0.1, 0.14, 0.2, 0.28, 0.4)
    stride: float = 0.5

    def __post_init__(self) -> None:
        s = tuple(float(v) for v in self.scales)
        if not s or any(not 0 < v <= 2 for v in s) or any(b <= a for a, b in zip(s, s[1:])):
            raise ValueError(f"scales must be increasing fractions of the image height in (0, 2], got {self.scales}")
        if not 0 < self.stride <= 1:
            raise ValueError(f"stride must be in (0, 1], got {self.stride}")
        object.__setattr__(self, "scales", s)

    def grid(self, level: int, height: int, width: int) -> tuple[int, float, int, int]:
        """``(side, step, rows, cols)`` of level ``level``: crop side and centre spacing in pixels, grid size.

        Centre ``(i, j)`` lies at pixel ``(i × step, j × step)`` (pixel-centre coordinates); the last
        row and column reach the image's last pixel.
        """
        side = max(2, round(self.scales[level] * height))
        step = max(1.0, side * self.stride)
        return side, step, math.ceil((height - 1) / step) + 1, math.ceil((width - 1) / step) + 1


class CropPyramid:
    """Per-image, per-scale grids of CLIP crop embeddings, sampled at pixels and scales.

    Args:
        levels: one float16/float32 tensor (N_images, rows_l, cols_l, D) per scale of ``spec``.
        spec: the scales and stride the levels were computed with.
        image_size: ``(H, W)`` of every image in pixels.

    Raises:
        ValueError: level count or grid shapes disagree with ``spec`` and ``image_size``.
    """

    def __init__(self, levels: Sequence[torch.Tensor], spec: PyramidSpec, image_size: tuple[int, int]) -> None:
        h, w = int(image_size[0]), int(image_size[1])
        if len(levels) != len(spec.scales):
            raise ValueError(f"{len(spec.scales)} scales but {len(levels)} levels")
        for i, lev in enumerate(levels):
            _, _, rows, cols = spec.grid(i, h, w)
            if lev.ndim != 4 or tuple(lev.shape[1:3]) != (rows, cols):
                raise ValueError(f"level {i} must have shape (N, {rows}, {cols}, D), got {tuple(lev.shape)}")
        self.levels = [lev.contiguous() for lev in levels]
        self.spec, self.image_size = spec, (h, w)
        self.embed_dim = int(levels[0].shape[-1])
        self.n_images = int(levels[0].shape[0])
        self._log_scales = torch.tensor([math.log(s) for s in spec.scales])

    # -------------------------------------------------------------------- building
    @classmethod
    def build(cls, images: Sequence[np.ndarray], encoder: CLIPEncoder, spec: PyramidSpec = PyramidSpec(), *,
              cache_dir: str | Path | None = None, batch_size: int = 256, progress: bool = True) -> "CropPyramid":
        """Compute (or load from the cache) the pyramid of ``images``.

        Args:
            images: RGB uint8 (H, W, 3) arrays, all of one size.
            encoder: the CLIP whose image tower embeds the crops.
            spec: scales and stride.
            cache_dir: folder of cached pyramids; ``None`` → :func:`default_pyramid_dir`.
            batch_size: crops per forward pass.
            progress: show a progress bar (on stderr) while encoding.

        Returns:
            The pyramid; levels stored as float16.

        Raises:
            ValueError: no images, or images of differing sizes or not uint8 (H, W, 3).
        """
        arrays = check_images(images, "the crop pyramid")
        h, w = arrays[0].shape[:2]
        path = Path(cache_dir).expanduser() if cache_dir is not None else default_pyramid_dir()
        path = path / f"{cls.cache_key(arrays, encoder, spec)}.safetensors"
        if path.is_file():
            try:
                return cls.load(path, spec, (h, w))
            except (ValueError, OSError, RuntimeError, KeyError, SafetensorError):
                pass  # unreadable or stale: recompute and overwrite
        levels = [[] for _ in spec.scales]
        for a in tqdm(arrays, desc="CLIP crop pyramid", unit="image", disable=not progress, leave=False):
            for lev, feats in enumerate(encode_image_levels(a, encoder, spec, batch_size)):
                levels[lev].append(feats.half())
        pyramid = cls([torch.stack(lv) for lv in levels], spec, (h, w))
        pyramid.save(path)
        return pyramid

    @staticmethod
    def cache_key(images: Sequence[np.ndarray], encoder: CLIPEncoder, spec: PyramidSpec) -> str:
        """Hex digest of the images' bytes, the encoder (name, tag, weights, precision) and ``spec``."""
        return targets_cache_key(FORMAT, images, encoder, repr(spec.scales), repr(spec.stride))

    def save(self, path: str | Path) -> Path:
        """Write the levels as safetensors atomically (creating the folder)."""
        path = Path(path)
        meta = {"format": FORMAT, "scales": repr(self.spec.scales), "stride": repr(self.spec.stride),
                "image_size": repr(self.image_size)}
        with atomic_output(path) as tmp:
            save_file({f"level{i}": lev for i, lev in enumerate(self.levels)}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path, spec: PyramidSpec, image_size: tuple[int, int]) -> "CropPyramid":
        """Read a pyramid written by :meth:`save`; ``ValueError`` if it does not match ``spec``/``image_size``."""
        tensors = load_file(str(path))
        return cls([tensors[f"level{i}"] for i in range(len(spec.scales))], spec, image_size)

    # -------------------------------------------------------------------- sampling
    @property
    def scale_range(self) -> tuple[float, float]:
        """Smallest and largest crop scale (fractions of the image height)."""
        return self.spec.scales[0], self.spec.scales[-1]

    def sample(self, image_idx: torch.Tensor, y: torch.Tensor, x: torch.Tensor, scale) -> torch.Tensor:
        """Embeddings at pixels and scales, interpolated in position (bilinear) and in ``log`` scale (linear).

        Args:
            image_idx: int (N,) image indices.
            y, x: (N,) pixel rows and columns (pixel-centre coordinates; fractions allowed).
            scale: (N,) tensor or float, crop side as a fraction of the image height;
                clamped to :attr:`scale_range`.

        Returns:
            float32 (N, D), rows L2-normalised, on ``image_idx``'s device.

        Raises:
            ValueError: lengths differ or an image index is out of range.
        """
        dev = image_idx.device
        idx = image_idx.long().cpu()
        n = idx.shape[0]
        yf, xf = y.float().cpu().reshape(-1), x.float().cpu().reshape(-1)
        s = torch.as_tensor(scale, dtype=torch.float32).cpu().reshape(-1)
        if yf.shape[0] != n or xf.shape[0] != n or s.shape[0] not in (1, n):
            raise ValueError(f"image_idx, y, x (and scale unless a float) must have one length, got {n}, "
                             f"{yf.shape[0]}, {xf.shape[0]}, {s.shape[0]}")
        s = s.expand(n)
        if n and (int(idx.min()) < 0 or int(idx.max()) >= self.n_images):
            raise ValueError(f"image indices must be in [0, {self.n_images}), got {int(idx.min())}..{int(idx.max())}")
        ls = self._log_scales
        t = torch.log(s.clamp(*self.scale_range))
        if len(ls) > 1:  # the two scales around s; with one scale both are level 0
            hi = torch.searchsorted(ls, t).clamp(1, len(ls) - 1)
        else:
            hi = torch.zeros(n, dtype=torch.long)
        lo = (hi - 1).clamp(min=0)
        w_hi = ((t - ls[lo]) / (ls[hi] - ls[lo]).clamp(min=1e-9)).clamp(0, 1)
        out = torch.zeros(n, self.embed_dim)
        h, w = self.image_size
        for lev in range(len(ls)):
            wt = (hi == lev).float() * w_hi + (lo == lev).float() * (1 - w_hi)
            sel = wt > 0
            if not bool(sel.any()):
                continue
            out[sel] += wt[sel, None] * self._bilinear(lev, idx[sel], yf[sel], xf[sel], h, w)
        return F.normalize(out, dim=-1).to(dev)

    def _bilinear(self, lev: int, idx: torch.Tensor, y: torch.Tensor, x: torch.Tensor, h: int, w: int):
        _, step, rows, cols = self.spec.grid(lev, h, w)
        grid = self.levels[lev]
        gy, gx = (y / step).clamp(0, rows - 1), (x / step).clamp(0, cols - 1)
        y0 = gy.floor().long().clamp(max=max(rows - 2, 0))
        x0 = gx.floor().long().clamp(max=max(cols - 2, 0))
        y1, x1 = (y0 + 1).clamp(max=rows - 1), (x0 + 1).clamp(max=cols - 1)
        fy, fx = (gy - y0).clamp(0, 1)[:, None], (gx - x0).clamp(0, 1)[:, None]
        g = lambda a, b: grid[idx, a, b].float()  # noqa: E731
        return (g(y0, x0) * (1 - fy) * (1 - fx) + g(y0, x1) * (1 - fy) * fx
                + g(y1, x0) * fy * (1 - fx) + g(y1, x1) * fy * fx)


def encode_image_levels(image: np.ndarray, encoder: CLIPEncoder, spec: PyramidSpec,
                        batch_size: int = 256) -> list[torch.Tensor]:
    """Encode one image's crop grids: one float32 (rows_l, cols_l, D) L2-normalised tensor per scale.

    Args:
        image: RGB uint8 (H, W, 3).
        encoder: the CLIP.
        spec: scales and stride.
        batch_size: crops per forward pass.
    """
    h, w = image.shape[:2]
    x = encoder.normalize(CLIPEncoder.to_float(image)).float().cpu()  # 0 = the mean colour
    size = encoder.image_size
    out = []
    for lev in range(len(spec.scales)):
        side, step, rows, cols = spec.grid(lev, h, w)
        cy = torch.arange(rows, dtype=torch.float32) * step + 0.5  # roi_align(aligned=True): pixel centres at +0.5
        cx = torch.arange(cols, dtype=torch.float32) * step + 0.5
        yy, xx = torch.meshgrid(cy, cx, indexing="ij")
        half = side / 2
        boxes = torch.stack([torch.zeros_like(xx), xx - half, yy - half, xx + half, yy + half], -1).reshape(-1, 5)
        feats = []
        for i in range(0, boxes.shape[0], batch_size):
            crops = roi_align(x, boxes[i : i + batch_size], size, 1.0, 2, aligned=True)
            feats.append(encoder.encode_pixels(crops, batch_size).float().cpu())
        out.append(torch.cat(feats).reshape(rows, cols, -1))
    return out
