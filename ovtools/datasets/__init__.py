"""The generated evaluation world and dataset readers.

* :mod:`.shapes` — seeded drawing of coloured shapes with exact ground truth
  (:class:`Scene`, :func:`generate_classification`, :func:`generate_scenes`).
* :mod:`.export` — writers: ImageFolder, COCO instances (RLE masks), image-caption CSV.
* :mod:`.readers` — ImageFolder, caption CSV and COCO readers.
* :mod:`.scenes3d` — seeded 3D scenes (point clouds with per-point class and instance ids).
* :mod:`.views3d` — training crops rendered from the 3D scenes, and posed RGB-D folders of them.
"""

from .readers import CaptionData, CocoData, ImageFolderData, read_caption_csv, read_coco, read_image_folder
from .shapes import (
    BACKGROUNDS,
    CLASS_NAMES,
    COLOURS,
    SHAPES,
    Scene,
    ShapeObject,
    describe_object,
    describe_scene,
    generate_classification,
    generate_scenes,
    render_object_image,
    render_scene,
)

__all__ = [
    "BACKGROUNDS", "CLASS_NAMES", "COLOURS", "SHAPES", "CaptionData", "CocoData", "ImageFolderData", "Scene",
    "ShapeObject", "describe_object", "describe_scene", "generate_classification", "generate_scenes",
    "read_caption_csv", "read_coco", "read_image_folder", "render_object_image", "render_scene",
]
