"""`CLIPEncoder`: the one image/text encoder every head shares.

Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision" (ICML 2021): images and texts are embedded into one space; the
cosine similarity times ``logit_scale`` gives the logits used for zero-shot
classification (§3.1.2).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import open_clip
import torch
from open_clip.modified_resnet import ModifiedResNet
import torch.nn.functional as F

from .dense import dense_patch_features, supports_dense
from .loading import LoadedModel, load_clip

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
CONV_TOWERS = (ModifiedResNet,)  # image towers that run channels-last


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


class CLIPEncoder:
    """Shared open_clip encoder: images → (B, D), texts → (T, D), L2-normalised float32.

    Load once and pass the instance to every head/pipeline.  Forward passes run
    under ``torch.inference_mode`` and are safe to call from several threads.

    Args:
        model: open_clip architecture name or ``hf-hub:`` id (default ``ViT-B-32``).
        pretrained: open_clip tag, local checkpoint path, or ``None`` for random
            weights (default ``laion2b_s34b_b79k``).
        device: ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda:0"``, ...
        precision: ``"auto"`` (default: bf16 on CPUs with native bf16 matrix units and on
            GPUs that support it, fp16 on older CUDA GPUs, else fp32; see
            :func:`ovtools.encoders.loading.auto_precision`), ``"fp32"``, ``"fp16"``, ``"bf16"``
            (fall back to fp32 with a warning where the device cannot run them).  Weights are
            cast to that dtype; every output stays float32 and L2-normalised.

    Raises:
        UnknownNameError, FileNotFoundError, WeightsUnavailableError: see
            :func:`ovtools.encoders.loading.load_clip`.

    Example:
        >>> enc = CLIPEncoder("ViT-B-32", "laion2b_s34b_b79k")  # doctest: +SKIP
        >>> enc.encode_texts(["a photo of a dog"]).shape          # doctest: +SKIP
        torch.Size([1, 512])
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pretrained: str | None = DEFAULT_PRETRAINED,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
    ) -> None:
        self._init(load_clip(model, pretrained, device, precision), model, pretrained)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, name: str = "custom", pretrained: str | None = None) -> "CLIPEncoder":
        """Wrap an already built :class:`LoadedModel` (e.g. a model being trained)."""
        self = cls.__new__(cls)
        self._init(loaded, name, pretrained)
        return self

    def _init(self, loaded: LoadedModel, name: str, pretrained: str | None) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.model_id = loaded.model_id
        self.precision_note = loaded.precision_note
        self.name = name
        self.pretrained = pretrained
        visual = self.model.visual
        # ResNet towers run channels-last: oneDNN's convolutions on few channels are ~1.7x faster in
        # NHWC on the CPU (benchmarks/bench_encoder.py); ViT towers have one convolution and keep NCHW.
        self.channels_last = bool(CONV_TOWERS) and isinstance(visual, CONV_TOWERS)
        if self.channels_last:
            visual.to(memory_format=torch.channels_last)
        self.image_size: tuple[int, int] = _pair(getattr(visual, "image_size", 224))
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.context_length = int(getattr(self.model, "context_length", 77))
        out_dim = getattr(visual, "output_dim", None)  # open_clip towers project to the joint space
        if out_dim is None:  # other towers: one text forward pass tells
            with torch.no_grad():
                out_dim = self.model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1]
        self.embed_dim = int(out_dim)

    # ------------------------------------------------------------------ properties
    @property
    def logit_scale(self) -> float:
        """``exp(model.logit_scale)``: the temperature CLIP multiplies cosine similarities by (≈100 for OpenAI CLIP)."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100).item())

    @property
    def image_mean(self) -> tuple[float, float, float]:
        """Per-channel RGB mean the model's inputs are normalised with (pixels in [0, 1])."""
        return tuple(float(v) for v in self._mean.flatten())  # type: ignore[return-value]

    @property
    def image_std(self) -> tuple[float, float, float]:
        """Per-channel RGB standard deviation the model's inputs are normalised with (pixels in [0, 1])."""
        return tuple(float(v) for v in self._std.flatten())  # type: ignore[return-value]

    @property
    def patch_size(self) -> int:
        """Stride of the dense feature grid in pixels (ViT patch size, or 32 for ResNets)."""
        ps = getattr(self.model.visual, "patch_size", None)
        return _pair(ps)[0] if ps is not None else 32

    @property
    def supports_dense(self) -> bool:
        """Whether :meth:`dense_features` works for this image tower."""
        return supports_dense(self.model.visual)

    # ---------------------------------------------------------------- preprocessing
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float (B, 3, H, W) in [0, 1] → mean/std normalised, on the encoder's device and dtype."""
        x = x.to(self.device, torch.float32)
        x = (x - self._mean.to(x.device)) / self._std.to(x.device)
        return x.to(self.dtype)

    @staticmethod
    def to_float(image: np.ndarray) -> torch.Tensor:
        """RGB uint8 (H, W, 3) → float32 (1, 3, H, W) in [0, 1]."""
        a = np.ascontiguousarray(image)
        if not a.flags.writeable:  # torch warns on read-only arrays (e.g. np.asarray of a PIL image)
            a = a.copy()
        return torch.from_numpy(a).permute(2, 0, 1)[None].float().div_(255.0)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize (shortest side, bicubic, antialiased) and centre-crop to the model's input size.

        Matches open_clip's evaluation transform (``Resize`` + ``CenterCrop``) on tensors.

        Args:
            images: RGB uint8 arrays (H, W, 3).

        Returns:
            Normalised tensor (B, 3, S, S) on the encoder's device and dtype.
        """
        sh, sw = self.image_size
        out = []
        for img in images:
            x = self.to_float(img)
            h, w = x.shape[-2:]
            scale = max(sh / h, sw / w)
            nh, nw = max(sh, round(h * scale)), max(sw, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
            top, left = (nh - sh) // 2, (nw - sw) // 2
            out.append(x[..., top : top + sh, left : left + sw])
        return self.normalize(torch.cat(out))

    # -------------------------------------------------------------------- encoding
    def encode_pixels(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Encode a normalised batch (B, 3, S, S) → (B, D) L2-normalised float32 on the encoder's device."""
        feats = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], batch_size):
                f = self.model.encode_image(self._layout(x[i : i + batch_size].to(self.device, self.dtype)))
                feats.append(F.normalize(f.float(), dim=-1))
        if not feats:
            return torch.zeros(0, self.embed_dim, device=self.device)
        return torch.cat(feats)

    def encode_images(self, images: Sequence[np.ndarray] | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Embed images.

        Args:
            images: RGB uint8 arrays (H, W, 3) of any size, or an already
                normalised tensor (B, 3, S, S) (see :meth:`preprocess`).
            batch_size: images per forward pass.

        Returns:
            float32 tensor (B, D) on the CPU, each row L2-normalised.
        """
        if isinstance(images, torch.Tensor):
            return self.encode_pixels(images, batch_size).cpu()
        feats = [self.encode_pixels(self.preprocess(images[i : i + batch_size]), batch_size)
                 for i in range(0, len(images), batch_size)]
        return torch.cat(feats).cpu() if feats else torch.zeros(0, self.embed_dim)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Embed texts; texts longer than the context are truncated with a warning.

        Args:
            texts: strings.
            batch_size: texts per forward pass.

        Returns:
            float32 tensor (T, D) on the CPU, each row L2-normalised.
        """
        texts = list(texts)
        feats = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                chunk = texts[i : i + batch_size]
                tokens = self.tokenizer(chunk)
                full = tokens[:, -1] != 0  # the end token was forced into the last slot
                if bool(full.any()):
                    long = [t for t, f in zip(chunk, full.tolist()) if f]
                    warnings.warn(
                        f"{len(long)} text(s) reach the {tokens.shape[1]}-token context and were truncated, "
                        f"e.g. {long[0][:60]!r}",
                        UserWarning,
                        stacklevel=2,
                    )
                f = self.model.encode_text(tokens.to(self.device))
                feats.append(F.normalize(f.float(), dim=-1).cpu())
        return torch.cat(feats) if feats else torch.zeros(0, self.embed_dim)

    def dense_features(self, x: torch.Tensor) -> torch.Tensor:
        """MaskCLIP dense features (see :mod:`ovtools.encoders.dense`).

        Args:
            x: normalised tensor (B, 3, H, W); H, W multiples of :attr:`patch_size`.

        Returns:
            float32 tensor (B, h, w, D) on the encoder's device, L2-normalised along D.

        Raises:
            NotImplementedError: the image tower has no dense path.
            ValueError: H or W is not a multiple of the patch size.
        """
        ps = self.patch_size
        if x.shape[-1] % ps or x.shape[-2] % ps:
            raise ValueError(f"dense input {tuple(x.shape[-2:])} must be a multiple of the patch size {ps}")
        with torch.inference_mode():
            f = dense_patch_features(self.model.visual, self._layout(x.to(self.device, self.dtype)))
        return F.normalize(f.float(), dim=-1)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __repr__(self) -> str:
        return (f"CLIPEncoder(model={self.name!r}, pretrained={self.pretrained!r}, device={str(self.device)!r}, "
                f"dtype={self.dtype}, embed_dim={self.embed_dim}, image_size={self.image_size})")
