"""3D semantic-segmentation evaluation on a folder of labelled point clouds (the 3D world's layout).

A dataset is a manifest ``scenes3d.json`` (written by ``ovtools datagen --kind scenes3d``)
listing ``class_names`` and ``scenes[].file``: PLY files whose vertices carry the
ground-truth ``class_id`` (an index into ``class_names``; negative = unlabelled,
ignored).  Every scene is fused once; each mode (fusion, distill, ensemble) is then
labelled from the same features and scored with one
:class:`~ovtools.eval.segmentation.ConfusionMatrix` per mode (point counts, not
pixels), so the modes are compared on identical views.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import name_key
from .segmentation import ConfusionMatrix


def read_manifest(path: str | Path) -> tuple[Path, dict]:
    """``(folder, manifest)`` of a ``scenes3d.json`` file or the folder holding it.

    Raises:
        FileNotFoundError: no manifest.
        ValueError: not JSON, ``class_names`` not a list of unique strings, ``scenes`` empty or
            malformed, or a listed file missing (the message names the manifest).
    """
    p = Path(path)
    f = p / "scenes3d.json" if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{path}: no scenes3d.json manifest (write one with `ovtools datagen --kind scenes3d`)")
    try:
        d = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{f}: not a JSON manifest ({e})") from None
    if not isinstance(d, dict) or "class_names" not in d or "scenes" not in d:
        raise ValueError(f"{f}: a scenes3d manifest needs 'class_names' and 'scenes'")
    names = d["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"{f}: 'class_names' must be a non-empty list of non-empty strings")
    if len({n.casefold() for n in names}) != len(names):
        raise ValueError(f"{f}: 'class_names' has duplicates")
    scenes = d["scenes"]
    if not isinstance(scenes, list) or not scenes:
        raise ValueError(f"{f}: 'scenes' must be a non-empty list of {{\"file\": ...}} entries")
    for i, s in enumerate(scenes):
        if not isinstance(s, dict) or not isinstance(s.get("file"), str):
            raise ValueError(f"{f}: scenes[{i}] must be a mapping with a 'file' string")
        if not (f.parent / s["file"]).is_file():
            raise ValueError(f"{f}: scene file {s['file']} is missing")
    return f.parent, d


@dataclass(frozen=True)
class Scenes3DData:
    """A 3D world folder: its manifest and the scene files it lists.

    Attributes:
        source: the path given (folder or ``scenes3d.json``).
        folder: the folder holding the manifest.
        manifest: the parsed ``scenes3d.json`` (checked by :func:`read_manifest`).
    """

    source: Path
    folder: Path
    manifest: dict

    @property
    def class_names(self) -> list[str]:
        """The manifest's ``class_names`` (ground-truth ``class_id`` indexes them)."""
        return list(self.manifest["class_names"])

    @property
    def files(self) -> list[Path]:
        """The manifest and every scene file (inputs an output must not overwrite)."""
        return [self.folder / "scenes3d.json", *(self.folder / s["file"] for s in self.manifest["scenes"])]

    def __len__(self) -> int:
        return len(self.manifest["scenes"])


def read_scenes3d(path: str | Path) -> Scenes3DData:
    """:class:`Scenes3DData` of a ``scenes3d.json`` file or the folder holding it.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_manifest`.
    """
    folder, man = read_manifest(path)
    return Scenes3DData(Path(path), folder, man)


def ground_truth(scene, path: Path, n_classes: int) -> np.ndarray:
    """int64 (N,) ground-truth class ids of a scene's PLY (checked: integers in [-1, n_classes)).

    Args:
        scene: anything with ``fields`` (a :class:`~ovtools.io.ply.PointCloud` or Scene3DInput).
        path: the file, for messages.
        n_classes: number of manifest classes.

    Raises:
        ValueError: no integer ``class_id`` property, or an id out of range.
    """
    if "class_id" not in scene.fields:
        raise ValueError(f"{path}: the PLY has no per-point 'class_id' property")
    gt = np.asarray(scene.fields["class_id"])
    if not np.issubdtype(gt.dtype, np.integer):
        raise ValueError(f"{path}: 'class_id' must be an integer property, got {gt.dtype}")
    if gt.size and gt.max() >= n_classes:
        raise ValueError(f"{path}: class_id {int(gt.max())} is out of range for {n_classes} manifest classes")
    return gt.astype(np.int64)


def class_mapping(dataset_names: list[str], space_names: list[str], space: str, source) -> np.ndarray:
    """int64 (len(dataset_names),): the class-space id of each dataset class, matched by name (:func:`name_key`).

    Raises:
        ValueError: a dataset class missing from the space (the message names ``source`` and ``space``).
    """
    names = [name_key(n) for n in space_names]
    missing = [c for c in dataset_names if name_key(c) not in names]
    if missing:
        raise ValueError(f"classes of {source} not in the class space {space!r}: {missing[:10]}")
    return np.array([names.index(name_key(c)) for c in dataset_names], np.int64)


def evaluate_scenes3d(pipe, path: str | Path | Scenes3DData,
                      modes: tuple[str, ...] | None = ("fusion", "distill", "ensemble"), limit: int | None = None,
                      progress: Callable[[int], None] | None = None) -> dict:
    """3D mIoU of a :class:`~ovtools.pipelines.Segment3DPipeline` per mode.

    Args:
        pipe: the pipeline (its labels must contain every class of the manifest, by name).
        path: manifest, folder, or :class:`Scenes3DData`.
        modes: modes to score (each needs distillation except ``"fusion"``); ``None``: every mode the
            pipeline can run (only ``"fusion"`` when ``distill_steps`` is 0).
        limit: evaluate only the first ``limit`` scenes.
        progress: called with 1 after each scene.

    Returns:
        ``{"task": "segmentation3d", "n_scenes", "modes": {mode: {"mIoU", "per_class_IoU",
        "point_accuracy", ...}}, "seconds_per_scene", "seen_fraction"}``.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_manifest`.
        ValueError: a manifest class missing from the pipeline's labels, or a scene without a valid
            integer ``class_id`` property.
    """
    data = path if isinstance(path, Scenes3DData) else read_scenes3d(path)
    folder, man, path = data.folder, data.manifest, data.source
    if modes is None:
        modes = ("fusion", "distill", "ensemble") if pipe.config.distill_steps > 0 else ("fusion",)
    to_space = class_mapping(man["class_names"], pipe.labels, pipe.class_space.name, path)
    scenes = man["scenes"][:limit] if limit else man["scenes"]
    cms = {m: ConfusionMatrix(len(pipe.labels)) for m in modes}
    seen, t0 = [], time.perf_counter()
    for s in scenes:
        scene = pipe.scene(folder / s["file"])
        gt = ground_truth(scene, folder / s["file"], len(man["class_names"]))
        keep = gt >= 0
        gt_space = np.where(keep, to_space[np.clip(gt, 0, None)], -1)
        sf = pipe.features(scene)
        seen.append(float((sf.count > 0).float().mean()))
        for m in modes:
            pred = pipe(sf, mode=m).class_id
            cms[m].update(gt_space[keep], pred[keep])
        if progress is not None:
            progress(1)
    out = {"task": "segmentation3d", "n_scenes": len(scenes), "modes": {}}
    for m, cm in cms.items():
        r = cm.metrics(pipe.labels)
        out["modes"][m] = {"mIoU": r["mIoU"], "point_accuracy": r["pixel_accuracy"],
                           "classes_in_gt": r["classes_in_gt"], "per_class_IoU": r["per_class_IoU"]}
    out["seen_fraction"] = round(float(np.mean(seen)), 6) if seen else None
    out["seconds_per_scene"] = round((time.perf_counter() - t0) / max(len(scenes), 1), 3)
    return out
