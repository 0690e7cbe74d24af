"""Open-set scoring shared by every head: labels *and* negatives.

A softmax over the user's labels always sums to one, so one label always
"wins", even on a region that shows none of them.  Every head therefore scores
a feature against the C labels and the K negative phrases of its
:class:`~ovtools.prompts.ClassEmbeddings` (the class space's own negatives plus
the canonical "object", "things", "stuff", "texture") and reports label ``c``
only when it beats every negative that applies to ``c``
(``negative_mask[c]``).

With ``l_c = logit_scale * cos(f, t_c)`` (CLIP §3.1.2) and ``n_k`` the same for
negative ``k``:

* ``class_probs[c] = softmax_c(l)`` over the labels only (CLIP zero-shot);
* ``joint_probs = softmax`` over labels ∪ negatives (C + K columns);
* ``relevancy[c] = min_{k applicable} exp(l_c) / (exp(l_c) + exp(n_k))``
  = ``sigmoid(l_c - max_k n_k)``: LERF's relevancy score (Kerr et al., "LERF:
  Language Embedded Radiance Fields", ICCV 2023, §3.4), the pairwise softmax
  of the label against each canonical phrase, minimised over phrases.  LERF
  uses a fixed temperature of 10; here the model's ``logit_scale`` is used;
* ``beats_negatives[c] = l_c > max_k n_k``  (equivalently ``relevancy > 0.5``);
* ``confidence[c] = class_probs[c] * relevancy[c]``: the probability that the
  feature shows ``c`` rather than another label, times the probability that it
  shows ``c`` rather than the strongest applicable negative.  It is in [0, 1],
  is below 0.5 whenever ``c`` does not beat its negatives, and is what
  detections and classifications report as score;
* ``reportable = beats_negatives & (confidence >= threshold)``: what a head may
  output.  A label absent from the image loses either to another label (low
  ``class_probs``) or to the negatives (low ``relevancy``) and is not reported.

A class with no applicable negative has ``relevancy = 1`` and always beats them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import nms

from ..geometry import dedup_masks


@dataclass(frozen=True)
class OpenSetScores:
    """Scores of N features against C labels and K negatives (all float32 / bool tensors on the CPU).

    Attributes:
        logits: (N, C) ``logit_scale * cos`` to each label.
        negative_logits: (N, K) ``logit_scale * cos`` to each negative phrase.
        class_probs: (N, C) softmax over the labels only (rows sum to 1; C = 0 → (N, 0)).
        joint_probs: (N, C + K) softmax over labels then negatives (rows sum to 1).
        relevancy: (N, C) LERF relevancy in (0, 1], see the module docs.
        beats_negatives: bool (N, C): label logit > every applicable negative's logit.
        confidence: (N, C) ``class_probs * relevancy`` in [0, 1].
    """

    logits: torch.Tensor
    negative_logits: torch.Tensor
    class_probs: torch.Tensor
    joint_probs: torch.Tensor
    relevancy: torch.Tensor
    beats_negatives: torch.Tensor
    confidence: torch.Tensor

    def reportable(self, threshold: float = 0.0) -> torch.Tensor:
        """bool (N, C): ``beats_negatives & (confidence >= threshold)``.

        Args:
            threshold: smallest ``confidence`` in [0, 1] a label may be reported with.
        """
        return self.beats_negatives & (self.confidence >= threshold)

    def best(self, threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Each feature's label: ``(class_id int64 (N,), confidence float32 (N,))``.

        ``class_id`` is the label of highest ``confidence``, or -1 where that label is not
        :meth:`reportable` (it loses to a negative, or its confidence is below ``threshold``);
        ``confidence`` is that label's, also where ``class_id`` is -1.  C = 0 → all -1, confidence 0.
        """
        n, c = self.confidence.shape
        if c == 0:
            return torch.full((n,), -1, dtype=torch.long), torch.zeros(n)
        conf, best = self.confidence.max(dim=1)
        ok = self.reportable(threshold).gather(1, best[:, None])[:, 0]
        return torch.where(ok, best, torch.full_like(best, -1)), conf.float()


def _check(features: torch.Tensor, emb) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor (N, D), got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(features.shape)}")
    cls = emb.classes.detach().float().cpu()
    neg = emb.negatives.detach().float().cpu()
    c, k = cls.shape[0], neg.shape[0]
    d = features.shape[1]
    if (c and cls.shape[1] != d) or (k and neg.shape[1] != d):
        raise ValueError(f"feature dim {d} does not match class embeddings {tuple(cls.shape)} "
                         f"/ negatives {tuple(neg.shape)}; were they built with the same encoder?")
    mask = emb.negative_mask.detach().cpu().bool()
    if tuple(mask.shape) != (c, k):
        raise ValueError(f"negative_mask must have shape ({c}, {k}), got {tuple(mask.shape)}")
    return features.detach().float().cpu(), cls.reshape(c, d), neg.reshape(k, d), mask


def open_set_scores(features: torch.Tensor, emb, logit_scale: float) -> OpenSetScores:
    """Score L2-normalised features against labels and negatives.

    Args:
        features: float (N, D) L2-normalised image/region features (any device).
        emb: :class:`~ovtools.prompts.ClassEmbeddings` (or any object with ``classes`` (C, D),
            ``negatives`` (K, D) and bool ``negative_mask`` (C, K)); C and K may be 0.
        logit_scale: temperature multiplying cosine similarities (``CLIPEncoder.logit_scale``,
            ≈ 100 for OpenAI CLIP); must be > 0.

    Returns:
        :class:`OpenSetScores` on the CPU.

    Raises:
        TypeError: ``features`` is not a tensor.
        ValueError: shapes disagree (feature dim vs embedding dim, mask shape) or ``logit_scale <= 0``.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> e = SimpleNamespace(classes=torch.eye(3)[:2], negatives=torch.eye(3)[2:],
        ...                     negative_mask=torch.ones(2, 1, dtype=torch.bool))
        >>> s = open_set_scores(torch.eye(3), e, logit_scale=100.0)
        >>> s.beats_negatives.tolist()
        [[True, False], [False, True], [False, False]]
    """
    if not logit_scale > 0:
        raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
    f, cls, neg, mask = _check(features, emb)
    n = f.shape[0]
    logits = logit_scale * f @ cls.T  # (N, C)
    neg_logits = logit_scale * f @ neg.T  # (N, K)
    class_probs = logits.softmax(-1) if cls.shape[0] else logits
    joint = torch.cat([logits, neg_logits], dim=1)
    joint_probs = joint.softmax(-1) if joint.shape[1] else joint
    strongest = torch.full_like(logits, float("-inf"))  # (N, C), -inf where no negative applies
    if neg.shape[0] and cls.shape[0]:
        # Classes sharing a negative set share its max: one (N,) max per distinct mask row instead of an
        # (N, C, K) masked tensor (that tensor dominated labelling a million 3D points).
        rows, group = torch.unique(mask, dim=0, return_inverse=True)
        per_row = torch.full((n, rows.shape[0]), float("-inf"))
        for u in range(rows.shape[0]):
            if bool(rows[u].any()):
                per_row[:, u] = neg_logits[:, rows[u]].max(dim=1).values
        strongest = per_row[:, group]
    relevancy = torch.sigmoid(logits - strongest)  # min_k pairwise softmax = sigmoid(l_c - max_k n_k)
    beats = logits > strongest
    return OpenSetScores(logits, neg_logits, class_probs, joint_probs, relevancy, beats, class_probs * relevancy)


def cascade_candidates(features: torch.Tensor, emb, logit_scale: float, k: int,
                       boxes: torch.Tensor | None = None, nms_iou: float | None = None,
                       masks: torch.Tensor | None = None) -> torch.Tensor:
    """The ``k`` regions a cheap first pass ranks most likely to show one of the labels.

    The first stage of cascade scoring (a dense MaskCLIP pass ranks every proposal, crop
    scoring re-scores only the best ``k``; the two-stage "propose cheaply, verify with the
    expensive classifier" pattern of cascade detectors, Viola & Jones CVPR 2001): a region's
    rank is its best label logit (``logit_scale * cos``).  On the evaluation world the best
    logit ranked better than the best ``confidence`` or relevancy (AP50 0.846 vs 0.826 vs
    0.80 after re-scoring the best 40 of ~180 proposals; benchmarks/bench_quality.py).

    With ``boxes`` and ``nms_iou``, the ``k`` are picked for diversity first: the survivors of
    greedy NMS at ``nms_iou`` on the first-stage ranks (one box per group of overlapping boxes),
    in rank order, then the other regions in rank order.  Near-duplicates of a well-ranked object
    otherwise fill the budget while objects the dense pass ranks lower are never re-scored: on 40
    held-out evaluation-world scenes (ranking at 512 px), AP50 0.816 vs 0.767 at ``k = 30`` and
    0.830 vs 0.820 at ``k = 40`` (crop scoring of every proposal: 0.836;
    ``benchmarks/tune_cascade.py``).

    Args:
        features: float (N, D) L2-normalised first-pass features.
        emb: :class:`~ovtools.prompts.ClassEmbeddings` (C >= 1 labels).
        logit_scale: temperature multiplying cosine similarities (> 0).
        k: how many regions to keep (>= 1).
        boxes: optional float (N, 4) xyxy boxes of the regions (any pixel frame), for ``nms_iou``.
        nms_iou: IoU in (0, 1] of the diversity step; ``None`` (or neither ``boxes`` nor ``masks``):
            rank order only.
        masks: optional bool (N, H, W) masks of the regions: the diversity step compares masks
            (IoU on a coarse grid, :func:`~ovtools.geometry.dedup_masks`) instead of boxes.

    Returns:
        int64 (min(k, N),) indices into ``features``, in increasing order.

    Raises:
        ValueError: ``k < 1``, ``boxes`` not (N, 4), ``masks`` not (N, H, W), or the shapes disagree (see
            :func:`open_set_scores`).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = features.shape[0]
    if boxes is not None and tuple(boxes.shape) != (n, 4):
        raise ValueError(f"boxes must have shape ({n}, 4) like the {n} features, got {tuple(boxes.shape)}")
    if masks is not None and (masks.ndim != 3 or masks.shape[0] != n):
        raise ValueError(f"masks must have shape ({n}, H, W) like the {n} features, got {tuple(masks.shape)}")
    if n <= k:
        return torch.arange(n)
    rank = open_set_scores(features, emb, logit_scale).logits.max(dim=1).values
    if nms_iou is None or (boxes is None and masks is None):
        return rank.topk(k).indices.sort().values
    if masks is not None:  # survivors of greedy mask de-duplication in rank order
        order = rank.argsort(descending=True, stable=True)
        first = order[dedup_masks(masks.cpu()[order], nms_iou)]
    else:
        first = nms(boxes.float().cpu(), rank, nms_iou)  # survivors, by decreasing rank
    if len(first) >= k:
        return first[:k].sort().values
    picked = torch.zeros(n, dtype=torch.bool)
    picked[first] = True
    rest = rank.masked_fill(picked, float("-inf")).topk(k - len(first)).indices
    return torch.cat([first, rest]).sort().values
