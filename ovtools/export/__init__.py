"""Exports for deployment without ovtools: the image encoder with the class embeddings baked in.

* ``task="classify"``: float32 (B, 3, S, S) normalised pixels → (B, C) probabilities;
* ``task="embed"``: the same input → (B, D) L2-normalised embeddings;

as ONNX (``pip install 'ovtools[export]'``) or TorchScript.  Input layout, mean, std,
size and class names travel in the file (:func:`read_metadata`).
"""

from .check import Comparison, compare_with_pipeline, load_exported
from .graphs import ImageEmbedder, ZeroShotClassifier
from .writer import EXPORT_TASKS, FORMATS, INPUT_DOC, export_model, export_pipeline, read_metadata

__all__ = ["Comparison", "EXPORT_TASKS", "FORMATS", "INPUT_DOC", "ImageEmbedder", "ZeroShotClassifier",
           "compare_with_pipeline", "export_model", "export_pipeline", "load_exported", "read_metadata"]
