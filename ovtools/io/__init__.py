"""Input decoding and output writing."""

from .images import IMAGE_SUFFIXES, LoadedImage, as_loaded, load_image

__all__ = ["IMAGE_SUFFIXES", "LoadedImage", "as_loaded", "load_image"]
