"""Resolve a model spec (open_clip name + tag, ``hf-hub:`` id, local file) to a model.

Three ways to name weights, all through open_clip:

* ``model="ViT-B-32", pretrained="laion2b_s34b_b79k"`` — an open_clip name and
  pretrained tag (``ovtools models`` lists them); downloaded once to the
  Hugging Face cache.
* ``model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"`` — a hub repository.
* ``model="ViT-B-32", pretrained="/path/weights.safetensors"`` (or ``.pt``/``.bin``)
  — a local checkpoint for that architecture; no network at all.

``pretrained=None`` builds the architecture with random weights (tests,
benchmarks).  Architectures shipped by ovtools (``model_configs/*.json``) are
registered with ``open_clip.add_model_config`` on import; those named by
``$OVTOOLS_MODEL_CONFIGS`` (an ``os.pathsep``-separated list of folders or JSON
files, open_clip's architecture format) before every model is built, so the
Python API and the CLI accept the same ``model`` names.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlparse

import huggingface_hub.constants as hf_constants
import open_clip
import torch
from safetensors.torch import load_file

from ..deferred_imports import deferred_packages, enable_optional_towers, optional_towers_needed
from ..errors import ConfigError, MissingDependencyError, UnknownNameError, WeightsUnavailableError
from ..resources import checkpoints_dir, model_configs_dir
from .tokenizer import DeferredTokenizer

open_clip.add_model_config(model_configs_dir())

MODEL_CONFIGS_ENV = "OVTOOLS_MODEL_CONFIGS"
_REGISTERED: set[Path] = set()  # resolved paths added from $OVTOOLS_MODEL_CONFIGS in this process

# Shipped checkpoints, addressed like an open_clip pretrained tag.
SHIPPED_TAGS: dict[tuple[str, str], str] = {
    ("ovtools-shapes", "shapes"): "ovtools-shapes.safetensors",
    ("ovtools-shapes", "shapes3d"): "ovtools-shapes3d.safetensors",
    # region-level fine-tuning for detect-shapes / segment-shapes (scripts/finetune_shapes_regions.sh)
    ("ovtools-shapes", "shapes-regions"): "ovtools-shapes-regions.safetensors",
}

MODEL_CONFIGS_ENV = "OVTOOLS_MODEL_CONFIGS"


def add_model_configs_from_env() -> list[Path]:
    """Register the architectures named by ``$OVTOOLS_MODEL_CONFIGS`` with open_clip (idempotent).

    The variable is an ``os.pathsep``-separated list of folders or JSON files of open_clip
    architecture configs; batch workers (Ray actors) call this before building a model.

    Returns:
        The paths added by this call.

    Raises:
        FileNotFoundError: an entry that does not exist (named).
    """
    value = os.environ.get(MODEL_CONFIGS_ENV, "")
    paths = [Path(e).expanduser() for e in value.split(os.pathsep) if e.strip()]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{MODEL_CONFIGS_ENV}: {p} does not exist")
    known = {Path(p).resolve() for p in getattr(open_clip.factory, "_MODEL_CONFIG_PATHS", [])}
    added = []
    for p in paths:
        if p.resolve() not in known:
            open_clip.add_model_config(p)
            known.add(p.resolve())
            added.append(p)
    return added


#: Precision of the encoder's weights (``"auto"``: :func:`auto_precision`).
Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: Every accepted ``precision`` value: the explicit dtypes and ``"auto"`` (:func:`auto_precision`).
PRECISION_CHOICES = get_args(Precision)
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class LoadedModel:
    """What :func:`load_clip` returns.

    Attributes:
        model: the open_clip ``CLIP`` module in eval mode, on ``device``.
        tokenizer: open_clip tokenizer for the model (callable ``list[str] -> LongTensor (T, L)``).
        device: where the model lives.
        dtype: parameter dtype actually used (after any fallback).
        model_id: stable string naming model and weights (used as a cache key).
        precision_note: for ``precision="auto"``, what it picked and why (e.g. ``"auto → bf16: CPU with
            native bf16 matrix units (avx512_bf16)"``); empty otherwise.
    """

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    model_id: str
    precision_note: str = ""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` → CUDA if available, else MPS, else CPU.

    Raises:
        ValueError: ``device`` names a device type torch does not know, or CUDA
            is asked for but not available.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r} is not a torch device (try 'cpu', 'cuda', 'cuda:1', 'auto')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for but CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} asked for but MPS is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r}: ovtools runs on cpu, cuda or mps")
    return dev


def bf16_unit_in_cpuinfo(text: str) -> str | None:
    """The first of ``amx_bf16``, ``avx512_bf16`` among the ``flags`` of a ``/proc/cpuinfo`` text, or ``None``."""
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    return next((f for f in _CPU_BF16_FLAGS if f in flags), None)


@functools.lru_cache(maxsize=1)
def cpu_bf16_units() -> str | None:
    """The CPU's native bf16 matrix unit, or ``None``.

    Reads the flags of ``/proc/cpuinfo`` (Linux): ``"amx_bf16"`` (Intel AMX tiles) or
    ``"avx512_bf16"`` (AVX-512 BF16 dot products, e.g. AMD Zen 4, Intel Cooper Lake); where that
    file does not exist, ``"amx_bf16"`` if ``torch.backends.cpu.get_cpu_capability()`` reports AMX.
    """
    try:
        return bf16_unit_in_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        pass
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return "amx_bf16" if "AMX" in str(capability).upper() else None


def auto_precision(device: torch.device) -> tuple[str, str]:
    """What ``precision="auto"`` picks on ``device``, and why.

    * CPU with native bf16 matrix units (:func:`cpu_bf16_units`): ``"bf16"`` (weights cast to
      bfloat16: ViT-B-32 image encoding ~1.4x, the small shipped ResNet ~3x faster than fp32 on an
      AVX-512 BF16 CPU; evaluation-world quality within 0.01 of fp32);
    * CUDA GPU with bf16 support (Ampere and later): ``"bf16"``; older CUDA GPUs: ``"fp16"``;
    * anything else (CPUs without bf16 units, where bf16 is emulated and slower; MPS): ``"fp32"``.

    Returns:
        ``(precision, reason)``: one of ``"fp32" | "fp16" | "bf16"`` and a one-line reason.
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "CUDA GPU with bf16 support"
        return "fp16", "CUDA GPU without bf16 support"
    if device.type == "cpu":
        unit = cpu_bf16_units()
        if unit is not None:
            return "bf16", f"CPU with native bf16 matrix units ({unit})"
        return "fp32", "CPU without native bf16 matrix units (amx_bf16 / avx512_bf16)"
    return "fp32", f"{device.type} device"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Map ``"auto" | "fp32" | "fp16" | "bf16"`` to a dtype the device can run.

    ``"auto"`` picks per :func:`auto_precision`.  Half precision on a CPU (slow or
    unsupported convolutions) and bf16 on a GPU without bf16 support fall back to
    fp32 with a ``UserWarning``.

    Raises:
        ValueError: unknown precision name.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision={precision!r} is not one of {list(PRECISION_CHOICES)}")
    if precision == "auto":
        return PRECISIONS[auto_precision(device)[0]]
    dtype = PRECISIONS[precision]
    reason = None
    if dtype == torch.float16 and device.type == "cpu":
        reason = "fp16 is not supported for CLIP inference on the CPU"
    elif dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        reason = "this GPU has no bf16 support"
    elif dtype != torch.float32 and device.type == "mps" and dtype == torch.bfloat16:
        reason = "bf16 is not supported on MPS"
    if reason:
        warnings.warn(f"precision={precision!r}: {reason}; falling back to fp32", UserWarning, stacklevel=3)
        return torch.float32
    return dtype


def register_model_configs() -> list[Path]:
    """Add the architectures named by ``$OVTOOLS_MODEL_CONFIGS`` to open_clip (idempotent).

    The variable lists folders (every ``*.json`` inside) or ``.json`` files, separated by
    ``os.pathsep`` (``:`` on POSIX, ``;`` on Windows); each file is an open_clip architecture
    config whose stem becomes a ``model`` name.  :func:`load_clip` (and so every
    :class:`~ovtools.encoders.CLIPEncoder` and pipeline) calls this first.

    Returns:
        The paths added by this call (empty when the variable is unset or already registered).

    Raises:
        ConfigError: an entry does not exist, is neither a folder nor a ``.json`` file, or holds
            a file that is not valid JSON; the message names the variable and the entry.
    """
    value = os.environ.get(MODEL_CONFIGS_ENV, "")
    paths = [Path(e).expanduser() for e in value.split(os.pathsep) if e.strip()]
    added = []
    for p in paths:
        key = p.resolve()
        if key in _REGISTERED:
            continue
        if not p.exists():
            raise ConfigError(f"{MODEL_CONFIGS_ENV}: {p} does not exist")
        if p.is_file() and p.suffix.lower() != ".json":
            raise ConfigError(f"{MODEL_CONFIGS_ENV}: {p} is not a folder or a .json architecture config")
        files = sorted(p.glob("*.json")) if p.is_dir() else [p]
        for f in files:
            try:
                json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ConfigError(f"{MODEL_CONFIGS_ENV}: {f} is not a JSON architecture config ({e})") from None
        open_clip.add_model_config(p)
        _REGISTERED.add(key)
        added.append(p)
    return added


def _is_local_file(pretrained: str | None) -> bool:
    return pretrained is not None and (
        Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"} or Path(pretrained).is_file()
    )


def _check_name(model: str, pretrained: str | None) -> None:
    if model.startswith("hf-hub:"):
        return
    if model not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if model.lower().split("-")[0] in m.lower()][:15]
        raise UnknownNameError(
            f"unknown model {model!r}; similar open_clip names: {close or open_clip.list_models()[:15]} "
            "(`ovtools models` lists all)"
        )
    if pretrained is None or _is_local_file(pretrained) or (model, pretrained) in SHIPPED_TAGS:
        return
    tags = open_clip.list_pretrained_tags_by_model(model)
    if pretrained not in tags:
        shipped = [t for (m, t) in SHIPPED_TAGS if m == model]
        raise UnknownNameError(
            f"model {model!r} has no pretrained tag {pretrained!r}; valid tags: {sorted(tags) + shipped}, "
            "or a path to a local .safetensors/.pt checkpoint"
        )


def _load_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return {k.removeprefix("module."): v for k, v in sd.items()}


def weights_fingerprint(net: torch.nn.Module) -> str:
    """Short hash of a model's weights (shapes + a sample of every tensor).

    Used in cache keys, so that two checkpoints (or two random initialisations)
    with the same name never share cached text embeddings.
    """
    h = hashlib.blake2b(digest_size=8)
    with torch.no_grad():
        for name, p in net.state_dict().items():
            flat = p.detach().reshape(-1)[:4096].to("cpu", torch.float32)
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(flat.numpy().tobytes())
    return h.hexdigest()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the Hugging Face endpoint (``HF_ENDPOINT``), so offline runs fail in seconds."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline_if_unreachable(needed: bool):
    """Put huggingface_hub in offline mode (cache only, no retries) when the hub cannot be reached."""
    if not needed or _hub_reachable():
        yield
        return
    was = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = was


def load_clip(
    model: str,
    pretrained: str | None,
    device: str | torch.device | None = "auto",
    precision: str = "fp32",
) -> LoadedModel:
    """Build an open_clip model and tokenizer with the requested weights.

    Args:
        model: open_clip architecture name (``"ViT-B-32"``) or ``"hf-hub:org/repo"``.
        pretrained: open_clip pretrained tag, path to a local checkpoint
            (``.safetensors``, ``.pt``, ``.bin``), or ``None`` for random weights.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
        precision: ``"fp32"`` (the default here: training needs it), ``"fp16"``, ``"bf16"`` (fall back
            to fp32 with a warning where the device cannot run them) or ``"auto"``
            (:func:`auto_precision`).  Weights are cast (not autocast); ``logit_scale`` stays float32.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        ConfigError: ``$OVTOOLS_MODEL_CONFIGS`` names a missing or invalid entry
            (:func:`register_model_configs`).
        UnknownNameError: unknown architecture or pretrained tag (lists valid ones).
        FileNotFoundError: a local checkpoint path does not exist.
        WeightsUnavailableError: the weights are not cached and cannot be downloaded
            (offline); the message names model and tag and how to use a local file.
    """
    if not isinstance(model, str):
        raise TypeError(f"model must be an open_clip name or 'hf-hub:' id (a string), got {model!r}")
    if pretrained is not None and not isinstance(pretrained, (str, Path)):
        raise TypeError(f"pretrained must be a tag, a checkpoint path or None, got {pretrained!r}")
    pretrained = None if pretrained is None else str(pretrained)
    register_model_configs()
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    _check_name(model, pretrained)
    # (open_clip 3.x downloads the config of an hf-hub: name here: not asked for those)
    towers = optional_towers_needed(model, None if model.startswith("hf-hub:") else open_clip.get_model_config(model))
    if deferred_packages():  # the CLI imported open_clip without them (ovtools.deferred_imports)
        enable_optional_towers(towers)
    local: Path | None = None
    if (model, pretrained) in SHIPPED_TAGS:
        local = checkpoints_dir() / SHIPPED_TAGS[(model, pretrained)]
    elif _is_local_file(pretrained):
        local = Path(pretrained).expanduser()
    if local is not None and not local.is_file():
        raise FileNotFoundError(f"checkpoint for model {model!r} not found: {local}")

    # open_clip logs "No pretrained weights loaded" for random init; that is intended here.
    logging.getLogger().disabled, was = True, logging.getLogger().disabled
    remote = local is None and (pretrained is not None or model.startswith("hf-hub:"))
    try:
        with _hub_offline_if_unreachable(remote):
            net = open_clip.create_model(
                model, pretrained=None if local is not None else pretrained, device="cpu"
            )
            # open_clip's own tokenizer is built on first use (a cached-embeddings call never needs it)
            tokenizer = open_clip.get_tokenizer(model) if "transformers" in towers else DeferredTokenizer(model)
    except Exception as e:  # network / hub errors come in many types
        if pretrained is None and not model.startswith("hf-hub:"):
            if not towers:
                raise
            # random weights, but a timm / Hugging Face tower: open_clip refuses the installed timm, transformers
            # is missing, or the HF tower's config is not cached offline
            cause = " ".join(str(e).split())[:300] or type(e).__name__
            raise MissingDependencyError(
                f"model {model!r} has a {' / '.join(towers)} tower that could not be built: {cause}") from None
        arch = "<architecture>" if model.startswith("hf-hub:") else model
        raise WeightsUnavailableError(
            f"weights for model {model!r} pretrained {pretrained!r} are not in the local cache and could not be "
            "downloaded (offline?). Fetch them once on a connected machine (they go to ~/.cache/huggingface), "
            f"or pass a local checkpoint: --model {arch} --pretrained /path/to/open_clip_model.safetensors. "
            "Offline, the shipped evaluation-world model runs: --preset classify-shapes / detect-shapes / "
            "segment-shapes / segment3d-shapes (or --model ovtools-shapes --pretrained shapes). "
            f"Cause: {' '.join(str(e).split()) or type(e).__name__}"
        ) from e
    finally:
        logging.getLogger().disabled = was
    if local is not None:
        try:
            state = _load_state_dict(local)
        except Exception as e:  # safetensors, pickle and zip readers raise many types
            raise WeightsUnavailableError(
                f"checkpoint {local} cannot be read as a state dict ({type(e).__name__}: {str(e)[:200]})"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsUnavailableError(f"checkpoint {local} does not hold a state dict of tensors")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            detail = " ".join(line.strip() for line in str(e).splitlines()[1:3])[:300]
            raise WeightsUnavailableError(f"checkpoint {local} does not fit model {model!r}: {detail}") from None
    logit_scale = net.logit_scale.detach().float().clone() if hasattr(net, "logit_scale") else None
    net = net.to(device=dev, dtype=dtype).eval()
    if logit_scale is not None and dtype != torch.float32:  # a bf16 temperature would shift every score
        net.logit_scale.data = logit_scale.to(dev)
    ident = f"{model}|{pretrained if local is None else local.name}|{weights_fingerprint(net)}"
    note = ""
    if precision == "auto":
        picked, why = auto_precision(dev)
        note = f"auto → {picked}: {why}"
    return LoadedModel(model=net, tokenizer=tokenizer, device=dev, dtype=dtype, model_id=ident, precision_note=note)
