"""Contrastive training / fine-tuning of any open_clip architecture.

AdamW (no weight decay on biases, norms, embeddings' gains and the
temperature) with linear warm-up then cosine decay, learnable temperature
``model.logit_scale`` clamped at ln 100 as in CLIP, seeded batches
(:mod:`ovtools.train.data`).  Checkpoints in ``OUT``:

* ``checkpoint.safetensors`` — the weights (what ``--pretrained`` / ``load_clip`` reads),
* ``checkpoint.json`` — step, model name, config, recent loss,
* ``checkpoint.optim.pt`` — optimizer and scheduler state, for ``--resume``,
* ``model.safetensors`` (+ ``model.json``) — the final weights, in ``save_dtype``,
* ``log.jsonl`` — one line per ``log_every`` steps,
* ``regions/`` — with a COCO instances file as ``data``: the region crops and their
  ``regions.csv`` (:mod:`ovtools.train.regions`), made once and reused on ``--resume``.

Example:
    >>> cfg = TrainConfig(data="data/train/captions.csv", model="ovtools-shapes", out="runs/s")  # doctest: +SKIP
    >>> result = train(cfg)                                                                         # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..encoders.dense import dense_patch_features, resize_pos_embed
from ..encoders.loading import load_clip
from ..io.writers import atomic_output, atomic_write_text
from .data import BatchSource, load_table
from .loss import LOSSES, build_loss, resolve_loss
from .regions import CSV_NAME as REGIONS_CSV
from .regions import RegionDataConfig, write_region_data

SAVE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
        data: caption CSV, ImageFolder, or COCO instances JSON (region-level training: proposal
            crops labelled by their overlap with the boxes, :mod:`ovtools.train.regions`).
        model: open_clip architecture name (ovtools' shipped ones included).
        pretrained: starting weights (open_clip tag or local file); ``None`` = from scratch.
        out: output folder.
        steps: total optimizer steps (a resumed run continues up to this).
        batch_size: rows per step.
        lr: peak learning rate.
        weight_decay: AdamW weight decay on weight matrices.
        warmup: linear warm-up steps; ``None`` = 5 % of ``steps`` (at most 500).
        seed: initialisation, batch order and augmentation seed.
        loss: ``"auto"``, ``"clip"`` or ``"supcon-clip"`` (see :mod:`ovtools.train.loss`).
        secondary_weight: positive weight of an image's secondary labels (supcon-clip).
        augment: mild random resized crops.
        resume: checkpoint (``.safetensors``) or output folder to continue from.
        save_every: checkpoint period in steps (0: only at the end).
        log_every: log period in steps.
        threads: ``torch.set_num_threads``; ``None`` leaves torch's default.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` ...
        save_dtype: dtype of the final ``model.safetensors`` (``"fp16"`` halves its size; loads into fp32 models).
        max_grad_norm: gradient clipping norm (0: off).
        dense_weight: weight of a second contrastive loss on the mean of the image tower's
            MaskCLIP dense features (:func:`image_and_dense_features`), which aligns the
            per-position features used by ``scoring="dense"`` with the text space; 0 = off.
        stop_after: run at most this many steps in this call, then checkpoint (time-sliced
            runs; the learning-rate schedule still spans ``steps``); ``None`` = run to ``steps``.
        region_proposals: COCO data: proposal source of the region crops (the detector's, e.g. ``segments``).
        region_masked: COCO data: masked crops of mask proposals (for ``segment``) instead of box crops.
        region_padding: COCO data: crop context, fraction of the box's longer side (the head's
            ``context_padding``).
        region_max_side: COCO data: processing size bound in pixels (the preset's ``max_side``).
    """

    data: str
    model: str
    pretrained: str | None = None
    out: str = "runs/train"
    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int | None = None
    seed: int = 0
    loss: str = "auto"
    secondary_weight: float = 0.05
    augment: bool = True
    resume: str | None = None
    save_every: int = 500
    log_every: int = 50
    threads: int | None = 2
    device: str = "auto"
    save_dtype: str = "fp32"
    max_grad_norm: float = 1.0
    stop_after: int | None = None
    dense_weight: float = 0.0
    region_proposals: str = "segments"
    region_masked: bool = False
    region_padding: float = 0.3
    region_max_side: int = 512

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.save_dtype not in SAVE_DTYPES:
            raise ValueError(f"save_dtype must be one of {list(SAVE_DTYPES)}, got {self.save_dtype!r}")
        if self.dense_weight < 0:
            raise ValueError(f"dense_weight must be >= 0, got {self.dense_weight}")
        if not 0 <= self.secondary_weight <= 1:
            raise ValueError(f"secondary_weight must be in [0, 1], got {self.secondary_weight}")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        out: output folder.
        model_path: the final ``model.safetensors``.
        step: steps done in total.
        loss_name: the loss actually used.
        losses: loss per step run in this call (float).
        seconds: wall time of this call.
    """

    out: Path
    model_path: Path
    step: int
    loss_name: str
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    def no_decay(name: str, p: torch.Tensor) -> bool:
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
            {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": weight_decay}]


def _schedule(steps: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def _loss(loss_fn, loss_name: str, img_f, txt_f, scale, targets) -> torch.Tensor:
    return loss_fn(img_f, txt_f, scale) if loss_name == "clip" else loss_fn(img_f, txt_f, scale, targets)


def image_and_dense_features(visual, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global image features and the mean of the MaskCLIP dense features, unnormalised.

    For a ModifiedResNet both come from one pass through the trunk (the dense
    path is ``c_proj(v_proj(x + pos))`` per cell, see :mod:`ovtools.encoders.dense`);
    other towers run :func:`~ovtools.encoders.dense.dense_patch_features` as a
    second pass.

    Args:
        visual: the open_clip image tower (``model.visual``).
        x: normalised images (B, 3, S, S).

    Returns:
        ``(global, dense_mean)``, each (B, D).

    Raises:
        NotImplementedError: the tower has no dense path.
    """

    if isinstance(visual, ModifiedResNet):
        f = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x)))))
        pool = visual.attnpool
        b, c, gh, gw = f.shape
        cells = f.flatten(2).permute(0, 2, 1) + resize_pos_embed(pool.positional_embedding, gh, gw).to(f.dtype)
        return pool(f), pool.c_proj(pool.v_proj(cells)).mean(1)
    return visual(x), dense_patch_features(visual, x).mean((1, 2))


def is_coco_file(path: str | Path) -> bool:
    """Whether training data is a COCO instances file (a ``.json`` file) rather than a CSV or folder."""
    return Path(path).suffix.lower() == ".json" and Path(path).is_file()


def _region_csv(cfg: TrainConfig, out: Path, size: int, mean, std) -> Path:
    """The region rows of a COCO file, written to ``OUT/regions`` once (reused when resuming)."""
    folder = out / "regions"
    if (folder / REGIONS_CSV).is_file():
        return folder / REGIONS_CSV
    rcfg = RegionDataConfig(proposals=cfg.region_proposals, masked=cfg.region_masked,
                            context_padding=cfg.region_padding, max_side=cfg.region_max_side, seed=cfg.seed)
    return write_region_data(cfg.data, folder, size, tuple(mean), tuple(std), rcfg)


def _resume_paths(resume: str | Path) -> tuple[Path, Path, Path]:
    p = Path(resume)
    if p.is_dir():
        p = p / "checkpoint.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"resume checkpoint {p} does not exist")
    stem = p.with_suffix("")
    return p, stem.with_suffix(".json"), stem.with_suffix(".optim.pt")


def save_weights(model: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float32,
                 meta: dict | None = None) -> None:
    """Write a model's state dict as safetensors (floating tensors cast to ``dtype``), atomically.

    ``meta`` goes to the safetensors header; the trainer passes none, so that equal
    weights give byte-identical files (header key order is not stable).
    """
    sd = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous().clone()
          for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(sd, str(tmp), metadata={k: str(v) for k, v in (meta or {}).items()})


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


def _save_checkpoint(out: Path, model, opt, sched, step: int, cfg: TrainConfig, loss_name: str, recent: list[float]):
    save_weights(model, out / "checkpoint.safetensors")
    with atomic_output(out / "checkpoint.optim.pt") as tmp:
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step}, tmp)
    _write_json(out / "checkpoint.json", {"step": step, "model": cfg.model, "loss_name": loss_name,
                                          "recent_loss": recent[-50:], "config": asdict(cfg)})


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Run (or resume) contrastive training.

    Args:
        cfg: the run's settings.
        progress: show a tqdm bar.

    Returns:
        :class:`TrainResult`.

    Raises:
        FileNotFoundError: data or resume checkpoint missing.
        ValueError: bad settings or data (messages name the input).
        UnknownNameError, WeightsUnavailableError: see :func:`ovtools.encoders.loading.load_clip`.
    """

    t0 = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    loaded = load_clip(cfg.model, cfg.pretrained, device=cfg.device)
    model, device = loaded.model, loaded.device
    channels_last = device.type == "cpu"  # faster CPU convolutions; weights are saved contiguous
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    visual = model.visual
    size = getattr(visual, "image_size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
    std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
    table = load_table(_region_csv(cfg, out, size, mean, std) if is_coco_file(cfg.data) else cfg.data)
    loss_name = resolve_loss(cfg.loss, table.has_labels, table.captions_repeat)
    data = BatchSource(table, loaded.tokenizer, size, mean, std, min(cfg.batch_size, len(table)), cfg.seed,
                       cfg.augment, cfg.secondary_weight)

    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = cfg.warmup if cfg.warmup is not None else min(500, max(1, cfg.steps // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg.steps, warmup))
    start = 0
    if cfg.resume:
        wpath, jpath, opath = _resume_paths(cfg.resume)
        state = load_file(str(wpath))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
        start = int(json.loads(jpath.read_text())["step"]) if jpath.is_file() else 0
        if opath.is_file():
            o = torch.load(opath, map_location="cpu", weights_only=True)
            opt.load_state_dict(o["optimizer"])
            sched.load_state_dict(o["scheduler"])
            start = int(o["step"])
        else:
            warnings.warn(f"{opath} not found: resuming {wpath} at step {start} with a fresh optimizer", UserWarning,
                          stacklevel=2)
    loss_fn = build_loss(loss_name)
    model.train()
    losses: list[float] = []
    log = open(out / "log.jsonl", "a")
    end = cfg.steps if cfg.stop_after is None else min(cfg.steps, start + cfg.stop_after)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, disable=not progress, desc="train",
               dynamic_ncols=True)
    try:
        for step in bar:
            images, tokens, targets = data.batch(step)
            images = images.to(device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = targets.to(device)
            if cfg.dense_weight > 0:
                img_f, dense_f = image_and_dense_features(model.visual, images)
                txt_f = F.normalize(model.encode_text(tokens.to(device)), dim=-1)
                scale = model.logit_scale.exp()
                loss = _loss(loss_fn, loss_name, F.normalize(img_f, dim=-1), txt_f, scale, targets)
                loss = loss + cfg.dense_weight * _loss(loss_fn, loss_name, F.normalize(dense_f, dim=-1), txt_f, scale,
                                                       targets)
            else:
                img_f, txt_f, scale = model(images, tokens.to(device))[:3]
                loss = _loss(loss_fn, loss_name, img_f, txt_f, scale, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower --lr (now {cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(float(loss.detach()))
            done = step + 1
            if done % cfg.log_every == 0 or done == end:
                recent = sum(losses[-cfg.log_every:]) / len(losses[-cfg.log_every:])
                bar.set_postfix(loss=f"{recent:.3f}", scale=f"{scale.item():.1f}")
                row = {"step": done, "loss": recent, "lr": sched.get_last_lr()[0],
                       "logit_scale": float(scale.detach()), "seconds": round(time.time() - t0, 1)}
                log.write(json.dumps(row) + "\n")
                log.flush()
            if cfg.save_every and done % cfg.save_every == 0 and done < end:
                _save_checkpoint(out, model, opt, sched, done, cfg, loss_name, losses)
    finally:
        bar.close()
        log.close()
    step = max(start, end)
    model.eval()
    _save_checkpoint(out, model, opt, sched, step, cfg, loss_name, losses)
    save_weights(model, out / "model.safetensors", SAVE_DTYPES[cfg.save_dtype])
    _write_json(out / "model.json", {"step": step, "model": cfg.model, "loss_name": loss_name,
                                     "save_dtype": cfg.save_dtype, "config": asdict(cfg),
                                     "seconds": round(time.time() - t0, 1)})
    return TrainResult(out, out / "model.safetensors", step, loss_name, losses, time.time() - t0)
