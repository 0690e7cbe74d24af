"""Prompt ensembling and the text-embedding cache."""

from __future__ import annotations

import multiprocessing as mp
import os

import open_clip
import pytest
import torch

from ovtools.prompts import (CANONICAL_NEGATIVES, ClassSpace, ClassSpec, EmbeddingCache, build_class_embeddings,
                             load_templates)


class CountingEncoder:
    """Wraps a real CLIPEncoder and counts text-encoder forward passes (not a mock: it forwards)."""

    def __init__(self, enc):
        self.enc, self.model_id, self.calls = enc, enc.model_id, 0

    def encode_texts(self, texts, batch_size=256):
        self.calls += 1
        return self.enc.encode_texts(texts, batch_size)


def test_equals_open_clip_zero_shot_classifier(tiny_encoder):
    space = ClassSpace.from_labels("zebra, goat, grass plain")
    tset = load_templates("openai_imagenet")
    ours = build_class_embeddings(tiny_encoder, space, tset, cache=EmbeddingCache(enabled=False))
    ref = open_clip.build_zero_shot_classifier(
        tiny_encoder.model, tiny_encoder.tokenizer, space.names, list(tset.templates), num_classes_per_batch=2
    ).T
    assert ours.classes.shape == (3, 64)
    assert torch.allclose(ours.classes, ref, atol=1e-5)


def test_synonyms_and_prompts_join_the_average(tiny_encoder):
    tset = load_templates("single")
    spec = ClassSpec("sofa", synonyms=("couch",), prompts=("a comfy seat",))
    emb = build_class_embeddings(tiny_encoder, ClassSpace("s", (spec,)), tset, cache=EmbeddingCache(enabled=False))
    parts = tiny_encoder.encode_texts(["a photo of a sofa.", "a photo of a couch.", "a comfy seat"])
    expect = torch.nn.functional.normalize(parts.mean(0), dim=-1)
    assert torch.allclose(emb.classes[0], expect, atol=1e-5)


def test_negatives_and_mask(tiny_encoder):
    space = ClassSpace("s", (ClassSpec("mug", negatives=("glass",)), ClassSpec("kettle")), negatives=("background",))
    emb = build_class_embeddings(tiny_encoder, space, "single", cache=EmbeddingCache(enabled=False))
    assert emb.negative_names == (*CANONICAL_NEGATIVES, "background", "glass")
    assert emb.negatives.shape == (6, 64)
    assert emb.negative_mask.tolist() == [[True] * 6, [True] * 5 + [False]]


@pytest.mark.slow
def test_second_run_runs_zero_text_forwards(tiny_encoder, tmp_path):
    cache = EmbeddingCache(tmp_path)
    space = ClassSpace.load("coco")
    first = CountingEncoder(tiny_encoder)
    a = build_class_embeddings(first, space, cache=cache)
    assert first.calls == 1
    second = CountingEncoder(tiny_encoder)
    b = build_class_embeddings(second, space, cache=cache)
    assert second.calls == 0
    assert torch.equal(a.classes, b.classes) and torch.equal(a.negatives, b.negatives)


def test_cache_key_changes_with_templates_space_and_weights(tiny_encoder, tiny_rn_encoder, tmp_path):
    cache = EmbeddingCache(tmp_path)
    space = ClassSpace.from_labels("dog, cat")
    build_class_embeddings(tiny_encoder, space, "single", cache=cache)
    for enc, tpl, sp in [(tiny_encoder, "objects", space), (tiny_encoder, "single", ClassSpace.from_labels("dog")),
                         (tiny_rn_encoder, "single", space)]:
        counting = CountingEncoder(enc)
        build_class_embeddings(counting, sp, tpl, cache=cache)
        assert counting.calls == 1
    assert len(list(tmp_path.glob("*.safetensors"))) == 4


def test_corrupt_cache_file_is_recomputed(tiny_encoder, tmp_path):
    cache = EmbeddingCache(tmp_path)
    space = ClassSpace.from_labels("dog, cat")
    good = build_class_embeddings(tiny_encoder, space, "single", cache=cache)
    (f,) = tmp_path.glob("*.safetensors")
    f.write_bytes(f.read_bytes()[:40])
    counting = CountingEncoder(tiny_encoder)
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        again = build_class_embeddings(counting, space, "single", cache=cache)
    assert counting.calls == 1 and torch.allclose(good.classes, again.classes)


def _writer(root: str, seed: int, n: int) -> None:
    cache = EmbeddingCache(root)
    for i in range(n):
        cache.put("samekey", {"classes": torch.full((50, 512), float(seed)), "negatives": torch.zeros(4, 512)})


@pytest.mark.slow
def test_concurrent_writers_never_leave_a_corrupt_file(tmp_path):
    procs = [mp.get_context("spawn").Process(target=_writer, args=(str(tmp_path), s, 20)) for s in range(3)]
    for p in procs:
        p.start()
    reader = EmbeddingCache(tmp_path)
    seen = 0
    while any(p.is_alive() for p in procs):
        got = reader.get("samekey")
        if got is not None:
            seen += 1
            v = got["classes"]
            assert v.shape == (50, 512) and bool((v == v[0, 0]).all())
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reader.get("samekey")["classes"].shape == (50, 512)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_disabled_cache_writes_nothing(tiny_encoder, tmp_path):
    build_class_embeddings(tiny_encoder, ClassSpace.from_labels("a"), "single", cache=EmbeddingCache(tmp_path, False))
    assert not list(tmp_path.iterdir())
