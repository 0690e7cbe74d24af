"""Inputs and outputs.

* :mod:`.images` — decode any image Pillow opens to RGB uint8 (EXIF orientation, alpha, 16-bit...);
* :mod:`.inputs` — image arguments (files, folders, globs) to files, with the non-images skipped;
* :mod:`.ply` — point clouds: PLY (and PCD/XYZ/PTS via open3d) reading and writing;
* :mod:`.writers` — atomic files, the JSON result schema, COCO results;
* :mod:`.vis` and :mod:`.labelmap` — annotated PNGs and label-map PNGs.
"""

from .images import LoadedImage, as_loaded, image_suffixes, load_image

__all__ = ["LoadedImage", "as_loaded", "image_suffixes", "load_image"]
