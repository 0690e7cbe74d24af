"""On-disk cache of text embeddings.

One file per (model weights, template set, class space) key, stored as
safetensors under ``$OVTOOLS_CACHE_DIR`` (default ``~/.cache/ovtools/text``).
Writes go to a unique temporary file in the same folder followed by
``os.replace``, which is atomic on POSIX and Windows: concurrent writers each
publish a complete file and readers never see a partial one.  A file that
fails to load (truncated by a crash, foreign) is ignored with a warning and
recomputed.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io.writers import OutputPathError, atomic_output


def default_cache_dir() -> Path:
    """``$OVTOOLS_CACHE_DIR`` or ``~/.cache/ovtools/text``."""
    env = os.environ.get("OVTOOLS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ovtools" / "text"


def cache_key(*parts: str) -> str:
    """Stable hex key from strings."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:32]


class EmbeddingCache:
    """Maps a key to a dict of tensors, persisted as safetensors files.

    Args:
        root: folder for the cache files; ``None`` → :func:`default_cache_dir`.
        enabled: ``False`` turns every lookup into a miss and every store into a no-op.
    """

    def __init__(self, root: str | Path | None = None, enabled: bool = True) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.enabled = enabled

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        """The stored tensors, or ``None`` on a miss or an unreadable file."""
        if not self.enabled:
            return None
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return load_file(str(p))
        except Exception as e:  # corrupt/truncated file: recompute rather than fail
            warnings.warn(f"ignoring unreadable embedding cache file {p}: {e}", UserWarning, stacklevel=2)
            return None

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store atomically; failures to write (read-only disk) only warn."""
        if not self.enabled:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.path(key)) as tmp:
                save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        except (OSError, OutputPathError) as e:
            warnings.warn(f"could not write embedding cache under {self.root}: {e}", UserWarning, stacklevel=2)
