"""Where the shipped data lives: class spaces, template sets, presets, model configs.

In a wheel, ``configs/`` and ``pipelines/`` are packaged as ``ovtools/_configs``
and ``ovtools/_presets``; in a source checkout (editable install) they are the
top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        "ovtools data folder not found; looked in: " + ", ".join(str(c) for c in candidates)
    )


def configs_dir() -> Path:
    """Folder holding ``templates/`` and ``classes/`` YAML files."""
    return _first_existing(_PKG / "_configs", _PKG.parent / "configs")


def presets_dir() -> Path:
    """Folder holding pipeline presets (``*.yaml``)."""
    return _first_existing(_PKG / "_presets", _PKG.parent / "pipelines")


def model_configs_dir() -> Path:
    """Folder of open_clip architecture JSON files shipped with ovtools."""
    return _PKG / "encoders" / "model_configs"


def checkpoints_dir() -> Path:
    """Folder of checkpoints shipped with ovtools (the evaluation-world model)."""
    return _PKG / "encoders" / "checkpoints"
