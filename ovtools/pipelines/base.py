"""`Pipeline`: load the encoder once, hold the current class embeddings, swap them safely.

The shared machinery of every pipeline, built from a head's
:class:`~ovtools.heads.registry.HeadSpec`:

* settings from a preset plus keyword overrides (:mod:`ovtools.pipelines.presets`),
  checked against :class:`~ovtools.pipelines.presets.CommonConfig` and the head's config;
* the head, built from its spec and config (:attr:`Pipeline.head`, :attr:`Pipeline.config`);
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

from ..config import config_defaults
from ..encoders import CLIPEncoder
from ..errors import ConfigError
from ..heads.registry import HeadSpec, head_spec
from ..io.images import LoadedImage, as_loaded
from ..prompts import ClassEmbeddings, ClassSpace, EmbeddingCache, build_class_embeddings, load_templates, parse_labels
from .presets import COMMON_KEYS, Settings, available_presets, resolve_settings

_MEMO_SIZE = 16


def default_preset_for(spec: HeadSpec) -> str | None:
    """The preset a pipeline of ``spec`` uses when none is named: the spec's, else ``<name>-default`` if shipped."""
    if spec.default_preset is not None:
        return spec.default_preset
    name = f"{spec.name}-default"
    return name if name in available_presets() else None


class Pipeline:
    """Base of every pipeline: a head (by registry name) with its encoder, settings and labels.

    Subclasses set :attr:`head_name`; :class:`~ovtools.pipelines.ClassifyPipeline`,
    :class:`~ovtools.pipelines.DetectPipeline`, :class:`~ovtools.pipelines.SegmentPipeline` and
    :class:`~ovtools.pipelines.Segment3DPipeline` are the built-ins, and
    :func:`~ovtools.pipelines.pipeline_class` gives one for any registered head.

    Args:
        preset: preset name (``pipelines/<name>.yaml``) or YAML path; ``None`` → built-in
            defaults only.  Default: the head's ``<name>-default`` preset where one is shipped.
        encoder: an existing encoder to use (shared between pipelines); then ``model``,
            ``pretrained``, ``device`` and ``precision`` are not used and must not be given.
        **overrides: any preset key: the fields of :class:`~ovtools.pipelines.presets.CommonConfig`
            (``labels="dog, cat"``, ``model="ViT-B-16"``, ``pretrained=None`` for random weights, ...)
            and of the head's config dataclass.

    Raises:
        TypeError: an unknown keyword argument.
        ValueError: ``encoder`` together with an explicit ``model``/``pretrained``/``device``/``precision``.
        ConfigError, UnknownNameError: invalid preset, class space or template set.
        WeightsUnavailableError: the encoder's weights cannot be found or downloaded.
    """

    #: Registry name of the head this pipeline runs.
    head_name: str = ""

    @classmethod
    def spec(cls) -> HeadSpec:
        """The :class:`~ovtools.heads.registry.HeadSpec` of this pipeline's head."""
        return head_spec(cls.head_name)

    @property
    def task(self) -> str:
        """The head's name (a preset's ``task`` key must equal it)."""
        return self.head_name

    def __init__(self, preset: str | Path | None = "__default__", *, encoder=None, **overrides: Any) -> None:
        spec = self.spec()
        if preset == "__default__":
            preset = default_preset_for(spec)
        self.settings: Settings = resolve_settings(spec.name, self._allowed_keys(), preset, overrides)
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
        """Every accepted setting with its built-in default: the common keys and the head's config fields."""
        return {**COMMON_KEYS, **config_defaults(cls.spec().config)}

    def _setup(self) -> None:
        """Build :attr:`config` and :attr:`head` from :attr:`settings` (subclasses may add state)."""
        spec = self.spec()
        self.config = self._build_config(spec.config, spec.name)
        self.head = spec.head(self.encoder, self.config)

    def _build_config(self, config_cls, what: str):
        """The head config from the settings; an invalid value is a ``ConfigError`` naming the preset file."""
        s = self.settings
        values = {k: s[k] for k in config_defaults(config_cls)}
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
            space = ClassSpace.from_labels(labels, known=self.known_space())
        elif isinstance(labels, Sequence):
            space = ClassSpace.from_names(parse_labels(list(labels)), known=self.known_space())
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

    def known_space(self) -> ClassSpace | None:
        """The ``classes`` setting's class space, whose classes plain labels inherit negatives and synonyms
        from (:meth:`ClassSpace.from_names`); ``None`` without one."""
        name = self.settings["classes"]
        if name is None:
            return None
        with self._lock:
            if getattr(self, "_known", (None, None))[0] != name:
                self._known = (name, ClassSpace.load(name))
            return self._known[1]

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

