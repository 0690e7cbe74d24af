"""Shared CLIP encoders (open_clip): loading, image/text embedding, dense features."""

from .clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, CLIPEncoder
from .loading import load_clip, resolve_device, resolve_precision

__all__ = ["CLIPEncoder", "DEFAULT_MODEL", "DEFAULT_PRETRAINED", "load_clip", "resolve_device", "resolve_precision"]
