"""Pipeline presets: YAML files in ``pipelines/`` naming encoder, class space and head settings.

A preset is a flat mapping; every key is documented in the shipped files
(``pipelines/detect-default.yaml`` is the reference).  Keys common to every
pipeline are the fields of :class:`CommonConfig`; each pipeline adds its head's config fields (a
detection preset accepts every field of
:class:`~ovtools.heads.detect.DetectConfig`).  An unknown key is a
:class:`~ovtools.errors.ConfigError` naming the file and the key, so a typo
never silently falls back to a default.

Settings are resolved in this order, later wins: the pipeline's built-in
defaults, the preset file, keyword arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..config import Config, config_defaults, setting
from ..encoders.loading import Precision
from ..errors import ConfigError, UnknownNameError
from ..prompts.yamlfile import looks_like_path, missing_file_error, read_yaml
from ..resources import presets_dir


@dataclass(frozen=True)
class CommonConfig(Config):
    """Settings every pipeline accepts (preset keys, pipeline keywords and the commands' shared options).

    A head's config may declare a field of the same name with its own default (``max_side``
    for detect and segment, ``batch_size`` for classify); that declaration wins.

    Raises:
        TypeError / ValueError: on construction, for a value of the wrong type or out of range.
    """

    task: str | None = setting(None, "The pipeline this preset is for; must match the pipeline.", cli=False)
    model: str = setting(
        "ViT-B-32", "open_clip architecture (e.g. ViT-B-32) or hf-hub:org/repo id; `ovtools models` lists them.",
        short="-m")
    pretrained: str | None = setting(
        "laion2b_s34b_b79k", "Pretrained tag (e.g. laion2b_s34b_b79k), path to a local .safetensors/.pt "
        "checkpoint, or 'none' for random weights.")
    device: str = setting("auto", "auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.")
    precision: Precision = setting(
        "auto", "Weights' precision. auto: bf16 on CPUs with native bf16 units (AMX / AVX-512 BF16) and on "
        "bf16-capable GPUs, fp16 on older CUDA GPUs, else fp32; fp16/bf16 fall back to fp32 with a warning where "
        "the device cannot run them.")
    classes: str | None = setting(
        None, "A built-in class space (coco, imagenet, scannet20, shapes, shapes3d, ...; `ovtools models "
        "--classes` lists them) or a class-space YAML file. Excludes --labels.", short="-c")
    labels: Any = setting(
        None, "Comma-separated labels in plain language, e.g. \"zebra, goat, grass plain\"; quote a label that "
        "contains a comma: '\"salt, pepper\", bowl'. Excludes --classes.", short="-l")
    templates: str | None = setting(
        None, "Prompt template set: built-in name (`ovtools models --templates`) or YAML file; null = the class "
        "space's own, else openai_imagenet.", short="-t")
    max_side: int | None = setting(
        None, "Decode images at most this many pixels on the longer side (faster, bounded memory); results stay "
        "in original-image pixels.", minimum=16)
    batch_size: int = setting(32, "Images (or crops) per encoder forward pass.", minimum=1, short="-b")
    cache_dir: str | PathLike | None = setting(
        None, "Folder of the text-embedding cache; null = $OVTOOLS_CACHE_DIR or ~/.cache/ovtools/text.")
    use_cache: bool = setting(True, "Read and write the text-embedding cache (--no-cache: recompute).")


#: Keys every pipeline accepts, with their built-in defaults (the fields of :class:`CommonConfig`).
COMMON_KEYS: dict[str, Any] = config_defaults(CommonConfig)

_RANDOM_WEIGHTS = {"none", "random", "null", ""}


def normalize_pretrained(value: str | None) -> str | None:
    """``None`` or the strings ``"none"``/``"random"`` (any case) → ``None`` (random weights); else unchanged."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _RANDOM_WEIGHTS):
        return None
    return str(value)


def available_presets() -> list[str]:
    """Names of the shipped presets (file stems in :func:`ovtools.resources.presets_dir`)."""
    try:
        return sorted(p.stem for p in presets_dir().glob("*.yaml"))
    except FileNotFoundError:
        return []


def preset_path(name_or_path: str | Path) -> Path:
    """Resolve a preset name (``"detect-default"``) or a YAML path to a file.

    Raises:
        FileNotFoundError: a path (with a folder part or .yaml suffix) that does not exist.
        UnknownNameError: neither an existing file nor a shipped preset (lists the shipped ones).
    """
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    if looks_like_path(name_or_path):
        raise missing_file_error("pipeline preset", name_or_path)
    if p.suffix not in (".yaml", ".yml") and "/" not in str(name_or_path):
        try:
            candidate = presets_dir() / f"{name_or_path}.yaml"
        except FileNotFoundError:
            candidate = None
        if candidate is not None and candidate.is_file():
            return candidate
    raise UnknownNameError(
        f"unknown pipeline preset {str(name_or_path)!r}; shipped presets: {available_presets()}, "
        "or give a path to a YAML file"
    )


@dataclass(frozen=True)
class Settings:
    """Resolved pipeline settings.

    Attributes:
        values: every key of the pipeline with its value (read-only mapping).
        source: the preset file used, or ``None``.
        explicit: keys given as keyword arguments (they beat the preset).
    """

    values: Mapping[str, Any]
    source: Path | None
    explicit: frozenset[str]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Value of ``key`` or ``default``."""
        return self.values.get(key, default)


def read_preset(path: Path, allowed: Mapping[str, Any], task: str) -> dict[str, Any]:
    """Read and check a preset file.

    Args:
        path: the YAML file.
        allowed: accepted keys (with defaults).
        task: the pipeline's task; the file's ``task`` key, if present, must equal it.

    Returns:
        The file's mapping (only keys that appear in it).

    Raises:
        ConfigError: not a mapping, an unknown key (named, with the allowed keys), or a
            ``task`` for another pipeline.
    """
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of keys to values, got {type(data).__name__}")
    if "task" in data and data["task"] != task:  # checked first: a detect preset given to classify
        raise ConfigError(f"{path}: this preset is for the {data['task']!r} pipeline, not {task!r} "
                          f"(its key 'task' is {data['task']!r})")
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown key {key!r}; allowed keys: {sorted(allowed)}")
    return dict(data)


def resolve_settings(task: str, allowed: Mapping[str, Any], preset: str | Path | None,
                     overrides: Mapping[str, Any]) -> Settings:
    """Merge built-in defaults, a preset file and keyword overrides.

    Args:
        task: ``"detect"`` or ``"classify"``.
        allowed: every accepted key with its built-in default.
        preset: preset name or path, or ``None`` for built-in defaults only.
        overrides: keyword arguments; a key present here wins even when its value is ``None``.

    Returns:
        :class:`Settings`.  ``pretrained`` is normalised (``"none"`` → ``None``).

    Raises:
        TypeError: an unknown keyword argument (named, with the allowed keys).
        UnknownNameError: unknown preset name.
        ConfigError: invalid preset file.
    """
    for key in overrides:
        if key not in allowed:
            raise TypeError(f"unknown {task} pipeline option {key!r}; allowed: {sorted(allowed)}")
    values = dict(allowed)
    values["task"] = task
    source = None
    if preset is not None:
        source = preset_path(preset)
        values.update(read_preset(source, allowed, task))
    values.update(overrides)
    values["pretrained"] = normalize_pretrained(values["pretrained"])
    where = f"{source}: " if source is not None else ""
    if values["labels"] is not None and "labels" in overrides and "classes" not in overrides:
        values["classes"] = None  # labels given in code replace the preset's class space
    common = {f.name: values[f.name] for f in dataclasses.fields(CommonConfig)
              if f.name not in allowed or allowed[f.name] == COMMON_KEYS[f.name]}
    try:
        CommonConfig(**common)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}invalid setting: {e}") from None
    return Settings(MappingProxyType(values), source, frozenset(overrides))
