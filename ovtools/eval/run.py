"""``evaluate(pipeline, dataset)``: the one entry point for measuring a pipeline on labelled data.

The dataset decides the task, the pipeline must fit it:

=====================================================  ==========================  ==============================
dataset                                                pipeline                    metrics
=====================================================  ==========================  ==============================
ImageFolder tree or image-caption CSV                  ``ClassifyPipeline``        top-1, top-5, mean per-class
                                                                                   recall (:mod:`.classification`)
COCO instances JSON                                    ``DetectPipeline``          box AP, absent-label rejection
                                                       ``SegmentPipeline``         mask AP, semantic mIoU
                                                                                   (:mod:`.instances`)
3D world folder (``scenes3d.json``)                    ``Segment3DPipeline``       per-point mIoU per mode
                                                                                   (:mod:`.scenes3d`)
=====================================================  ==========================  ==============================

``ovtools eval`` is this function behind command-line options; scripts and the quality
report (:mod:`ovtools.eval.report`) call it directly::

    from ovtools.eval import evaluate
    from ovtools.pipelines import DetectPipeline
    metrics = evaluate(DetectPipeline("detect-shapes"), "scenes/annotations.json")
    metrics["AP50"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from ..datasets.coco import CocoData, read_coco
from ..datasets.readers import CaptionData, ImageFolderData
from .classification import OnError, Progress, evaluate_classification
from .data import LabelledImages, as_labelled, read_labelled_images
from .instances import evaluate_instances
from .scenes3d import Scenes3DData, evaluate_scenes3d, read_scenes3d

Dataset = Union[LabelledImages, CocoData, Scenes3DData]

_TASKS = {LabelledImages: ("classify",), CocoData: ("detect", "segment"), Scenes3DData: ("segment3d",)}


def is_scenes3d(path: str | Path) -> bool:
    """Whether ``path`` is a 3D world: a ``scenes3d.json`` manifest or a folder holding one."""
    p = Path(path)
    return p.name == "scenes3d.json" or (p / "scenes3d.json").is_file()


def read_dataset(path: str | Path, image_dir: str | Path | None = None) -> Dataset:
    """Read labelled data for :func:`evaluate`, by its layout.

    Args:
        path: a 3D world (``scenes3d.json`` or its folder), a COCO instances ``.json``, an ImageFolder
            tree or an image-caption ``.csv``.
        image_dir: COCO only: the folder ``file_name`` entries are relative to (default: the JSON's).

    Returns:
        :class:`~ovtools.eval.scenes3d.Scenes3DData`, :class:`~ovtools.datasets.coco.CocoData` or
        :class:`~ovtools.eval.data.LabelledImages`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: an unknown layout or malformed data (names the file and entry).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset {p} does not exist")
    if is_scenes3d(p):
        return read_scenes3d(p)
    if p.suffix.lower() == ".json":
        return read_coco(p, image_dir)
    return read_labelled_images(p)


def dataset_class_names(data: Dataset) -> list[str]:
    """The dataset's own class names (folder names, CSV labels, COCO category names with ``_`` read as a
    space, manifest classes), e.g. as labels when none are given."""
    if isinstance(data, CocoData):
        return [" ".join(c.replace("_", " ").split()) for c in data.categories]
    return list(data.class_names)


def dataset_files(data: Dataset) -> list[Path]:
    """The dataset's own files that outputs must not overwrite (annotation file, manifest, scenes; not images)."""
    if isinstance(data, Scenes3DData):
        return [data.source, *data.files]
    if isinstance(data, CocoData):
        return [data.annotation_file]
    return [data.source] if data.source is not None else []


def dataset_tasks(data: Dataset) -> tuple[str, ...]:
    """Pipeline tasks that can be evaluated on ``data`` (``("detect", "segment")`` for a COCO file)."""
    return _TASKS[type(data)]


def evaluate(pipeline, dataset: Dataset | str | Path, *, image_dir: str | Path | None = None, absent: bool = True,
             seed: int = 0, modes: tuple[str, ...] | None = None, progress: Progress | None = None,
             on_error: OnError | None = None, coco_output: str | Path | None = None) -> dict:
    """Measure ``pipeline`` on ``dataset`` with the metric of its task (module docs).

    Args:
        pipeline: a built pipeline (:mod:`ovtools.pipelines`) whose labels contain every class of the dataset
            (matched by name, case-insensitive).
        dataset: a path or a reader object: :func:`read_dataset`'s, or
            :class:`~ovtools.datasets.readers.ImageFolderData` / :class:`~ovtools.datasets.readers.CaptionData`.
        image_dir: COCO path only: folder of the images (default: the JSON's folder).
        absent: COCO: also query one absent category per image alone (``absent_label_rejection``).
        seed: COCO: seed for choosing absent categories.
        modes: 3D: modes to score (default: every mode the pipeline can run).
        progress: called with the number of items (images, scenes) just finished.
        on_error: called with each ``errors`` entry (an image that could not be read) as it happens.
        coco_output: COCO: also write the COCO results, with the file's own ids, to this JSON (and a
            ``.categories.json`` header beside it).

    Returns:
        ``{"dataset", "model", "pretrained", ["templates",] "classes", "task", ...metrics, ["errors"]}``:
        see :func:`~ovtools.eval.classification.evaluate_classification`,
        :func:`~ovtools.eval.instances.evaluate_instances`, :func:`~ovtools.eval.scenes3d.evaluate_scenes3d`.

    Raises:
        FileNotFoundError: nothing at a dataset path.
        ValueError: malformed data, dataset classes missing from the pipeline's class space, a pipeline whose
            task does not fit the dataset, or nothing could be read.
    """
    data = read_dataset(dataset, image_dir) if isinstance(dataset, (str, Path)) else dataset
    if isinstance(data, (ImageFolderData, CaptionData)):
        data = as_labelled(data)
    if type(data) not in _TASKS:
        raise TypeError("dataset must be a path or a reader object (ImageFolderData, CaptionData, LabelledImages, "
                        f"CocoData, Scenes3DData), got {type(data).__name__}")
    task = getattr(pipeline, "task", None)
    if task not in dataset_tasks(data):
        raise ValueError(f"a {type(data).__name__} dataset is evaluated with a {' or '.join(dataset_tasks(data))} "
                         f"pipeline, got {task!r}")
    head = {"dataset": str(data.annotation_file if isinstance(data, CocoData) else data.source),
            "model": pipeline.encoder.name, "pretrained": pipeline.encoder.pretrained}
    if isinstance(data, Scenes3DData):
        result = evaluate_scenes3d(pipeline, data, modes, progress=progress)
        return {**head, "classes": pipeline.class_space.name, **result}
    head.update({"templates": pipeline.embeddings.templates.name, "classes": pipeline.class_space.name})
    if isinstance(data, CocoData):
        result = evaluate_instances(pipeline, data, absent, seed, progress, on_error, coco_output)
    else:
        result = evaluate_classification(pipeline, data, progress, on_error)
    return {**head, **result}
