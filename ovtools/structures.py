"""Result types, one per task.

* :class:`Classifications` (``classify``): top-k class ids per image with open-set
  confidence, label probability and relevancy, and a "none of these" flag;
* :class:`Detections` (``detect`` and ``segment``): xyxy boxes (N, 4) float32 in pixels
  of the original image, confidence (N,), class ids (N,), optional bool masks (N, H, W);
  :meth:`Detections.empty` builds a result with no detection, :meth:`Detections.label_map`
  the semantic map of a segmentation;
* :class:`PointLabels` (``segment3d``): one class id and confidence per input point.

Validated on construction (shapes, dtypes, finiteness) in the manner of
supervision's ``Detections``: a wrong shape raises ``ValueError`` naming the
field, the expected and the actual shape.  Empty results keep their shapes,
e.g. ``xyxy`` is ``(0, 4)``.  Every confidence is the open-set score of
:func:`ovtools.heads.scoring.open_set_scores`, in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils


def _as(arr, dtype, name: str, shape: tuple) -> np.ndarray:
    a = np.asarray(arr)
    if a.size == 0:
        a = a.reshape(tuple(0 if s is None else s for s in shape)) if a.ndim != len(shape) else a
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if np.issubdtype(dtype, np.floating) and not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(dtype, copy=False)
    if np.issubdtype(dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


@dataclass
class Detections:
    """Detections in pixel coordinates of the original (EXIF-corrected) image.

    Attributes:
        xyxy: float32 (N, 4), ``x_min, y_min, x_max, y_max`` in pixels, origin top-left,
            ``0 <= x <= width``, ``0 <= y <= height``.
        confidence: float32 (N,), in [0, 1] (see the head's docs for its meaning).
        class_id: int64 (N,), index into ``class_names``.
        class_names: names of the class space, indexed by ``class_id``.
        mask: optional bool (N, H, W) instance masks at the image's size.
        data: extra per-detection arrays, each with first dimension N (e.g. ``"logits"``).
        image_size: ``(height, width)`` of the image the boxes refer to, if known.

    Raises:
        ValueError: on construction, if a field has the wrong shape or non-finite values,
            a ``class_id`` is out of range, or a box has ``x_max < x_min``.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: list[str] = field(default_factory=list)
    mask: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.xyxy = _as(self.xyxy, np.float32, "xyxy", (None, 4))
        n = len(self.xyxy)
        self.confidence = _as(self.confidence, np.float32, "confidence", (n,))
        self.class_id = _as(self.class_id, np.int64, "class_id", (n,))
        self.class_names = list(self.class_names)
        if n and (self.class_id.min() < 0 or (self.class_names and self.class_id.max() >= len(self.class_names))):
            raise ValueError(f"class_id out of range [0, {len(self.class_names)}): {self.class_id.tolist()}")
        if n and ((self.xyxy[:, 2] < self.xyxy[:, 0]).any() or (self.xyxy[:, 3] < self.xyxy[:, 1]).any()):
            raise ValueError("xyxy has boxes with x_max < x_min or y_max < y_min")
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim != 3 or m.shape[0] != n:
                raise ValueError(f"mask must have shape ({n}, H, W), got {m.shape}")
            self.mask = m.astype(bool, copy=False)
        for k, v in self.data.items():
            v = np.asarray(v)
            if v.shape[:1] != (n,):
                raise ValueError(f"data[{k!r}] must have first dimension {n}, got shape {v.shape}")
            self.data[k] = v

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls, class_names: list[str] | None = None, image_size: tuple[int, int] | None = None) -> "Detections":
        """No detections: ``xyxy`` (0, 4), ``confidence`` and ``class_id`` (0,)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   list(class_names or []), image_size=image_size)

    @property
    def labels(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[i] for i in self.class_id.tolist()]

    @property
    def area(self) -> np.ndarray:
        """float32 (N,) box areas in square pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def __getitem__(self, index) -> "Detections":
        """Select detections with an int, slice, index array or boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index], self.confidence[index], self.class_id[index], self.class_names,
            None if self.mask is None else self.mask[index],
            {k: v[index] for k, v in self.data.items()}, self.image_size,
        )

    def to_supervision(self):
        """Convert to ``supervision.Detections`` (requires the ``supervision`` package)."""
        import supervision as sv

        return sv.Detections(xyxy=self.xyxy, confidence=self.confidence, class_id=self.class_id,
                             mask=self.mask, data={"class_name": np.array(self.labels), **self.data})

    def label_map(self, background: int = -1) -> np.ndarray:
        """Semantic label map from the instance masks: each pixel takes the ``class_id`` of the most
        confident mask covering it.

        Args:
            background: value of pixels no mask covers.

        Returns:
            int32 (H, W) at the masks' size (the original image's pixels).

        Raises:
            ValueError: the detections have no masks.
        """
        if self.mask is None:
            raise ValueError("label_map needs instance masks (Detections.mask is None)")
        out = np.full(self.mask.shape[1:], background, np.int32)
        for i in np.argsort(self.confidence, kind="stable"):  # most confident painted last
            out[self.mask[i]] = self.class_id[i]
        return out

    def to_dict(self) -> dict:
        """JSON-ready dict (the ``detections`` schema documented in ``ovtools.io.writers``).

        With masks, every detection also has ``"segmentation"``: its mask as COCO RLE
        (``{"size": [H, W], "counts": str}``, pycocotools' compressed form) and ``"area"`` in pixels.
        """
        dets = [{"label": self.class_names[c], "class_id": int(c), "confidence": round(float(s), 6),
                 "xyxy": [round(float(v), 2) for v in box]}
                for box, s, c in zip(self.xyxy, self.confidence, self.class_id)]
        if self.mask is not None and len(dets):
            for d, rle in zip(dets, masks_to_rle(self.mask)):
                d["segmentation"] = rle
                d["area"] = int(rle.pop("area"))
        return {"image_size": list(self.image_size) if self.image_size else None, "detections": dets}


def masks_to_rle(masks: np.ndarray) -> list[dict]:
    """COCO RLE of bool masks (N, H, W) via pycocotools: ``[{"size": [H, W], "counts": str, "area": int}]``."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.asarray(masks, np.uint8).transpose(1, 2, 0)))
    areas = mask_utils.area(rles)
    return [{"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii"), "area": int(a)}
            for r, a in zip(rles, areas)]


@dataclass
class Classifications:
    """Zero-shot classification of one or more images.

    Three numbers per (image, label), as detections score boxes
    (:func:`~ovtools.heads.scoring.open_set_scores`):

    * ``probability``: softmax over the user's labels at temperature ``logit_scale``
      (CLIP §3.1.2) — which of *these* labels fits best; it sums to 1 over the labels, so a
      single label always has probability 1, whatever the image shows;
    * ``relevancy``: LERF relevancy of the label against its negatives ("object", "things",
      "stuff", "texture", the class space's own) — whether the image shows the label *at all*;
      below 0.5 when a negative describes the image better;
    * ``confidence = probability × relevancy`` in [0, 1]: the open-set score, the number
      reported first (the same score :class:`Detections` carry).  A single label on a blank
      image gets a low confidence, not 1.0.

    Attributes:
        class_id: int64 (B, k) top-k class ids per image, ranked by ``probability`` (CLIP
            zero-shot top-k, what ``ovtools eval`` top-1 measures), best first; ``-1`` marks
            "none of these".
        confidence: float32 (B, k) open-set confidence in [0, 1], aligned with ``class_id``.
        class_names: names of the class space.
        logits: optional float32 (B, C): ``logit_scale * cosine`` for every class.
        rejected: bool (B,): the top class did not beat its negatives ("none of these").
        probability: optional float32 (B, k) softmax probability over the labels, aligned with ``class_id``.
        relevancy: optional float32 (B, k) relevancy against the negatives in (0, 1], aligned with ``class_id``.

    Raises:
        ValueError: on construction, on mismatched shapes or out-of-range ids.
    """

    class_id: np.ndarray
    confidence: np.ndarray
    class_names: list[str] = field(default_factory=list)
    logits: np.ndarray | None = None
    rejected: np.ndarray | None = None
    probability: np.ndarray | None = None
    relevancy: np.ndarray | None = None

    def __post_init__(self) -> None:
        cid = np.asarray(self.class_id)
        if cid.ndim != 2:
            raise ValueError(f"class_id must have shape (B, k), got {cid.shape}")
        self.class_id = cid.astype(np.int64, copy=False)
        b, k = self.class_id.shape
        self.confidence = _as(self.confidence, np.float32, "confidence", (b, k))
        self.class_names = list(self.class_names)
        if self.class_id.size and (self.class_id.min() < -1 or self.class_id.max() >= max(len(self.class_names), 1)):
            raise ValueError(f"class_id out of range [-1, {len(self.class_names)})")
        if self.logits is not None:
            self.logits = _as(self.logits, np.float32, "logits", (b, len(self.class_names)))
        self.rejected = (np.zeros(b, bool) if self.rejected is None
                         else _as(self.rejected, bool, "rejected", (b,)))
        for name in ("confidence", "probability", "relevancy"):
            value = getattr(self, name)
            if value is None:
                continue
            value = _as(value, np.float32, name, (b, k))
            if value.size and (value.min() < 0 or value.max() > 1):
                raise ValueError(f"{name} must be in [0, 1], got values in [{value.min()}, {value.max()}]")
            setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.class_id)

    def top1(self) -> list[str | None]:
        """Best label per image, ``None`` where rejected."""
        return [None if r or c < 0 else self.class_names[c] for c, r in zip(self.class_id[:, 0], self.rejected)]

    def to_dict(self, index: int = 0) -> dict:
        """JSON-ready dict for image ``index``: ``{"rejected", "top_k": [{"label", "class_id", "confidence",
        "probability", "relevancy"}]}`` (the last two when known)."""
        top = []
        for j, c in enumerate(self.class_id[index]):
            entry = {"label": None if c < 0 else self.class_names[c], "class_id": int(c),
                     "confidence": round(float(self.confidence[index, j]), 6)}
            for name in ("probability", "relevancy"):
                value = getattr(self, name)
                if value is not None:
                    entry[name] = round(float(value[index, j]), 6)
            top.append(entry)
        return {"rejected": bool(self.rejected[index]), "top_k": top}


@dataclass
class PointLabels:
    """Open-vocabulary labels of the N points of a point cloud.

    Attributes:
        class_id: int64 (N,), index into ``class_names``; ``-1`` = "nothing" (no label beat
            the negatives, or the point was never seen in ``fusion`` mode).
        confidence: float32 (N,) in [0, 1], the confidence of the point's best label
            (also where ``class_id`` is -1).
        class_names: names of the class space.
        seen: optional bool (N,): the point was seen by at least one view.

    Raises:
        ValueError: on construction, for mismatched lengths or ids out of range.
    """

    class_id: np.ndarray
    confidence: np.ndarray
    class_names: list[str] = field(default_factory=list)
    seen: np.ndarray | None = None

    def __post_init__(self) -> None:
        cid = np.asarray(self.class_id)
        if cid.ndim != 1:
            raise ValueError(f"class_id must have shape (N,), got {cid.shape}")
        self.class_id = cid.astype(np.int64, copy=False)
        n = len(self.class_id)
        self.confidence = _as(self.confidence, np.float32, "confidence", (n,))
        self.class_names = list(self.class_names)
        if n and (self.class_id.min() < -1 or self.class_id.max() >= max(len(self.class_names), 1)):
            raise ValueError(f"class_id out of range [-1, {len(self.class_names)})")
        if self.seen is not None:
            self.seen = _as(self.seen, bool, "seen", (n,))

    def __len__(self) -> int:
        return len(self.class_id)

    @property
    def labels(self) -> list[str | None]:
        """Class name per point, ``None`` for "nothing"."""
        return [None if c < 0 else self.class_names[c] for c in self.class_id.tolist()]

    def counts(self) -> dict[str, int]:
        """Points per class name (classes with no point omitted) plus ``"nothing"``."""
        ids, n = np.unique(self.class_id, return_counts=True)
        return {("nothing" if i < 0 else self.class_names[i]): int(k) for i, k in zip(ids.tolist(), n.tolist())}
