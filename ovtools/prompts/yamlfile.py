"""Reading YAML config files with errors that name the file (and line)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ConfigError

# libyaml's parser when PyYAML was built with it: the same documents ~9x faster (0.01 vs 0.1 CPU s for the
# shipped presets and class spaces, part of every CLI call's start); errors are re-parsed by the pure-Python
# parser, whose messages and positions are the ones users see.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def looks_like_path(name_or_path: str | Path) -> bool:
    """A reference meant as a file (has a folder part or a YAML suffix) rather than a built-in name."""
    text = str(name_or_path)
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (".yaml", ".yml")


def missing_file_error(kind: str, name_or_path: str | Path) -> FileNotFoundError:
    """The error for a {kind} given as a path that does not exist."""
    return FileNotFoundError(f"{kind} file not found: {name_or_path}")


def read_yaml(path: str | Path):
    """Parse a YAML file.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: not valid YAML (message has the file, line and column).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason})") from None
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
