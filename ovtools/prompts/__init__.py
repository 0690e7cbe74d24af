"""Template sets, class spaces, prompt ensembling and the text-embedding cache."""

from .cache import EmbeddingCache, default_cache_dir
from .classspace import CANONICAL_NEGATIVES, ClassSpace, ClassSpec, available_class_spaces, parse_labels
from .ensemble import ClassEmbeddings, build_class_embeddings
from .templates import DEFAULT_TEMPLATES, TemplateSet, available_template_sets, load_templates

__all__ = [
    "CANONICAL_NEGATIVES", "ClassEmbeddings", "ClassSpace", "ClassSpec", "DEFAULT_TEMPLATES", "EmbeddingCache",
    "TemplateSet", "available_class_spaces", "available_template_sets", "build_class_embeddings",
    "default_cache_dir", "load_templates", "parse_labels",
]
