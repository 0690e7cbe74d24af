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


def _check_spec(name: str, spec: Any) -> None:
    if not isinstance(spec, HeadSpec):
        raise TypeError(f"head {name!r}: expected a HeadSpec, got {type(spec).__name__}")
    if spec.name != name:
        raise ValueError(f"head spec {spec.name!r} registered under another name {name!r}")
    if not (dataclasses.is_dataclass(spec.config) and issubclass(spec.config, Config)):
        raise TypeError(f"head {name!r}: config must be a dataclass deriving from ovtools.config.Config")


HEADS = Registry("head", group="ovtools.heads", check=_check_spec)


def register_head(spec: HeadSpec) -> HeadSpec:
    """Add a head to the registry and return its spec.

    Raises:
        ValueError: the name is taken.
        TypeError: not a :class:`HeadSpec`, or a config that is not a :class:`~ovtools.config.Config` dataclass.
    """
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
