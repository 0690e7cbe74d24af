"""Training data: image-caption rows, decoded once, served as seeded batches.

Sources:

* an image-caption CSV (``filepath,caption``, optional ``label`` and
  ``image_labels``; see :mod:`ovtools.datasets.readers`), or
* an ImageFolder tree: caption ``"a photo of a {folder name}"``, label = folder name.

Images are resized (shorter side, bicubic) and centre-cropped to the model's
input size — the same as :meth:`ovtools.encoders.CLIPEncoder.preprocess` — and,
when they fit in ``cache_bytes``, kept in memory as uint8.  Batch ``s`` is a
pure function of ``(seed, s)``: the row order of epoch ``e`` is a permutation
seeded by ``(seed, e)``, augmentation by ``(seed, s)``; so training resumed
at step ``s`` sees the same batches as an uninterrupted run.

Augmentation is mild and colour-free (colour is often the label): a random
resized crop keeping 90-100 % of the area, aspect 0.9-1.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..datasets.readers import read_caption_csv, read_image_folder
from ..io.images import load_image
from .loss import label_targets


@dataclass(frozen=True)
class CaptionTable:
    """Training rows.

    Attributes:
        source: the CSV or folder they came from.
        paths: image per row.
        captions: caption per row.
        labels: label each caption names (the caption itself when the data has none).
        image_labels: labels each image carries, primary first (``(label,)`` when the data has none).
        has_labels: whether the source gave labels (CSV ``label`` column, or an ImageFolder).
    """

    source: Path
    paths: list[Path]
    captions: list[str]
    labels: list[str]
    image_labels: list[tuple[str, ...]]
    has_labels: bool

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def captions_repeat(self) -> bool:
        """Whether some caption occurs in more than one row."""
        return len(set(self.captions)) < len(self.captions)


def load_table(source: str | Path) -> CaptionTable:
    """Rows from a caption CSV or an ImageFolder tree.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: unreadable CSV / empty folder (the message names ``source``).
    """
    source = Path(source)
    if source.is_dir():
        data = read_image_folder(source)
        names = [data.classes[i] for i in data.labels]
        return CaptionTable(source, data.paths, [f"a photo of a {n}" for n in names], names,
                            [(n,) for n in names], True)
    if not source.exists():
        raise FileNotFoundError(f"training data {source} does not exist (give a caption CSV or an ImageFolder)")
    data = read_caption_csv(source)
    labels = data.labels if data.labels is not None else list(data.captions)
    if data.image_labels is not None:
        image_labels = [il if lab in il else (*il, lab) for il, lab in zip(data.image_labels, labels)]
        image_labels = [il or (lab,) for il, lab in zip(image_labels, labels)]
    else:
        image_labels = [(lab,) for lab in labels]
    return CaptionTable(source, data.paths, data.captions, labels, image_labels,
                        data.labels is not None or data.image_labels is not None)


def _fit(path: Path, size: int) -> np.ndarray:
    """Decode, resize the shorter side to ``size`` (bicubic) and centre-crop → uint8 (size, size, 3)."""
    img = load_image(path).pixels
    h, w = img.shape[:2]
    if (h, w) != (size, size):
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        pil = Image.fromarray(img).resize((nw, nh), Image.Resampling.BICUBIC)
        top, left = (nh - size) // 2, (nw - size) // 2
        img = np.asarray(pil)[top : top + size, left : left + size]
    return img


class BatchSource:
    """Seeded batches of (normalised images, tokens, positive targets).

    Args:
        table: the rows.
        tokenizer: open_clip tokenizer (``list[str] -> LongTensor (T, L)``).
        image_size: model input side in pixels.
        mean, std: the model's normalisation (3 floats each).
        batch_size: rows per batch (at most ``len(table)``; the last partial batch of an epoch is dropped).
        seed: batch order and augmentation seed.
        augment: random resized crop (area ``min_scale``-1.0, aspect 0.9-1.1) when True.
        secondary_weight: weight of secondary labels in :func:`ovtools.train.loss.label_targets`.
        cache_bytes: keep decoded images in memory when they fit in this many bytes.
        min_scale: smallest area fraction kept by the random resized crop.

    Raises:
        ValueError: ``batch_size`` not in [2, len(table)].
    """

    def __init__(self, table: CaptionTable, tokenizer, image_size: int, mean, std, batch_size: int, seed: int = 0,
                 augment: bool = True, secondary_weight: float = 0.05, cache_bytes: int = 2 << 30,
                 min_scale: float = 0.9) -> None:
        if not 2 <= batch_size <= len(table):
            raise ValueError(f"batch_size must be in [2, {len(table)}] (rows in {table.source}), got {batch_size}")
        self.table, self.size, self.batch_size, self.seed = table, int(image_size), int(batch_size), int(seed)
        self.augment, self.secondary_weight, self.min_scale = augment, float(secondary_weight), float(min_scale)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        unique = sorted(set(table.captions))
        index = {c: i for i, c in enumerate(unique)}
        self.tokens = tokenizer(unique)
        self.caption_index = torch.tensor([index[c] for c in table.captions], dtype=torch.long)
        names = sorted({lab for il in table.image_labels for lab in il} | set(table.labels))
        lid = {n: i for i, n in enumerate(names)}
        self.label_names = names
        self.caption_labels = torch.tensor([lid[lab] for lab in table.labels], dtype=torch.long)
        k = max(len(il) for il in table.image_labels)
        self.image_labels = torch.full((len(table), k), -1, dtype=torch.long)
        for i, il in enumerate(table.image_labels):
            self.image_labels[i, : len(il)] = torch.tensor([lid[lab] for lab in il])
        self.batches_per_epoch = len(table) // self.batch_size
        self._perm_epoch, self._perm = -1, None
        self.images: torch.Tensor | None = None
        if len(table) * 3 * self.size * self.size <= cache_bytes:
            self.images = torch.from_numpy(np.stack([_fit(p, self.size) for p in table.paths])).permute(0, 3, 1, 2)

    def indices(self, step: int) -> torch.Tensor:
        """Row indices of batch ``step`` (int64 (B,))."""
        epoch, b = divmod(int(step), self.batches_per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.table), generator=g), epoch
        return self._perm[b * self.batch_size : (b + 1) * self.batch_size]

    def _pixels(self, idx: torch.Tensor) -> torch.Tensor:
        if self.images is not None:
            x = self.images[idx]
        else:
            x = torch.from_numpy(np.stack([_fit(self.table.paths[i], self.size) for i in idx.tolist()]))
            x = x.permute(0, 3, 1, 2)
        return x.float().div_(255.0)

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        area = self.min_scale + (1 - self.min_scale) * torch.rand(b, generator=g)
        ratio = torch.exp((torch.rand(b, generator=g) * 2 - 1) * np.log(1.1))
        sw, sh = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
        tx = (torch.rand(b, generator=g) * 2 - 1) * (1 - sw)
        ty = (torch.rand(b, generator=g) * 2 - 1) * (1 - sh)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, tx, sh, ty
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch ``step``.

        Returns:
            ``(images, tokens, targets)``: float32 (B, 3, S, S) normalised,
            int64 (B, L), float32 (B, B) positive weights
            (:func:`ovtools.train.loss.label_targets`).
        """
        idx = self.indices(step)
        x = self._pixels(idx)
        if self.augment:
            x = self._augment(x, torch.Generator().manual_seed(self.seed * 7_919 + int(step) + 1))
        x = (x - self.mean) / self.std
        targets = label_targets(self.caption_labels[idx], self.image_labels[idx], self.secondary_weight)
        return x, self.tokens[self.caption_index[idx]], targets
