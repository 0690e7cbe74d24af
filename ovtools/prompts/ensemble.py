"""Prompt ensembling: class embeddings (C, D) and negative embeddings (K, D).

CLIP paper (Radford et al. 2021, §3.1.4): embed every template filled with the
class name, L2-normalise each embedding, average, and renormalise.  Synonyms
are ensembled the same way (every template × every name), and a class's own
prompts join the average verbatim.  With no synonyms or own prompts the
result equals ``open_clip.build_zero_shot_classifier(...).T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cache import EmbeddingCache, cache_key
from .classspace import ClassSpace, ClassSpec
from .templates import TemplateSet, load_templates


@dataclass(frozen=True)
class ClassEmbeddings:
    """Text side of every head.

    Attributes:
        space: the class space these embeddings belong to.
        classes: float32 (C, D), L2-normalised rows, in class-id order.
        negatives: float32 (K, D), L2-normalised rows (K ≥ 1: the canonical negatives at least).
        negative_names: the K negative phrases.
        negative_mask: bool (C, K): ``negative_mask[c, k]`` says phrase k is a negative of class c
            (canonical and space-level negatives apply to every class).
        templates: the template set used.
    """

    space: ClassSpace
    classes: torch.Tensor
    negatives: torch.Tensor
    negative_names: tuple[str, ...]
    negative_mask: torch.Tensor
    templates: TemplateSet

    @property
    def names(self) -> list[str]:
        return self.space.names


def _texts_for(spec: ClassSpec, templates: TemplateSet) -> list[str]:
    texts = [p for n in (spec.name, *spec.synonyms) for p in templates.format(n)]
    return texts + list(spec.prompts)


def ensemble(encoder, groups: list[list[str]], batch_size: int = 256) -> torch.Tensor:
    """Mean of L2-normalised text embeddings per group, renormalised → (G, D) float32."""
    flat = [t for g in groups for t in g]
    emb = encoder.encode_texts(flat, batch_size=batch_size)
    out, i = [], 0
    for g in groups:
        out.append(emb[i : i + len(g)].mean(0))
        i += len(g)
    return F.normalize(torch.stack(out), dim=-1)


def build_class_embeddings(
    encoder,
    space: ClassSpace,
    templates: str | TemplateSet | None = None,
    cache: EmbeddingCache | None = None,
) -> ClassEmbeddings:
    """Ensemble class and negative embeddings for a class space, through the disk cache.

    Args:
        encoder: a :class:`~ovtools.encoders.CLIPEncoder` (uses ``encode_texts`` and ``model_id``).
        space: the classes.
        templates: template set name/path/object; ``None`` → the space's own default
            (``space.templates``) or ``openai_imagenet``.
        cache: embedding cache; ``None`` → the default on-disk cache.  Pass
            ``EmbeddingCache(enabled=False)`` to always recompute.

    Returns:
        :class:`ClassEmbeddings`.  A cache hit runs no text-encoder forward pass.
    """
    tset = load_templates(templates if templates is not None else space.templates)
    cache = cache if cache is not None else EmbeddingCache()
    neg_names = space.all_negatives()
    key = cache_key(encoder.model_id, "\n".join(tset.templates), space.fingerprint())
    hit = cache.get(key)
    if hit is not None and hit["classes"].shape[0] == len(space) and hit["negatives"].shape[0] == len(neg_names):
        cls_emb, neg_emb = hit["classes"].float(), hit["negatives"].float()
    else:
        groups = [_texts_for(c, tset) for c in space.classes] + [tset.format(n) for n in neg_names]
        emb = ensemble(encoder, groups)
        cls_emb, neg_emb = emb[: len(space)].contiguous(), emb[len(space) :].contiguous()
        cache.put(key, {"classes": cls_emb, "negatives": neg_emb})
    shared = space.shared_negatives()
    mask = torch.tensor(
        [[n in shared or n in spec.negatives for n in neg_names] for spec in space.classes], dtype=torch.bool
    ).reshape(len(space), len(neg_names))
    return ClassEmbeddings(space, cls_emb, neg_emb, tuple(neg_names), mask, tset)

