"""`Pipeline`: load the encoder once, hold the current class embeddings, swap them safely.

The shared machinery of every pipeline (:class:`~ovtools.pipelines.ClassifyPipeline`,
:class:`~ovtools.pipelines.DetectPipeline`, :class:`~ovtools.pipelines.SegmentPipeline`,
:class:`~ovtools.pipelines.Segment3DPipeline`):

* settings from a preset plus keyword overrides (:mod:`ovtools.pipelines.presets`);
* one :class:`~ovtools.encoders.CLIPEncoder`, built here or passed in with
  ``encoder=`` so that several pipelines share one model;
* :meth:`Pipeline.set_labels` changes the classes without reloading the
  model.  Embeddings come from an in-memory memo, then from the on-disk
  :class:`~ovtools.prompts.EmbeddingCache`, and only then from the text
  encoder.

Threads: a call reads the current :class:`~ovtools.prompts.ClassEmbeddings`
reference once and uses it to the end, and :meth:`set_labels` replaces that
reference in one assignment after the new embeddings are complete, so a call
running while the labels change sees either the old or the new classes, never
a mix.  A lock serialises :meth:`set_labels` and guards the memo.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..encoders import CLIPEncoder
from ..errors import ConfigError
from ..io.images import LoadedImage, as_loaded
from ..prompts import ClassEmbeddings, ClassSpace, EmbeddingCache, build_class_embeddings, load_templates, parse_labels
from .presets import COMMON_KEYS, Settings, resolve_settings

_MEMO_SIZE = 16


def config_defaults(config_cls) -> dict[str, Any]:
    """Every field of a head's config dataclass with its default (``None`` where it has none)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
        else:
            out[f.name] = None
    return out


class Pipeline:
    """Base class; use :class:`~ovtools.pipelines.ClassifyPipeline` or :class:`~ovtools.pipelines.DetectPipeline`.

    Args:
        preset: preset name (``pipelines/<name>.yaml``) or YAML path; ``None`` → built-in
            defaults only.  Subclasses default to their ``*-default`` preset.
        encoder: an existing encoder to use (shared between pipelines); then ``model``,
            ``pretrained``, ``device`` and ``precision`` are not used and must not be given.
        **overrides: any preset key (see the preset files), e.g. ``labels="dog, cat"``,
            ``model="ViT-B-16"``, ``pretrained=None`` (random weights).

    Raises:
        TypeError: an unknown keyword argument.
        ValueError: ``encoder`` together with an explicit ``model``/``pretrained``/``device``/``precision``.
        ConfigError, UnknownNameError: invalid preset, class space or template set.
        WeightsUnavailableError: the encoder's weights cannot be found or downloaded.
    """

    task: str = ""
    default_preset: str | None = None

    def __init__(self, preset: str | Path | None = "__default__", *, encoder=None, **overrides: Any) -> None:
        if preset == "__default__":
            preset = self.default_preset
        self.settings: Settings = resolve_settings(self.task, self._allowed_keys(), preset, overrides)
        s = self.settings
        if encoder is None:
            encoder = CLIPEncoder(s["model"], s["pretrained"], device=s["device"], precision=s["precision"])
        else:
            clash = sorted({"model", "pretrained", "device", "precision"} & set(overrides))
            if clash:
                raise ValueError(f"pass either encoder= or {', '.join(clash)}=, not both")
        self.encoder = encoder
        self.cache = EmbeddingCache(s["cache_dir"], enabled=bool(s["use_cache"]))
        self._lock = threading.RLock()
        self._memo: OrderedDict[tuple, ClassEmbeddings] = OrderedDict()
        self._emb: ClassEmbeddings | None = None
        self._setup()
        if s["labels"] is not None:
            self.set_labels(s["labels"])
        elif s["classes"] is not None:
            self.set_labels(ClassSpace.load(s["classes"]))

    # ------------------------------------------------------------------ subclass hooks
    @classmethod
    def _allowed_keys(cls) -> Mapping[str, Any]:
        """Every accepted setting with its built-in default (subclasses extend)."""
        return dict(COMMON_KEYS)

    def _setup(self) -> None:
        """Build heads from :attr:`settings` (subclasses)."""

    def _build_config(self, config_cls, what: str):
        """The head config from the settings; an invalid value is a ``ConfigError`` naming the preset file."""
        s = self.settings
        values = {k: s[k] for k in config_defaults(config_cls)}
        for k, v in values.items():  # YAML gives lists where the config wants tuples
            if isinstance(v, list):
                values[k] = tuple(v)
        try:
            return config_cls(**values)
        except (TypeError, ValueError) as e:
            given = sorted(set(s.explicit) & set(values))
            parts = ([str(s.source)] if s.source is not None else []) + (
                [f"the options {', '.join(given)}"] if given else [])
            where = f"{' with '.join(parts)}: " if parts else ""
            raise ConfigError(f"{where}invalid {what} setting: {e}") from None

    # ------------------------------------------------------------------------- labels
    @property
    def embeddings(self) -> ClassEmbeddings:
        """The current class embeddings.

        Raises:
            RuntimeError: no labels were set yet.
        """
        emb = self._emb
        if emb is None:
            raise RuntimeError(f"{type(self).__name__} has no labels yet: call set_labels(...) or pass labels=")
        return emb

    @property
    def class_space(self) -> ClassSpace:
        """The current :class:`~ovtools.prompts.ClassSpace` (raises ``RuntimeError`` before any labels)."""
        return self.embeddings.space

    @property
    def labels(self) -> list[str]:
        """Current class names in class-id order (empty before any labels)."""
        emb = self._emb
        return [] if emb is None else emb.names

    def embed(self, labels: str | Sequence[str] | ClassSpace, templates: str | None = None) -> ClassEmbeddings:
        """Class embeddings for ``labels`` (memoised, then the disk cache), without changing the pipeline's labels.

        Args:
            labels: a comma-separated string (``"man in red shirt, dog"``, see
                :func:`~ovtools.prompts.parse_labels`), a list of names, or a
                :class:`~ovtools.prompts.ClassSpace` (e.g. ``ClassSpace.load("coco")``).
            templates: template set for these labels; ``None`` → the pipeline's
                ``templates`` setting, else the class space's own, else ``openai_imagenet``.

        Returns:
            :class:`~ovtools.prompts.ClassEmbeddings`.

        Raises:
            ValueError: empty labels.
            TypeError: ``labels`` of another type.
            ConfigError, UnknownNameError: invalid template set.
        """
        if isinstance(labels, ClassSpace):
            space = labels
        elif isinstance(labels, str):
            space = ClassSpace.from_labels(labels)
        elif isinstance(labels, Sequence):
            space = ClassSpace.from_names(parse_labels(list(labels)))
        else:
            raise TypeError(f"labels must be a string, a list of strings or a ClassSpace, got {type(labels).__name__}")
        tname = templates if templates is not None else self.settings["templates"]
        tset = load_templates(tname if tname is not None else space.templates)
        key = (space.fingerprint(), tset.templates)
        with self._lock:
            emb = self._memo.get(key)
            if emb is None:
                emb = build_class_embeddings(self.encoder, space, tset, self.cache)
                self._memo[key] = emb
                while len(self._memo) > _MEMO_SIZE:
                    self._memo.popitem(last=False)
            else:
                self._memo.move_to_end(key)
                if emb.space != space:  # same classes under another name: reuse the tensors
                    emb = dataclasses.replace(emb, space=space)
        return emb

    def set_labels(self, labels: str | Sequence[str] | ClassSpace, templates: str | None = None) -> ClassEmbeddings:
        """Change the classes without reloading the model (arguments as :meth:`embed`).

        Returns:
            The new :class:`~ovtools.prompts.ClassEmbeddings` (also used by every later call).

        Raises:
            ValueError, TypeError, ConfigError, UnknownNameError: as :meth:`embed`.
        """
        emb = self.embed(labels, templates)
        self._emb = emb  # one reference assignment: atomic for concurrent readers
        return emb

    # -------------------------------------------------------------------------- input
    def load(self, image) -> LoadedImage:
        """Decode an input for this pipeline.

        Args:
            image: RGB uint8 (H, W, 3) array, a path, a PIL image or a :class:`LoadedImage`.

        Returns:
            :class:`LoadedImage`, downscaled to the ``max_side`` setting (sizes stay in original pixels).

        Raises:
            ImageLoadError: a path that cannot be decoded (named in the message).
            TypeError, ValueError: an unsupported object or array.
        """
        return as_loaded(image, self.settings["max_side"])

    def __repr__(self) -> str:
        src = self.settings.source.name if self.settings.source else None
        return (f"{type(self).__name__}(preset={src!r}, encoder={getattr(self.encoder, 'name', '?')!r}, "
                f"labels={self.labels[:5]}{'...' if len(self.labels) > 5 else ''})")

