"""Input decoding and output writing."""

from .images import LoadedImage, as_loaded, image_suffixes, load_image

__all__ = ["LoadedImage", "as_loaded", "image_suffixes", "load_image"]
