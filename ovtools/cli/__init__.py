"""Command-line interface: ``ovtools <command> --help``.

Each command lives in its own module and registers itself on
:data:`ovtools.cli.app.app`; importing this package imports them all.
Exit codes: 0 success, 1 some item failed (batch runs carry on), 2 usage error.
"""

from __future__ import annotations

import importlib
import os
import warnings

# OpenMP threads sleep at a barrier instead of spinning (read when torch loads its OpenMP runtime, so before any
# torch import; a value the user set wins).  Measured on the project's shared 2-core machine, 2 threads: the shipped
# model's 180-crop scoring 0.2-0.3 s wall instead of 0.5-0.8 s, ViT-B-32 bf16 batch 32 3.1 s instead of 3.6-3.8 s
# (benchmarks/bench_coldstart.py, README "Benchmarks").
if not os.environ.get("OMP_WAIT_POLICY", "").strip():  # unset or empty (libgomp rejects an empty value)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

# timm 0.6.7 (the version nerfstudio 1.1.5 pins; open_clip imports it) scripts modules at import, which recent
# torch answers with a FutureWarning before every command's output; nothing a user of the CLI can act on.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

from ..deferred_imports import defer_optional_towers  # noqa: E402

# open_clip without timm / transformers (and the wandb timm pulls in): 1.6 of the ~2.1 CPU s that open_clip's
# import costs; load_clip gives them back to models that need them (ovtools.deferred_imports).
defer_optional_towers()

from .app import app  # noqa: E402  (after the filter: the command modules import open_clip)

_COMMAND_MODULES = ["models", "images", "segment3d", "train", "evaluate", "probe", "datagen", "export", "field"]
for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:  # a command module not written yet
        if _e.name != f"{__name__}.{_name}":
            raise


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the terminal as one line, without the source location of library code."""
    return f"Warning: {message}\n"


def main() -> None:
    """Console-script entry point."""
    warnings.formatwarning = _format_warning
    app()


__all__ = ["app", "main"]
