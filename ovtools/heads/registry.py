"""The head registry: every head declared once, as a :class:`HeadSpec`.

A spec names the head's config dataclass (its settings: preset keys, pipeline
keywords and command-line options are all derived from it), the head class and the
result structure it returns.  From a spec ovtools builds the pipeline
(:func:`ovtools.pipelines.pipeline_class`) and, for image heads, the
``ovtools <name>`` command — so adding a head touches no pipeline or CLI module::

    SPEC = register_head(HeadSpec("toy", ToyConfig, ToyHead, Detections, "Find toys in images."))

Another package registers a head through the entry-point group ``ovtools.heads``
(see :mod:`ovtools.registry`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..config import Config, configure
from ..registry import Registry


@dataclass(frozen=True)
class HeadSpec:
    """One head, declared once.

    Attributes:
        name: registry key, preset ``task`` and command name (``"detect"``).
        config: the head's :class:`~ovtools.config.Config` subclass.
        head: ``head(encoder, config)`` builds it; the head is called as ``head(input, class_embeddings)``.
        result: the result structure (:class:`~ovtools.structures.Classifications`,
            :class:`~ovtools.structures.Detections` or :class:`~ovtools.structures.PointLabels`); it decides the
            table, JSON records and pictures the CLI writes.
        summary: one line for ``ovtools --help``.
        inputs: ``"images"`` (one image per call: generic image pipeline and command) or ``"scene"``
            (a point cloud or RGB-D folder; the 3D pipeline).
        default_preset: preset used when none is named (``None``: ``<name>-default`` if shipped, else the
            built-in defaults).
        masks: results carry instance masks (COCO RLE in the outputs, ``--save-labels`` label maps, the
            Segment Anything options of the command line).
    """

    name: str
    config: type
    head: Callable[..., Any]
    result: type
    summary: str = ""
    inputs: Literal["images", "scene"] = "images"
    default_preset: str | None = None
    masks: bool = False


#: Names a head cannot take: the commands that are not heads.
RESERVED_NAMES = frozenset({"models", "train", "eval", "probe", "datagen", "export", "field"})
#: Option names of every command (inputs, outputs, shared options): a head's config fields must not reuse them.
RESERVED_FIELDS = frozenset({
    "images", "scene", "preset", "output", "save_vis", "vis_max_side", "recursive", "quiet", "coco_output",
    "save_labels", "sam_checkpoint", "sam_model", "query", "summary", "save_features", "engine", "ray_address",
    "concurrency", "num_gpus", "num_cpus", "ray_batch_size", "local_num_cpus", "resume", "progress", "task"})
_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")


def _check_spec(name: Any, spec: Any) -> None:
    """Refuse, at registration, a spec that would break the pipelines or every command later."""
    if not isinstance(spec, HeadSpec):
        raise TypeError(f"head {name!r}: expected a HeadSpec, got {type(spec).__name__}")
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED_NAMES:
        raise ValueError(f"head name {name!r}: must be lower-case letters, digits, '-' or '_' (starting with a "
                         f"letter) and not a command name {sorted(RESERVED_NAMES)}")
    if spec.name != name:
        raise ValueError(f"head spec {spec.name!r} registered under another name {name!r}")
    if not (isinstance(spec.config, type) and dataclasses.is_dataclass(spec.config)
            and issubclass(spec.config, Config)):
        raise TypeError(f"head {name!r}: config must be a dataclass class deriving from ovtools.config.Config")
    clash = sorted(RESERVED_FIELDS & {f.name for f in dataclasses.fields(spec.config)})
    if clash:
        raise ValueError(f"head {name!r}: config fields {clash} clash with command options; rename them")
    if not callable(spec.head):
        raise TypeError(f"head {name!r}: head must be a class or callable (encoder, config) -> head")
    if not isinstance(spec.result, type):
        raise TypeError(f"head {name!r}: result must be a result structure class (Detections, ...)")
    if spec.inputs not in ("images", "scene"):
        raise ValueError(f"head {name!r}: inputs must be 'images' or 'scene', got {spec.inputs!r}")


HEADS = Registry("head", group="ovtools.heads", check=_check_spec)


def register_head(spec: HeadSpec) -> HeadSpec:
    """Add a head to the registry and return its spec.

    Raises:
        ValueError: the name is taken.
        TypeError: not a :class:`HeadSpec`; a config that is not a :class:`~ovtools.config.Config` dataclass,
            a head that is not callable, a result that is not a class.
        ValueError: a name that is not lower-case letters/digits/``-``/``_`` or is a command's name; config
            fields named like command options (``output``, ``preset``, ...); ``inputs`` not images/scene.
    """
    if not isinstance(spec, HeadSpec):
        raise TypeError(f"register_head takes a HeadSpec, got {type(spec).__name__}")
    return HEADS.add(spec.name, spec)


def head_spec(name: str) -> HeadSpec:
    """The spec of a registered head (plug-ins included).

    Raises:
        UnknownNameError: not registered; the message lists the valid names.
    """
    return HEADS.get(name)


def available_heads() -> list[str]:
    """Sorted names of the registered heads (plug-ins included)."""
    return HEADS.names()


def create_head(name: str, encoder, config: Config | None = None, **overrides: Any):
    """Build a registered head.

    Args:
        name: registry key, e.g. ``"classify"`` or ``"detect"``.
        encoder: a :class:`~ovtools.encoders.CLIPEncoder`.
        config: the head's config (default: its defaults).
        **overrides: config fields replacing those of ``config``.

    Returns:
        The head instance.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the valid names.
        TypeError / ValueError: an invalid config field.
    """
    spec = head_spec(name)
    return spec.head(encoder, configure(spec.config, config, **overrides))
