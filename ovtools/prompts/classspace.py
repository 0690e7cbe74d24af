"""Class spaces: the labels a head scores against, with synonyms, prompts and negatives.

A class space comes from a YAML file (``configs/classes/*.yaml`` or a user's
file), from a comma-separated ``--labels`` string, or from a list of names::

    name: kitchen
    templates: objects              # optional default template set
    negatives: [object, texture]    # optional, apply to every class
    classes:
      - name: mug
        synonyms: [coffee cup]      # ensembled with the name
        prompts: ["a mug on a desk"]  # used verbatim, besides the templates
        negatives: [glass]          # a region is a mug only if it beats these
      - kettle                      # short form

Every head also scores against :data:`CANONICAL_NEGATIVES` ("object",
"things", "stuff", "texture"), the LERF canonical phrases (Kerr et al. 2023,
§3.4), so that a label is reported only when it beats generic phrases.
"""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError, UnknownNameError
from ..resources import configs_dir
from .yamlfile import looks_like_path, missing_file_error, read_yaml

CANONICAL_NEGATIVES: tuple[str, ...] = ("object", "things", "stuff", "texture")


@dataclass(frozen=True)
class ClassSpec:
    """One class: display name, synonyms, own prompts, negatives."""

    name: str
    synonyms: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassSpace:
    """An ordered set of classes; class ids are indices into :attr:`classes`."""

    name: str
    classes: tuple[ClassSpec, ...]
    negatives: tuple[str, ...] = ()
    templates: str | None = None
    description: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ConfigError(f"class space {self.name!r}{self._where()} has no classes")
        seen: dict[str, int] = {}
        for i, c in enumerate(self.classes):
            key = c.name.casefold()
            if key in seen:
                raise ConfigError(
                    f"class space {self.name!r}{self._where()}: classes[{i}] {c.name!r} repeats classes[{seen[key]}]"
                )
            seen[key] = i

    def _where(self) -> str:
        return f" ({self.source})" if self.source else ""

    @property
    def names(self) -> list[str]:
        """Class names in class-id order."""
        return [c.name for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def shared_negatives(self) -> set[str]:
        """Negatives that apply to every class: the canonical phrases and the space-level ones."""
        return {*CANONICAL_NEGATIVES, *self.negatives}

    def all_negatives(self) -> list[str]:
        """Every negative phrase used with this space: canonical, space-level, per-class (deduplicated, ordered).

        Phrases that are themselves class names are left out (they are scored as classes).
        """
        names = {n.casefold() for n in self.names}
        out: dict[str, None] = {}
        for phrase in (*CANONICAL_NEGATIVES, *self.negatives, *(n for c in self.classes for n in c.negatives)):
            if phrase.casefold() not in names:
                out.setdefault(phrase, None)
        return list(out)

    def fingerprint(self) -> str:
        """Hash of everything that changes the class/negative embeddings (not the display order of YAML keys)."""
        payload = json.dumps(
            {"classes": [asdict(c) for c in self.classes], "negatives": self.all_negatives()}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_names(cls, names: list[str], name: str = "labels", known: "ClassSpace | None" = None) -> "ClassSpace":
        """A space with one class per name.

        Args:
            names: class names, in class-id order.
            name: the space's name.
            known: a class space whose knowledge plain labels inherit (a preset's ``classes``): a name
                that is one of its classes or synonyms (case-insensitive) gets that class's synonyms,
                prompts and negatives (its look-alikes: "red circle" keeps being refused for
                "red star"), and then the space's own negatives apply too.  The template set is
                not inherited (labels keep the pipeline's, as before).  ``None``: plain classes
                (no synonyms, no extra negatives).
        """
        index: dict[str, ClassSpec] = {}
        for c in (known.classes if known is not None else ()):
            for key in (c.name, *c.synonyms):
                index.setdefault(key.casefold(), c)
        specs = []
        for n in names:
            spec = index.get(n.casefold())
            specs.append(ClassSpec(n) if spec is None else ClassSpec(n, spec.synonyms, spec.prompts, spec.negatives))
        if known is None or not any(n.casefold() in index for n in names):
            return cls(name=name, classes=tuple(specs))
        return cls(name=name, classes=tuple(specs), negatives=known.negatives)

    @classmethod
    def from_labels(cls, labels: str, known: "ClassSpace | None" = None) -> "ClassSpace":
        """Parse a ``--labels`` string (see :func:`parse_labels`); ``known`` as in :meth:`from_names`."""
        return cls.from_names(parse_labels(labels), known=known)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ClassSpace":
        """Load a class-space YAML file.

        Raises:
            FileNotFoundError: no such file.
            ConfigError: malformed; the message names the file and the key.
        """
        path = Path(path)
        data = read_yaml(path)
        return _space_from_mapping(data, path)

    @classmethod
    def load(cls, name_or_path: str | Path) -> "ClassSpace":
        """A built-in space by name (``coco``, ``imagenet``, ...) or a YAML path.

        Raises:
            UnknownNameError: neither a file nor a built-in (lists the built-ins).
            ConfigError: malformed file.
        """
        path = Path(name_or_path)
        if path.is_file():
            return cls.from_yaml(path)
        if looks_like_path(name_or_path):
            raise missing_file_error("class space", name_or_path)
        builtin = configs_dir() / "classes" / f"{name_or_path}.yaml"
        if builtin.is_file():
            return cls.from_yaml(builtin)
        raise UnknownNameError(
            f"unknown class space {str(name_or_path)!r}; built-in spaces: {available_class_spaces()}, "
            "or give a path to a YAML file"
        )


def available_class_spaces() -> list[str]:
    """Names of the built-in class spaces."""
    return sorted(p.stem for p in (configs_dir() / "classes").glob("*.yaml"))


def _str_list(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of strings, got {type(value).__name__}")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, (str, int, float)) or isinstance(v, bool) or not str(v).strip():
            raise ConfigError(f"{where}[{i}]: expected a non-empty string, got {v!r}")
        out.append(str(v).strip())
    return tuple(out)


_CLASS_KEYS = {"name", "synonyms", "prompts", "negatives"}
_SPACE_KEYS = {"name", "description", "templates", "negatives", "classes"}


def _space_from_mapping(data, path: Path) -> ClassSpace:
    if isinstance(data, list):
        data = {"classes": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with key 'classes', got {type(data).__name__}")
    unknown = set(data) - _SPACE_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SPACE_KEYS)}")
    if "classes" not in data:
        raise ConfigError(f"{path}: missing key 'classes'")
    if not isinstance(data["classes"], list) or not data["classes"]:
        raise ConfigError(f"{path}: key 'classes' must be a non-empty list")
    classes = []
    for i, item in enumerate(data["classes"]):
        where = f"{path}: classes[{i}]"
        if isinstance(item, (str, int, float)) and not isinstance(item, bool):
            if not str(item).strip():
                raise ConfigError(f"{where}: empty class name")
            classes.append(ClassSpec(str(item).strip()))
            continue
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a name or a mapping, got {type(item).__name__}")
        unknown = set(item) - _CLASS_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_CLASS_KEYS)}")
        name = item.get("name")
        if not isinstance(name, (str, int, float)) or isinstance(name, bool) or not str(name).strip():
            raise ConfigError(f"{where}.name: expected a non-empty string, got {name!r}")
        classes.append(ClassSpec(
            name=str(name).strip(),
            synonyms=_str_list(item.get("synonyms"), f"{where}.synonyms"),
            prompts=_str_list(item.get("prompts"), f"{where}.prompts"),
            negatives=_str_list(item.get("negatives"), f"{where}.negatives"),
        ))
    templates = data.get("templates")
    if templates is not None and not isinstance(templates, str):
        raise ConfigError(f"{path}: key 'templates' must be the name or path of a template set")
    return ClassSpace(
        name=str(data.get("name", path.stem)),
        classes=tuple(classes),
        negatives=_str_list(data.get("negatives"), f"{path}: negatives"),
        templates=templates,
        description=str(data.get("description", "")),
        source=str(path),
    )


def parse_labels(labels: str | list[str]) -> list[str]:
    """Split a ``--labels`` string into labels.

    Commas separate labels; a label in double quotes is kept whole (``'"salt, pepper", bowl'``
    gives ``["salt, pepper", "bowl"]``); whitespace is trimmed; case-insensitive duplicates
    are merged (first spelling kept) with a ``UserWarning``.

    Raises:
        ValueError: an empty label (``"dog,,cat"``) or no label at all.
    """
    if isinstance(labels, str):
        try:
            rows = list(csv.reader([labels], skipinitialspace=True, strict=True))
        except csv.Error as e:
            raise ValueError(f"labels {labels!r}: {e}") from None
        parts = rows[0] if rows else []
    else:
        parts = list(labels)
        bad = [p for p in parts if not isinstance(p, str)]
        if bad:
            raise TypeError(f"labels must be strings, got {bad[:5]!r}")
    out: list[str] = []
    seen: dict[str, str] = {}
    for i, part in enumerate(parts):
        label = " ".join(str(part).split())
        if not label:
            raise ValueError(f"labels {labels!r}: label {i + 1} is empty")
        key = label.casefold()
        if key in seen:
            warnings.warn(f"label {label!r} repeats {seen[key]!r} (case-insensitive); merged", UserWarning, stacklevel=2)
            continue
        seen[key] = label
        out.append(label)
    if not out:
        raise ValueError("no labels given")
    return out
