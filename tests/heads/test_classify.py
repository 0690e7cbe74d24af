"""ClassifyHead with the tiny random-weight encoders: shapes, exact logits, open-set rejection, registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovtools.errors import UnknownNameError
from ovtools.heads import HEADS, ClassifyHead, available_heads, create_head, head_spec, register_head
from ovtools.io.images import LoadedImage
from ovtools.prompts import ClassSpace, EmbeddingCache, build_class_embeddings

from .test_scoring import make_emb


def test_top_k_probabilities_and_logits(tiny_encoder, rgb_image):
    emb = build_class_embeddings(tiny_encoder, ClassSpace.from_labels("cat, dog, red square"),
                                 cache=EmbeddingCache(enabled=False))
    head = ClassifyHead(tiny_encoder, top_k=5)
    images = [rgb_image, rgb_image[:50, :70], LoadedImage(rgb_image[::2, ::2].copy(), (120, 160))]
    out = head(images, emb)
    assert out.class_id.shape == (3, 3) and out.confidence.shape == (3, 3)  # top_k clipped to C = 3
    assert out.class_id.dtype == np.int64 and out.confidence.dtype == np.float32
    assert np.all(np.diff(out.probability, axis=1) <= 0)  # ranked by probability
    assert np.allclose(out.probability.sum(1), 1.0, atol=1e-5)
    feats = tiny_encoder.encode_images([rgb_image])
    ref = tiny_encoder.logit_scale * feats @ emb.classes.T
    assert np.allclose(out.logits[0], ref[0].numpy(), atol=1e-4)
    assert np.allclose(out.probability[0], np.sort(ref.softmax(-1)[0].numpy())[::-1], atol=1e-5)
    # confidence is the open-set score of detection: probability x relevancy against the negatives
    neg = (tiny_encoder.logit_scale * feats @ emb.negatives.T)[0].max()
    relevancy = torch.sigmoid(ref[0][out.class_id[0]] - neg).numpy()
    np.testing.assert_allclose(out.relevancy[0], relevancy, atol=1e-5)
    np.testing.assert_allclose(out.confidence, out.probability * out.relevancy, atol=1e-6)
    assert not out.rejected.any()  # rejection off
    single = head(rgb_image, emb)
    assert single.class_id.shape == (1, 3) and np.array_equal(single.class_id[0], out.class_id[0])


def test_open_set_rejection(tiny_rn_encoder, rgb_image):
    feat = tiny_rn_encoder.encode_images([rgb_image])[0]
    other = F.normalize(torch.randn(64, generator=torch.Generator().manual_seed(1)), dim=0)
    # the image's own feature as class 0: accepted; as the negative: rejected
    accept = make_emb(torch.stack([feat, other]), other[None], names=["thing", "other"])
    reject = make_emb(torch.stack([0.5 * feat + other, other]), feat[None], names=["thing", "other"])
    head = ClassifyHead(tiny_rn_encoder, top_k=2, reject=True)
    a = head(rgb_image, accept)
    assert a.top1() == ["thing"] and not a.rejected[0]
    r = head(rgb_image, reject)
    assert r.rejected[0] and r.top1() == [None]
    assert r.class_id[0].tolist() in ([0, 1], [1, 0])  # ranking kept for inspection


def test_bad_images_and_args(tiny_encoder, rgb_image):
    emb = build_class_embeddings(tiny_encoder, ClassSpace.from_labels("a, b"), cache=EmbeddingCache(enabled=False))
    with pytest.raises(ValueError, match="images\\[0\\]"):
        ClassifyHead(tiny_encoder)([rgb_image.astype(np.float32)], emb)
    with pytest.raises(ValueError):
        ClassifyHead(tiny_encoder, top_k=0)


def test_registry_lists_names_and_refuses_duplicates(tiny_encoder):
    assert {"classify", "detect"} <= set(available_heads())
    assert isinstance(create_head("classify", tiny_encoder, top_k=1), ClassifyHead)
    with pytest.raises(UnknownNameError, match="classify") as info:
        create_head("segmentt", tiny_encoder)
    assert "detect" in str(info.value) and isinstance(info.value, KeyError)
    with pytest.raises(ValueError, match="already registered"):
        register_head(head_spec("classify"))
    with pytest.raises(TypeError, match="HeadSpec"):
        HEADS.add("toy", ClassifyHead)


@pytest.mark.slow
def test_one_label_on_a_blank_image_is_not_certain():
    """Issue 10 item 8: softmax over a single label is 1.0 whatever the image; the reported confidence is not."""
    from ovtools.datasets.shapes import generate_classification
    from ovtools.pipelines import ClassifyPipeline

    pipe = ClassifyPipeline("classify-shapes", labels="cat", device="cpu")
    blank = pipe(np.full((64, 64, 3), 128, np.uint8))
    assert blank.probability[0, 0] == pytest.approx(1.0)
    assert blank.confidence[0, 0] == pytest.approx(blank.relevancy[0, 0]) and blank.confidence[0, 0] < 0.1
    row = blank.to_dict(0)["top_k"][0]
    assert set(row) == {"label", "class_id", "confidence", "probability", "relevancy"}
    assert row["confidence"] < 0.1 and row["probability"] == 1.0
    # a label the image does show keeps a high confidence
    scene = next(generate_classification(1, seed=7))
    pipe.set_labels(scene.objects[0].name)
    shown = pipe(scene.image)
    assert shown.probability[0, 0] == pytest.approx(1.0) and shown.confidence[0, 0] > 0.5
