"""3D distillation and the 2D–3D ensemble (OpenScene §3.2–3.3), in pure torch.

OpenScene (Peng et al., CVPR 2023) trains a 3D network to regress the fused 2D
features from geometry alone (§3.2, loss ``1 - cos``), which fills in points
no view saw and denoises the rest; at inference it keeps, per point, whichever
of the fused (2D) and distilled (3D) features is more confident about some
class (§3.3; ``run/evaluate.py`` compares the maximum cosine similarity).

OpenScene's 3D network is a MinkowskiNet sparse-convolution U-Net, which needs
compiled CUDA extensions.  Here the network is a **multi-resolution dense
feature grid + small MLP** (the non-hashed variant of instant-NGP's encoding,
Müller et al., "Instant Neural Graphics Primitives with a Multiresolution Hash
Encoding", SIGGRAPH 2022): ``L`` 3D grids of ``C`` learnable channels over the
scene box, sampled trilinearly with ``F.grid_sample``, concatenated with the
point's RGB and mapped to D dimensions by a 2-hidden-layer MLP.

Why this network: each training step touches only the 8 grid cells around a
point, so features that vary sharply in space are fitted in a few hundred
Adam steps on a CPU, whereas a Fourier-feature MLP must shape all of its
weights for every detail and needs thousands of steps; coarse levels
interpolate smoothly into regions no view saw.  Dense grids (no hashing) avoid
hash collisions and a custom kernel: at 16/32/64 cells per axis they hold a few
hundred thousand parameters per channel.  The price is that the model is
tied to one scene (it is a per-scene fit, not a feed-forward network like
MinkowskiNet), which is what labelling one scan needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .camera import as_tensor, check_points, default_device


class DistillModel(nn.Module):
    """Multi-resolution dense grids + MLP: (xyz, rgb) → D-dim feature, for one scene.

    Args:
        box_min, box_max: (3,) the scene box in world metres; inputs are mapped to [-1, 1]
            per axis (points outside are clamped to the box).
        out_dim: D.
        resolutions: cells along the box's longest axis, one grid per entry; other axes get
            proportionally fewer (at least 2), so cells stay roughly cubic.
        channels: learnable channels per grid.
        hidden: width of the MLP's two hidden layers.
        use_color: feed RGB/255 to the MLP.
        seed: seed of the parameter initialisation (CPU generator; reproducible).

    Raises:
        ValueError: empty ``resolutions``, a resolution < 2, or ``out_dim`` < 1.
    """

    def __init__(self, box_min, box_max, out_dim: int, resolutions: Sequence[int] = (16, 32, 64),
                 channels: int = 8, hidden: int = 128, use_color: bool = True, seed: int = 0) -> None:
        super().__init__()
        if not resolutions or min(resolutions) < 2:
            raise ValueError(f"resolutions must be non-empty and >= 2, got {tuple(resolutions)}")
        if out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {out_dim}")
        lo = torch.as_tensor(box_min, dtype=torch.float32).reshape(3).cpu()
        hi = torch.as_tensor(box_max, dtype=torch.float32).reshape(3).cpu()
        ext = (hi - lo).clamp(min=1e-6)
        self.register_buffer("box_min", lo)
        self.register_buffer("box_size", ext)
        self.use_color = bool(use_color)
        g = torch.Generator().manual_seed(int(seed))
        grids = []
        for r in resolutions:
            nx, ny, nz = (max(2, round(r * float(e) / float(ext.max()))) for e in ext)
            # grid_sample's 3D layout is (C, D, H, W) = (C, z, y, x).
            grids.append(nn.Parameter(torch.empty(1, channels, nz, ny, nx).uniform_(-0.1, 0.1, generator=g)))
        self.grids = nn.ParameterList(grids)
        d_in = channels * len(grids) + (3 if self.use_color else 0)
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, out_dim))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                bound = 1.0 / m.in_features ** 0.5
                m.weight.data.uniform_(-bound * 3**0.5, bound * 3**0.5, generator=g)  # Kaiming-uniform-like
                m.bias.data.zero_()

    @property
    def out_dim(self) -> int:
        return self.mlp[-1].out_features

    def normalize_xyz(self, points: torch.Tensor) -> torch.Tensor:
        """World float (B, 3) → box coordinates in [-1, 1] (clamped)."""
        return ((points - self.box_min) / self.box_size * 2 - 1).clamp(-1, 1)

    def forward(self, points: torch.Tensor, colors: torch.Tensor | None = None) -> torch.Tensor:
        """Raw (un-normalised) features.

        Args:
            points: float32 (B, 3) world metres, on the model's device.
            colors: float32 (B, 3) in [0, 1]; required when ``use_color``.

        Returns:
            float32 (B, D).
        """
        x = self.normalize_xyz(points)
        loc = x.view(1, -1, 1, 1, 3)
        feats = [F.grid_sample(g, loc, mode="bilinear", padding_mode="border", align_corners=True)
                 .view(g.shape[1], -1).T for g in self.grids]
        if self.use_color:
            if colors is None:
                raise ValueError("this DistillModel was trained with colours; pass colors")
            feats.append(colors)
        return self.mlp(torch.cat(feats, 1))

    def predict(self, points, colors=None, batch: int = 65536) -> torch.Tensor:
        """Features of every point.

        Args:
            points: float (N, 3) world metres (numpy or torch).
            colors: (N, 3) uint8 [0, 255] or float [0, 1]; required when the model uses colour.
            batch: points per forward pass.

        Returns:
            float16 (N, D) L2-normalised, on the model's device.

        Raises:
            ValueError: bad shapes, or missing colours for a colour model.
        """
        dev = self.box_min.device
        p = check_points(points, device=dev)
        c = _colors01(colors, p.shape[0], dev) if self.use_color else None
        out = torch.empty(p.shape[0], self.out_dim, dtype=torch.float16, device=dev)
        with torch.inference_mode():
            for s in range(0, p.shape[0], batch):
                f = self(p[s : s + batch], None if c is None else c[s : s + batch])
                out[s : s + batch] = F.normalize(f, dim=1).half()
        return out


def _colors01(colors, n: int, dev) -> torch.Tensor:
    if colors is None:
        raise ValueError("colors are required (N, 3) uint8 or float in [0, 1]")
    c = as_tensor(colors, device=dev)
    if tuple(c.shape) != (n, 3):
        raise ValueError(f"colors must have shape ({n}, 3), got {tuple(c.shape)}")
    return c.float() / 255.0 if c.dtype == torch.uint8 else c.float().clamp(0, 1)


def train_distill(points, colors, target, seen=None, steps: int = 300, batch: int = 8192, lr: float = 1e-2,
                  seed: int = 0, *, resolutions: Sequence[int] = (16, 32, 64), channels: int = 8, hidden: int = 128,
                  device: str | torch.device | None = None,
                  progress: Callable[[str], None] | None = None, every: float = 2.0) -> DistillModel:
    """Fit a :class:`DistillModel` to per-point target features with the loss ``1 - cos`` (OpenScene §3.2).

    Adam (betas 0.9/0.99 as instant-NGP), learning rate decayed by a cosine
    schedule to 5 % of ``lr``; each step draws ``batch`` seen points uniformly
    with replacement.

    Args:
        points: float (N, 3) world metres (numpy or torch).
        colors: (N, 3) uint8 or float in [0, 1]; ``None`` trains a geometry-only model.
        target: float (N, D) features to distil (e.g. ``FusedFeatures.features``, float16).
        seen: bool (N,) points with a valid target (e.g. ``FusedFeatures.seen``); default:
            rows of ``target`` with non-zero norm.
        steps: optimisation steps.
        batch: points per step.
        lr: peak learning rate.
        seed: seeds the initialisation and the batch sampling; on CPU two runs with the same
            seed give identical weights (CUDA's ``grid_sample`` backward uses atomic adds,
            so there runs may differ in the last bits).
        resolutions, channels, hidden: see :class:`DistillModel`.
        device: where to train; default: ``target``'s device if a tensor, else ``points``', else CPU.
        progress: called with ``"distilling: step k/steps, loss x"`` at most every ``every`` seconds.

    Returns:
        The trained :class:`DistillModel` (eval mode) on ``device``; ``model.losses`` holds
        the loss of every step.

    Raises:
        ValueError: shapes disagree, no point is seen, or ``steps``/``batch`` < 1.
    """
    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be >= 1, got {steps}, {batch}")
    dev = torch.device(device) if device is not None else default_device(target, points)
    p = check_points(points, device=dev)
    n = p.shape[0]
    t = as_tensor(target, device=dev)
    if t.ndim != 2 or t.shape[0] != n:
        raise ValueError(f"target must have shape ({n}, D), got {tuple(t.shape)}")
    if seen is None:
        seen_t = t.float().norm(dim=1) > 0
    else:
        seen_t = as_tensor(seen, device=dev).bool()
        if tuple(seen_t.shape) != (n,):
            raise ValueError(f"seen must have shape ({n},), got {tuple(seen_t.shape)}")
    idx = torch.nonzero(seen_t).squeeze(1)
    if idx.numel() == 0:
        raise ValueError("no seen point to distil from (seen is all False)")
    c = _colors01(colors, n, dev) if colors is not None else None
    lo, hi = p[idx].amin(0), p[idx].amax(0)
    pad = 0.02 * (hi - lo).max().clamp(min=1e-3)
    model = DistillModel((lo - pad).cpu(), (hi + pad).cpu(), t.shape[1], resolutions, channels, hidden,
                         use_color=c is not None, seed=seed).to(dev)
    opt = torch.optim.Adam([{"params": model.grids.parameters()}, {"params": model.mlp.parameters()}],
                           lr=lr, betas=(0.9, 0.99), eps=1e-15)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    losses = []
    model.train()
    last = time.perf_counter()
    for step in range(steps):
        j = idx[torch.randint(idx.numel(), (batch,), generator=gen, device=dev)]
        pred = model(p[j], None if c is None else c[j])
        loss = (1 - F.cosine_similarity(pred, t[j].float(), dim=1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
        if progress is not None and time.perf_counter() - last >= every:
            last = time.perf_counter()
            progress(f"distilling: step {step + 1}/{steps}, loss {float(loss):.3f}")
    model.eval()
    model.losses = torch.stack(losses).cpu().tolist()
    return model


def ensemble_features(fused, distilled, class_embeddings, logit_scale: float | None = None,
                      seen=None) -> torch.Tensor:
    """2D–3D ensemble (OpenScene §3.3): per point, the feature that is more confident about some class.

    For each point, the score of a feature is its maximum cosine similarity to the
    class embeddings (as in OpenScene's ``run/evaluate.py``); with ``logit_scale`` it is
    instead the maximum of ``softmax(logit_scale * cos)`` over classes, which also weighs
    how clearly one class wins.  The fused feature is kept where it scores strictly
    higher, the distilled one otherwise; points no view saw always take the distilled one.

    Args:
        fused: float (N, D) fused features (``FusedFeatures.features``); unseen rows are zero.
        distilled: float (N, D) distilled features (``DistillModel.predict``).
        class_embeddings: float (C, D) L2-normalised text embeddings, C >= 1.
        logit_scale: optional CLIP temperature (> 0), see above.
        seen: bool (N,) points a view saw; default: rows of ``fused`` with non-zero norm.

    Returns:
        float16 (N, D) L2-normalised, on ``fused``'s device.

    Raises:
        ValueError: shapes disagree, C = 0, or ``logit_scale <= 0``.
    """
    a = as_tensor(fused)
    dev = a.device
    a = a.float()
    b = as_tensor(distilled, device=dev).float()
    t = as_tensor(class_embeddings, device=dev).float()
    if a.ndim != 2 or b.shape != a.shape:
        raise ValueError(f"fused and distilled must have the same shape (N, D), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if t.ndim != 2 or t.shape[1] != a.shape[1] or t.shape[0] == 0:
        raise ValueError(f"class_embeddings must have shape (C >= 1, {a.shape[1]}), got {tuple(t.shape)}")
    if logit_scale is not None and not logit_scale > 0:
        raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    s = a.norm(dim=1) > 0 if seen is None else as_tensor(seen, device=dev).bool()
    if tuple(s.shape) != (a.shape[0],):
        raise ValueError(f"seen must have shape ({a.shape[0]},), got {tuple(s.shape)}")

    def score(x: torch.Tensor) -> torch.Tensor:
        cos = x @ t.T
        return cos.max(1).values if logit_scale is None else (logit_scale * cos).softmax(1).max(1).values

    use_fused = s & (score(a) > score(b))
    return torch.where(use_fused[:, None], a, b).half()
