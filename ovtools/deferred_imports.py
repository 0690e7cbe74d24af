"""Import open_clip without the packages only its optional towers need (the CLI's cold start).

open_clip (2.x and 3.x) imports ``timm`` and ``transformers`` when it is imported, each inside
``try: ... except ImportError`` at the top of one module, and uses them only for timm image towers
(``open_clip.timm_model``: ``TimmModel``), Hugging Face text towers (``open_clip.hf_model``:
``HFTextEncoder``) and CoCa caption generation (``open_clip.coca_model``).  Those imports cost
more than open_clip itself: on this project's machine, 1 torch thread, timm 0.35 CPU s (timm 0.6.7
and 1.x import ``wandb`` when it is installed: 1.1 s more) and transformers 0.3 s, while
``ovtools detect`` on an open_clip-native model needs neither.

:func:`defer_optional_towers` imports open_clip with those two packages hidden (``sys.modules[name]
= None`` for the duration of that one import, so open_clip takes its own "not installed" branch),
then unhides them: any later ``import timm`` works as usual.  :func:`enable_optional_towers`
re-runs the optional-import block of each open_clip module that took the "not installed" branch
(``importlib.reload``, keeping the module's own classes, which ``open_clip.model`` holds), so that
open_clip ends in the same state as after a plain import.  :func:`~ovtools.encoders.load_clip`
calls it before building a model whose config names a timm or Hugging Face tower (or any
``hf-hub:`` model, whose config is only known after download).

Only the CLI defers (``ovtools.cli`` calls :func:`defer_optional_towers` before importing its
commands): a Python program that imports ovtools gets open_clip's plain import, so its own direct
``open_clip.create_model`` calls are never affected.  Pure standard library: importing this module
imports neither torch nor open_clip.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

#: Packages open_clip imports only for optional towers, and the open_clip modules that import them.
OPTIONAL_TOWER_PACKAGES: dict[str, tuple[str, ...]] = {
    "timm": ("open_clip.timm_model",),
    "transformers": ("open_clip.hf_model", "open_clip.coca_model"),
}
_deferred: set[str] = set()


def defer_optional_towers() -> set[str]:
    """Import open_clip without ``timm`` / ``transformers`` (see the module docstring).

    A no-op (returns an empty set) when open_clip is already imported; a package already imported,
    or not installed, is not hidden.

    Returns:
        The packages deferred by this call.
    """
    if "open_clip" in sys.modules:
        return set()
    hidden = {name for name in OPTIONAL_TOWER_PACKAGES
              if name not in sys.modules and importlib.util.find_spec(name) is not None}
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ModuleNotFoundError (an ImportError) meanwhile
    try:
        importlib.import_module("open_clip")
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    _deferred.update(hidden)
    return hidden


def deferred_packages() -> frozenset[str]:
    """The packages open_clip was imported without and that are not enabled yet."""
    return frozenset(_deferred)


def enable_optional_towers(packages: tuple[str, ...] | None = None) -> list[str]:
    """Give open_clip the deferred packages back, as a plain ``import open_clip`` would have.

    Args:
        packages: names from :data:`OPTIONAL_TOWER_PACKAGES`; ``None``: all deferred ones.

    Returns:
        The open_clip modules whose optional imports were re-run (empty when nothing was deferred).
    """
    names = sorted(_deferred if packages is None else set(packages) & _deferred)
    rerun = []
    for name in names:
        for module_name in OPTIONAL_TOWER_PACKAGES[name]:
            module = sys.modules.get(module_name)
            if module is not None:
                _rerun_module_imports(module)
                rerun.append(module_name)
        _deferred.discard(name)
    return rerun


def optional_towers_needed(model: str, config: dict | None) -> tuple[str, ...]:
    """The packages open_clip needs to build ``model`` beyond its own code (``"timm"``, ``"transformers"``).

    Args:
        model: open_clip architecture name or ``hf-hub:`` id.
        config: its registered architecture config (``open_clip.get_model_config(model)``), or ``None``.

    Returns:
        ``"timm"`` for a timm image tower (``vision_cfg.timm_model_name``), ``"transformers"`` for a Hugging
        Face text tower or tokenizer (``text_cfg.hf_model_name`` / ``hf_tokenizer_name``) or CoCa
        (``multimodal_cfg``); both for ``hf-hub:`` ids and unknown names (the config is only known after the
        download, or open_clip's own error is to come).
    """
    if model.startswith("hf-hub:") or config is None:
        return ("timm", "transformers")
    text = config.get("text_cfg", {})
    needed = ["timm"] if "timm_model_name" in config.get("vision_cfg", {}) else []
    if "hf_model_name" in text or "hf_tokenizer_name" in text or "multimodal_cfg" in config:
        needed.append("transformers")
    return tuple(needed)


def _rerun_module_imports(module) -> None:
    """Re-execute ``module`` in place, keeping the classes it defines (other modules hold them)."""
    before = dict(vars(module))
    importlib.reload(module)
    for attr, old in before.items():
        new = getattr(module, attr, None)
        if (isinstance(old, type) and isinstance(new, type) and old.__module__ == module.__name__
                and new.__module__ == module.__name__ and old.__qualname__ == new.__qualname__):
            setattr(module, attr, old)
