"""``ovtools train``: contrastive training or fine-tuning of an open_clip model.

    ovtools train data/shapes-train/captions.csv --model ovtools-shapes --out runs/shapes --steps 1500
    ovtools train my_folder/ --model RN50 --pretrained openai --out runs/ft --steps 300 --lr 1e-5
    ovtools train data/captions.csv --model ovtools-shapes --out runs/shapes --steps 3000 --resume runs/shapes
    ovtools train my_boxes/annotations.json --model ovtools-shapes --pretrained shapes --out runs/regions \
        --steps 300 --lr 3e-4          # region-level: proposal crops labelled by overlap with your boxes

Exit codes: 0 trained, 2 usage error (missing data, unknown model, bad option).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..pipelines.presets import CommonConfig
from . import options as opt
from .app import app
from .derive import setting_option


class LossName(str, Enum):
    auto = "auto"
    clip = "clip"
    supcon_clip = "supcon-clip"


class SaveDtype(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"

Device = setting_option(CommonConfig, "device")


@app.command("train")
def train(
    data: Annotated[Path, typer.Argument(
        help="Image-caption CSV (columns filepath,caption[,label,image_labels]; paths relative to the CSV), "
        "an ImageFolder (caption 'a photo of a {folder name}'), or a COCO instances .json: region-level "
        "training on proposal crops, captioned with the category when IoU >= 0.7 with a box and as "
        "background when a part or a loose box (crops and CSV written to OUT/regions).")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="open_clip architecture, e.g. ovtools-shapes, RN50, ViT-B-32 (`ovtools models`).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output folder: checkpoint.safetensors/.json/.optim.pt, model.safetensors, log.jsonl.",
        file_okay=False)],
    pretrained: Annotated[Optional[str], typer.Option(
        "--pretrained", help="Starting weights: open_clip tag, shipped tag, or local .safetensors/.pt file. "
        "Default: none (train from scratch).", show_default=False)] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Total optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b", min=2, help="Image-caption pairs per step (capped at the number of rows).")] = 256,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (AdamW, warm-up then cosine).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0, help="AdamW weight decay.")] = 0.1,
    warmup: Annotated[Optional[int], typer.Option(
        "--warmup", min=0, help="Warm-up steps. Default: 5 % of --steps (at most 500).", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation, batch order and augmentation.")] = 0,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", help="Continue from a checkpoint .safetensors (its .json and .optim.pt beside it) or an "
        "output folder.", show_default=False)] = None,
    loss: Annotated[LossName, typer.Option(
        "--loss", help="clip: open_clip ClipLoss (every caption distinct). supcon-clip: captions with the "
        "same label are positives. auto: supcon-clip when the data has labels or repeated captions.")] = LossName.auto,
    secondary_weight: Annotated[float, typer.Option(
        "--secondary-weight", min=0.0, max=1.0, help="supcon-clip: positive weight of an image's secondary labels "
        "(column image_labels) relative to its primary label.")] = 0.05,
    dense_weight: Annotated[float, typer.Option(
        "--dense-weight", min=0.0, help="Weight of a second contrastive loss on the mean of the image tower's "
        "MaskCLIP dense features (aligns them for dense scoring); 0 = off.")] = 0.0,
    no_augment: Annotated[bool, typer.Option(
        "--no-augment", help="Turn off the mild random resized crops (90-100 % area, no colour changes).")] = False,
    save_every: Annotated[int, typer.Option(
        "--save-every", min=0, help="Checkpoint every N steps (0: at the end).")] = 500,
    save_dtype: Annotated[SaveDtype, typer.Option(
        "--save-dtype", help="dtype of the final model.safetensors (fp16 halves the file; loads into fp32)."
    )] = SaveDtype.fp32,
    stop_after: Annotated[Optional[int], typer.Option(
        "--stop-after", min=1, help="Run at most this many steps now, then checkpoint (continue later with "
        "--resume; the learning-rate schedule still spans --steps).", show_default=False)] = None,
    threads: Annotated[int, typer.Option(
        "--threads", min=1, help="CPU threads for torch (set OMP_WAIT_POLICY=PASSIVE on a shared machine).")] = 2,
    region_proposals: Annotated[str, typer.Option(
        "--region-proposals", help="COCO data: proposal source of the region crops (use your detector's: "
        "segments, windows, hybrid, regions, sam).")] = "segments",
    region_masked: Annotated[bool, typer.Option(
        "--region-masked", help="COCO data: masked crops of mask proposals (train for segment) instead of box "
        "crops (for detect); needs a mask source and masks in the file.")] = False,
    region_padding: Annotated[float, typer.Option(
        "--region-padding", min=0.0, max=2.0, help="COCO data: crop context per side, fraction of the box's "
        "longer side (your head's context-padding: detect 0.3, segment 0.2).")] = 0.3,
    region_max_side: Annotated[int, typer.Option(
        "--region-max-side", min=16, help="COCO data: images are downscaled to this longer side before "
        "proposals (your preset's max-side).")] = 512,
    device: Device = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train or fine-tune a CLIP model contrastively on image-caption pairs, or on region crops of a COCO file."""
    from ..errors import UnknownNameError, WeightsUnavailableError
    from ..train import TrainConfig
    from ..train import train as run

    opt.register_model_configs()
    if not data.exists():
        opt.usage_error(f"training data {data} does not exist (give a caption CSV, an ImageFolder or a COCO "
                        "instances .json)")
    if resume is not None and not resume.exists():
        opt.usage_error(f"--resume {resume} does not exist")
    if pretrained is not None and pretrained.lower() == "none":
        pretrained = None
    try:
        cfg = TrainConfig(
            data=str(data), model=model, pretrained=pretrained, out=str(out), steps=steps, batch_size=batch_size,
            lr=lr, weight_decay=weight_decay, warmup=warmup, seed=seed, loss=loss.value,
            secondary_weight=secondary_weight, dense_weight=dense_weight, stop_after=stop_after,
            augment=not no_augment, resume=str(resume) if resume else None,
            save_every=save_every, threads=threads, device=device or "auto", save_dtype=save_dtype.value,
            region_proposals=region_proposals, region_masked=region_masked, region_padding=region_padding,
            region_max_side=region_max_side,
        )
        result = run(cfg, progress=not quiet)
    except (UnknownNameError, WeightsUnavailableError, FileNotFoundError, ValueError) as e:
        opt.usage_error(str(e))
    last = sum(result.losses[-50:]) / max(1, len(result.losses[-50:]))
    opt.stderr.print(f"train: {result.step} steps ({result.loss_name}), last loss {last:.3f}, "
                     f"{result.seconds:.0f} s → {result.model_path}")
