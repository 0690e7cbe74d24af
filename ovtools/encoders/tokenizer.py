"""open_clip's own BPE tokenizer, built when first called.

Building ``open_clip.SimpleTokenizer`` reads and parses its 1.3 MB BPE vocabulary (0.1 CPU s), and a
CLI call whose class embeddings come from the disk cache (:mod:`ovtools.prompts.cache`) never
tokenizes; :func:`~ovtools.encoders.load_clip` hands out this wrapper for models with open_clip's
built-in tokenizer (Hugging Face tokenizers, which may need the network, are built at load time).
"""

from __future__ import annotations

import threading

import open_clip
import torch


class DeferredTokenizer:
    """``open_clip.get_tokenizer(model)``, built on the first call; then the same callable.

    Args:
        model: registered open_clip architecture name.

    Example:
        >>> tok = DeferredTokenizer("ViT-B-32")   # nothing parsed yet
        >>> tok(["a photo of a dog"]).shape      # builds the tokenizer once
        torch.Size([1, 77])
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._built = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self):
        """The open_clip tokenizer (built now if it was not yet)."""
        if self._built is None:
            with self._lock:
                if self._built is None:
                    self._built = open_clip.get_tokenizer(self.model)
        return self._built

    def __call__(self, texts, *args, **kwargs) -> torch.Tensor:
        """Token ids (T, context_length) int64, as the open_clip tokenizer returns them."""
        return self.tokenizer(texts, *args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):  # pickling, copying: never build for those
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def __getstate__(self) -> dict:
        return {"model": self.model, "_built": self._built}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
