"""Segment Anything (SAM) masks: automatic mask proposals and box-prompted masks.

Kirillov, Mintun, Ravi, Mao, Rolland, Gustafson, Xiao, Whitehead, Berg, Lo,
Dollár & Girshick, "Segment Anything", ICCV 2023.  Two uses:

* :class:`SamMaskProposals` (proposal source ``"sam"``) wraps
  ``SamAutomaticMaskGenerator``: a regular grid of point prompts, three masks
  per point, filtered by predicted IoU and stability and deduplicated with box
  NMS (§4 "fully automatic stage", §7.3 "zero-shot object proposals",
  Appendix B "automatic mask generation details").  Unlike the box sources it returns masks (``output = "masks"``).
* :class:`SamBoxSegmenter` turns boxes (e.g. from a detector head) into one mask
  each, with the box as SAM's prompt (as in §7.4 "zero-shot instance segmentation").

Weights are never downloaded: pass the official ``.pth`` file
(``sam_checkpoint=`` / ``--sam-checkpoint``) or an already-built ``Sam``.
Images whose longer side exceeds ``max_side`` are downscaled (``cv2.INTER_AREA``)
before SAM runs, and the masks are brought back to the input size by bilinear
interpolation of the 0/1 mask, thresholded at 0.5, so memory is bounded by
``max_side`` plus the returned masks themselves.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from ..encoders.loading import resolve_device
from ..errors import UnknownNameError, WeightsUnavailableError, first_line, import_extra
from .image_input import check_image
from .registry import check_number, register_proposals

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

#: Official checkpoints (Kirillov et al. 2023), by ``sam_model_registry`` name.
SAM_CHECKPOINT_URLS: dict[str, str] = {
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
}
_EMBED_DIMS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}  # image encoder width → type
_PIXEL_MEAN = (123.675, 116.28, 103.53)
_PIXEL_STD = (58.395, 57.12, 57.375)


def _segment_anything():
    return import_extra("segment_anything", "sam", "SAM proposals")


def build_tiny_sam(img_size: int = 256, seed: int = 0) -> Sam:
    """A tiny SAM with random weights, for tests and plumbing checks (its masks mean nothing).

    One-block ViT image encoder (width 32, patch 16) and a prompt encoder/mask
    decoder of width 32, connected as in ``segment_anything.build_sam._build_sam``.

    Args:
        img_size: side of SAM's square input; images are resized so their longer
            side is ``img_size`` (``ResizeLongestSide``).  A multiple of 16.
        seed: seed of the random initialisation (the global RNG is left untouched).

    Returns:
        ``segment_anything.modeling.Sam`` in eval mode on the CPU.

    Raises:
        ValueError: ``img_size`` is not a positive multiple of 16.
        ImportError: segment-anything is not installed.
    """

    _segment_anything()
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if img_size < 16 or img_size % 16:
        raise ValueError(f"img_size must be a positive multiple of 16, got {img_size}")
    dim, grid = 32, img_size // 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size, patch_size=16, embed_dim=dim, depth=1, num_heads=2, mlp_ratio=2,
                out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True, window_size=4, global_attn_indexes=(0,)),
            prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                         input_image_size=(img_size, img_size), mask_in_chans=4),
            mask_decoder=MaskDecoder(
                transformer_dim=dim, num_multimask_outputs=3, iou_head_depth=2, iou_head_hidden_dim=32,
                transformer=TwoWayTransformer(depth=1, embedding_dim=dim, num_heads=2, mlp_dim=64)),
            pixel_mean=list(_PIXEL_MEAN), pixel_std=list(_PIXEL_STD))
    return sam.eval()


def load_sam(checkpoint: str | Path | Sam | None = None, model_type: str = "vit_b", device="cpu") -> Sam:
    """Build an official SAM architecture and load its weights from a local file.

    Args:
        checkpoint: path to the official ``.pth`` for ``model_type`` (see
            :data:`SAM_CHECKPOINT_URLS`), or an already-built ``Sam``, returned
            moved to ``device``.
        model_type: ``"vit_b"``, ``"vit_l"`` or ``"vit_h"``.
        device: torch device (``"cpu"``, ``"cuda"``, ``"auto"``, ...).

    Returns:
        ``segment_anything.modeling.Sam`` in eval mode on ``device``.

    Raises:
        UnknownNameError: unknown ``model_type``; the message lists the valid names.
        WeightsUnavailableError: ``checkpoint`` is None or does not exist (the
            message gives the download URL and how to pass the file), cannot be
            read, or does not fit ``model_type`` (the message names the file).
        ValueError: unknown or unavailable ``device``.
        ImportError: segment-anything is not installed.
    """

    sa = _segment_anything()
    dev = resolve_device(device)
    if isinstance(checkpoint, sa.modeling.Sam):
        return checkpoint.to(dev)
    if model_type not in SAM_CHECKPOINT_URLS:
        raise UnknownNameError(f"unknown SAM model_type {model_type!r}; available: {sorted(SAM_CHECKPOINT_URLS)}")
    path = None if checkpoint is None else Path(checkpoint).expanduser()
    if path is None or not path.is_file():
        where = "no checkpoint was given" if path is None else f"checkpoint {path} does not exist"
        raise WeightsUnavailableError(
            f"SAM {model_type} weights are needed but {where}; they cannot be downloaded automatically. "
            f"Download {SAM_CHECKPOINT_URLS[model_type]} and pass its path with sam_checkpoint=... "
            f"(Python) or --sam-checkpoint PATH (CLI), with model_type={model_type!r}")
    if path.stat().st_size == 0:
        raise WeightsUnavailableError(f"SAM checkpoint {path} is an empty file (0 bytes)")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch readers raise many types
        raise WeightsUnavailableError(f"SAM checkpoint {path} cannot be read ({first_line(e)})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnavailableError(f"SAM checkpoint {path} does not hold a state dict of tensors")
    # Build on the meta device and adopt the checkpoint's tensors: no random init, one copy in memory.
    with torch.device("meta"):
        sam = sa.sam_model_registry[model_type]()
    try:
        sam.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        width = getattr(state.get("image_encoder.patch_embed.proj.weight"), "shape", (None,))[0]
        guess = _EMBED_DIMS.get(width)
        hint = f"; it looks like a {guess} checkpoint (model_type={guess!r})" if guess and guess != model_type else ""
        detail = " ".join(line.strip() for line in str(e).splitlines()[1:3])[:300]
        raise WeightsUnavailableError(
            f"SAM checkpoint {path} does not fit model_type {model_type!r}{hint}: {detail}") from None
    if any(t.is_meta for t in [*sam.parameters(), *sam.buffers()]):
        raise WeightsUnavailableError(f"SAM checkpoint {path} left some tensors of {model_type!r} unset")
    return sam.to(dev).eval()


def _resize_image(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale RGB uint8 (H, W, 3) so its longer side is <= ``max_side`` (area averaging)."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def _upsample_into(out: np.ndarray, i: int, mask: np.ndarray) -> None:
    """Write bool ``mask`` (h, w) into ``out[i]`` (H, W): bilinear on the 0/1 mask, then > 0.5."""
    if mask.shape == out.shape[1:]:
        out[i] = mask
        return
    up = cv2.resize(mask.astype(np.uint8) * 255, (out.shape[2], out.shape[1]), interpolation=cv2.INTER_LINEAR)
    np.greater(up, 127, out=out[i])


class _SamBase:
    """Shared loading and option checks of the SAM wrappers."""

    def __init__(self, checkpoint, model_type, model, max_side, device) -> None:
        sa = _segment_anything()
        if model is not None and not isinstance(model, sa.modeling.Sam):
            raise TypeError(f"model must be a segment_anything Sam instance or None, got {type(model).__name__}")
        if max_side is not None and int(max_side) < 16:
            raise ValueError(f"max_side must be >= 16 pixels or None, got {max_side}")
        try:
            dev = resolve_device(device)
        except ValueError as e:  # the pipeline has a device of its own: say this one is SAM's
            raise ValueError(f"SAM {e}") from None
        if dev.type == "mps":  # segment-anything builds float64 tensors, which MPS lacks (its issue #94): CPU
            dev = torch.device("cpu")
        self.model = load_sam(model if model is not None else checkpoint, model_type, dev)
        self.max_side = None if max_side is None else int(max_side)
        self._lock = threading.Lock()


@register_proposals("sam")
class SamMaskProposals(_SamBase):
    """SAM automatic mask generation as a mask proposal source (Kirillov et al. 2023, §4, §7.3, App. B).

    Masks are ranked best first by ``predicted_iou * stability_score`` (SAM's own
    quality estimates, §4; ties by ``predicted_iou``) and the first
    ``max_masks`` kept.  One
    instance may be called from several threads; calls run one at a time.

    Args:
        checkpoint: path to the official SAM ``.pth`` (see :func:`load_sam`).
        model_type: ``"vit_b"``, ``"vit_l"`` or ``"vit_h"``; must match ``checkpoint``.
        model: an already-built ``Sam`` (e.g. :func:`build_tiny_sam`); overrides ``checkpoint``.
        points_per_side: point prompts per image side (``points_per_side ** 2`` in all).
        pred_iou_thresh: masks with predicted IoU at or below this are dropped.
        stability_score_thresh: masks with stability score below this are dropped.
        box_nms_thresh: box IoU above which a lower-IoU duplicate mask is dropped.
        crop_n_layers: extra layers of image crops (0: whole image only).
        min_mask_region_area: holes and islands smaller than this (pixels of the
            image SAM sees, after any downscale) are removed; 0 disables.
        points_per_batch: point prompts decoded together (memory vs. speed).
        max_side: longer image side SAM sees, in pixels; larger images are
            downscaled and the masks upsampled back.  ``None``: never downscale.
        max_masks: cap on the number of returned masks.
        device: where a model loaded from ``checkpoint`` (or given) runs: ``"auto"`` (CUDA > CPU),
            ``"cpu"``, ``"cuda:N"``...; the pipelines pass their encoder's device.  An MPS device
            (Apple GPUs) runs SAM on the CPU: segment-anything's automatic mask generator builds
            float64 tensors, which MPS does not support (segment-anything issue #94).

    Raises:
        UnknownNameError / WeightsUnavailableError: as :func:`load_sam`.
        TypeError: ``model`` is not a ``Sam``.
        ValueError: non-positive counts or limits; ``pred_iou_thresh`` / ``stability_score_thresh``
            outside [0, 1] or ``box_nms_thresh`` outside (0, 1] (NaN included).
        ImportError: segment-anything is not installed.
    """

    output = "masks"

    def __init__(self, checkpoint: str | Path | None = None, model_type: str = "vit_b", model: Sam | None = None,
                 points_per_side: int = 32, pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95,
                 box_nms_thresh: float = 0.7, crop_n_layers: int = 0, min_mask_region_area: int = 0,
                 points_per_batch: int = 64, max_side: int | None = 1024, max_masks: int = 200,
                 device="auto") -> None:
        if points_per_side < 1 or points_per_batch < 1 or max_masks < 1:
            raise ValueError("points_per_side, points_per_batch and max_masks must be >= 1, got "
                             f"{points_per_side}, {points_per_batch}, {max_masks}")
        if crop_n_layers < 0 or min_mask_region_area < 0:
            raise ValueError(f"crop_n_layers and min_mask_region_area must be >= 0, got "
                             f"{crop_n_layers}, {min_mask_region_area}")
        check_number("sam: pred_iou_thresh", pred_iou_thresh, low=0, high=1)
        check_number("sam: stability_score_thresh", stability_score_thresh, low=0, high=1)
        check_number("sam: box_nms_thresh", box_nms_thresh, low=0, low_open=True, high=1)
        super().__init__(checkpoint, model_type, model, max_side, device)
        from segment_anything import SamAutomaticMaskGenerator

        self.max_masks = int(max_masks)
        #: The wrapped ``SamAutomaticMaskGenerator`` (receives the downscaled image).
        self.generator = SamAutomaticMaskGenerator(
            self.model, points_per_side=int(points_per_side), points_per_batch=int(points_per_batch),
            pred_iou_thresh=float(pred_iou_thresh), stability_score_thresh=float(stability_score_thresh),
            box_nms_thresh=float(box_nms_thresh), crop_n_layers=int(crop_n_layers),
            min_mask_region_area=int(min_mask_region_area), output_mode="uncompressed_rle")

    def propose(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks and their scores for one image.

        Args:
            image: RGB uint8 (H, W, 3), values in [0, 255].

        Returns:
            ``(masks, scores)``: bool (N, H, W) masks in pixels of ``image`` (N <= ``max_masks``,
            possibly 0) and float32 (N,) ``predicted_iou * stability_score``, descending.

        Raises:
            TypeError / ValueError: ``image`` is not an RGB uint8 (H, W, 3) array.
        """
        from segment_anything.utils.amg import rle_to_mask

        image = check_image(image)
        work = np.ascontiguousarray(_resize_image(image, self.max_side))
        with self._lock:
            records = self.generator.generate(work)
        iou = np.array([r["predicted_iou"] for r in records], np.float32)
        scores = iou * np.array([r["stability_score"] for r in records], np.float32)
        order = np.lexsort((-iou, -scores))[: self.max_masks]  # ties: higher predicted IoU first
        masks = np.zeros((len(order), *image.shape[:2]), bool)
        for i, j in enumerate(order):
            _upsample_into(masks, i, rle_to_mask(records[j]["segmentation"]))
        return masks, scores[order]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Masks only: bool (N, H, W) in pixels of ``image``, best first (see :meth:`propose`)."""
        return self.propose(image)[0]


class SamBoxSegmenter(_SamBase):
    """One SAM mask per box prompt (single-mask output; Kirillov et al. 2023, §7.4).

    One instance may be called from several threads; calls run one at a time
    (``SamPredictor`` holds the current image's embedding).

    Args:
        checkpoint, model_type, model, max_side, device: as :class:`SamMaskProposals`.
        boxes_per_batch: boxes decoded together (memory vs. speed).

    Raises:
        As :class:`SamMaskProposals`.
    """

    def __init__(self, checkpoint: str | Path | None = None, model_type: str = "vit_b", model: Sam | None = None,
                 max_side: int | None = 1024, boxes_per_batch: int = 64, device="auto") -> None:
        if boxes_per_batch < 1:
            raise ValueError(f"boxes_per_batch must be >= 1, got {boxes_per_batch}")
        super().__init__(checkpoint, model_type, model, max_side, device)
        from segment_anything import SamPredictor

        self.boxes_per_batch = int(boxes_per_batch)
        #: The wrapped ``SamPredictor`` (its image is the downscaled one).
        self.predictor = SamPredictor(self.model)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Segment the object in each box.

        Args:
            image: RGB uint8 (H, W, 3), values in [0, 255].
            boxes: float (N, 4) boxes ``x_min, y_min, x_max, y_max`` in pixels of
                ``image`` (origin top-left); boxes reaching outside the image are
                passed to SAM as given.

        Returns:
            bool (N, H, W) masks in pixels of ``image``, one per box in order; ``(0, H, W)`` for N = 0.

        Raises:
            TypeError / ValueError: ``image`` is not an RGB uint8 (H, W, 3) array.
            ValueError: ``boxes`` is not (N, 4), has non-finite values or ``x_max < x_min`` / ``y_max < y_min``.
        """
        image = check_image(image)
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            if boxes.size == 0:
                boxes = boxes.reshape(0, 4)
            else:
                raise ValueError(f"boxes must have shape (N, 4) xyxy, got {boxes.shape}")
        if not np.isfinite(boxes).all():
            rows = np.flatnonzero(~np.isfinite(boxes).all(1)).tolist()
            raise ValueError(f"boxes must be finite; rows {rows} are not")
        bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
        if len(bad):
            raise ValueError(f"boxes must be xyxy with x_max >= x_min and y_max >= y_min; rows {bad.tolist()} are not")
        h, w = image.shape[:2]
        masks = np.zeros((len(boxes), h, w), bool)
        if len(boxes) == 0:
            return masks
        work = np.ascontiguousarray(_resize_image(image, self.max_side))
        scale = np.array([work.shape[1] / w, work.shape[0] / h] * 2)
        with self._lock, torch.no_grad():
            self.predictor.set_image(work, image_format="RGB")
            try:
                for s in range(0, len(boxes), self.boxes_per_batch):
                    b = torch.as_tensor(boxes[s: s + self.boxes_per_batch] * scale, dtype=torch.float32,
                                        device=self.predictor.device)
                    b = self.predictor.transform.apply_boxes_torch(b, work.shape[:2])
                    out, _, _ = self.predictor.predict_torch(None, None, boxes=b, multimask_output=False)
                    for k, m in enumerate(out[:, 0].cpu().numpy()):
                        _upsample_into(masks, s + k, m)
            finally:
                self.predictor.reset_image()
        return masks
