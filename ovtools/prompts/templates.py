"""Prompt template sets (``configs/templates/*.yaml``).

A template set is a list of format strings with one ``{}`` for the class name,
e.g. ``"a photo of a {}."``.  The built-ins are ``openai_imagenet`` (the 80
templates of the CLIP paper, §3.1.4, from open_clip), ``single`` (one
template) and ``objects`` (wording for object crops).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, UnknownNameError
from ..resources import configs_dir
from .yamlfile import looks_like_path, missing_file_error, read_yaml

DEFAULT_TEMPLATES = "openai_imagenet"


@dataclass(frozen=True)
class TemplateSet:
    """A named list of prompt templates, each with exactly one ``{}``."""

    name: str
    templates: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.templates:
            raise ConfigError(f"template set {self.name!r} is empty")
        for i, t in enumerate(self.templates):
            if not isinstance(t, str) or t.count("{}") != 1:
                raise ConfigError(f"template set {self.name!r}: templates[{i}] = {t!r} must contain exactly one '{{}}'")

    def format(self, label: str) -> list[str]:
        """All prompts for one label."""
        return [t.replace("{}", label) for t in self.templates]

    def __len__(self) -> int:
        return len(self.templates)


def available_template_sets() -> list[str]:
    """Names of the built-in template sets."""
    return sorted(p.stem for p in (configs_dir() / "templates").glob("*.yaml"))


def load_templates(name_or_path: str | Path | TemplateSet | None = None) -> TemplateSet:
    """Load a built-in template set by name, or a YAML file with a ``templates:`` list.

    Raises:
        UnknownNameError: not a built-in name nor an existing file (lists the built-ins).
        ConfigError: the file is malformed (names the file and key).
    """
    if isinstance(name_or_path, TemplateSet):
        return name_or_path
    name_or_path = name_or_path or DEFAULT_TEMPLATES
    path = Path(name_or_path)
    if not path.is_file():
        if looks_like_path(name_or_path):
            raise missing_file_error("template set", name_or_path)
        builtin = configs_dir() / "templates" / f"{name_or_path}.yaml"
        if not builtin.is_file():
            raise UnknownNameError(
                f"unknown template set {str(name_or_path)!r}; built-in sets: {available_template_sets()}, "
                "or give a path to a YAML file with a 'templates:' list"
            )
        path = builtin
    data = read_yaml(path)
    if isinstance(data, list):
        data = {"templates": data}
    if not isinstance(data, dict) or "templates" not in data:
        raise ConfigError(f"{path}: expected a mapping with key 'templates' (a list of strings)")
    items = data["templates"]
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise ConfigError(f"{path}: key 'templates' must be a list of strings")
    try:
        return TemplateSet(name=str(data.get("name", path.stem)), templates=tuple(items))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
