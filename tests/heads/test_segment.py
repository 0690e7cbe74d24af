"""SegmentHead: masks named by the shipped small model on generated scenes, the three scorings, SAM plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovtools.geometry import boxes_from_masks, mask_iou, mask_nms
from ovtools.heads.mask_features import MaskFeatures
from ovtools.heads.segment import SegmentConfig, SegmentHead
from ovtools.io.images import as_loaded
from ovtools.prompts import CANONICAL_NEGATIVES, ClassSpace, build_class_embeddings, load_templates


@pytest.fixture(scope="module")
def shapes():
    """The shipped evaluation-world model, its class embeddings and two held-out scenes."""
    from ovtools.datasets.shapes import generate_scenes
    from ovtools.encoders import CLIPEncoder

    enc = CLIPEncoder("ovtools-shapes", "shapes", device="cpu")
    space = ClassSpace.load("shapes")
    emb = build_class_embeddings(enc, space, load_templates(space.templates))
    return enc, emb, list(generate_scenes(2, seed=2000, size=192))


def _gt_map(scene, names):
    gt = np.full(scene.image.shape[:2], -1, np.int32)
    for o in scene.objects:
        gt[o.mask] = names.index(o.name)
    return gt


@pytest.mark.slow
def test_crop_scoring_names_the_shapes(shapes):
    enc, emb, scenes = shapes
    head = SegmentHead(enc, SegmentConfig(scoring="crop", max_side=512))
    hits = total = 0
    for sc in scenes:
        det = head(sc.image, emb)
        assert det.mask.shape == (len(det), 192, 192) and det.mask.dtype == bool
        for o in sc.objects:
            total += 1
            same = det.class_id == emb.names.index(o.name)
            if same.any():
                iou = mask_iou(torch.from_numpy(o.mask[None]), torch.from_numpy(det.mask[same]))
                hits += float(iou.max()) >= 0.7
        lm = det.label_map()
        assert lm.shape == (192, 192) and lm.dtype == np.int32
        agree = (lm == _gt_map(sc, emb.names)).mean()
        assert agree > 0.9, agree
    assert hits / total >= 0.8, (hits, total)


def test_masks_come_back_at_the_original_size(shapes):
    """A 2x-upscaled scene processed at 192 px: masks are returned in the 384-px original's pixels."""
    from PIL import Image

    enc, emb, scenes = shapes
    sc = scenes[0]
    big = np.asarray(Image.fromarray(sc.image).resize((384, 384), Image.Resampling.BILINEAR))
    head = SegmentHead(enc, SegmentConfig(max_side=192))
    det = head(as_loaded(big), emb)
    assert det.mask.shape[1:] == (384, 384) and det.image_size == (384, 384)
    gt = np.kron(_gt_map(sc, emb.names), np.ones((2, 2), np.int32))
    assert (det.label_map() == gt).mean() > 0.9
    ys, xs = np.nonzero(det.mask[0])
    np.testing.assert_allclose(det.xyxy[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


@pytest.mark.slow
def test_label_matching_nothing_gives_an_empty_result(shapes):
    enc, _, scenes = shapes
    space = ClassSpace.load("shapes")
    absent = {c.name for c in space.classes} - {o.name for o in scenes[0].objects}
    name = sorted(absent)[0]
    one = ClassSpace(name="one", classes=(space.classes[space.names.index(name)],), negatives=space.negatives,
                     templates=space.templates)
    emb = build_class_embeddings(enc, one, load_templates(space.templates))
    det = SegmentHead(enc, SegmentConfig())(scenes[0].image, emb)
    assert len(det) == 0 and det.mask.shape == (0, 192, 192)
    assert (det.label_map() == -1).all()


@pytest.mark.parametrize("scoring", ["crop", "dense", "fusion"])
def test_every_scoring_gives_unit_features(tiny_encoder, rgb_image, scoring):
    masks = torch.zeros(3, 120, 160, dtype=torch.bool)
    masks[0, 30:90, 40:100] = True
    masks[1, :60] = True
    masks[2, 100:, 150:] = True  # a 20 x 10 corner
    f = MaskFeatures(tiny_encoder, scoring)(tiny_encoder.to_float(rgb_image), masks)
    assert f.shape == (3, tiny_encoder.embed_dim) and f.dtype == torch.float32
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3))
    assert MaskFeatures(tiny_encoder, scoring)(tiny_encoder.to_float(rgb_image), masks[:0]).shape[0] == 0


def test_masked_crop_ignores_pixels_outside_the_mask(tiny_encoder, rgb_image):
    masks = torch.zeros(1, 120, 160, dtype=torch.bool)
    masks[0, 40:80, 50:90] = True
    other = rgb_image.copy()
    other[:, :30] = 0  # outside the context crop (x 42-98, y 32-88 with padding 0.2)
    other[100:] = 255
    x1, x2 = tiny_encoder.to_float(rgb_image), tiny_encoder.to_float(other)
    mean = MaskFeatures(tiny_encoder, "crop", "mean")
    torch.testing.assert_close(mean(x1, masks), mean(x2, masks))
    changed = rgb_image.copy()
    changed[45:75, 55:85] = 0  # inside the mask: the feature must change
    assert not torch.allclose(mean(x1, masks), mean(tiny_encoder.to_float(changed), masks))
    outside = rgb_image.copy()
    outside[32:37, 50:90] = 0  # in the crop's context, outside the mask: only "none" sees it
    none = MaskFeatures(tiny_encoder, "crop", "none")
    assert not torch.allclose(none(x1, masks), none(tiny_encoder.to_float(outside), masks))
    torch.testing.assert_close(mean(x1, masks), mean(tiny_encoder.to_float(outside), masks), atol=1e-3, rtol=0)


def test_dense_pooling_of_one_cell_is_that_cell(tiny_encoder, rgb_image):
    img = rgb_image[:64, :96]  # 4 x 6 cells of 16 px
    x = tiny_encoder.to_float(img)
    masks = torch.zeros(1, 64, 96, dtype=torch.bool)
    masks[0, 16:32, 32:48] = True  # exactly cell (1, 2)
    cell = tiny_encoder.dense_features(tiny_encoder.normalize(x))[0, 1, 2].float()
    got = MaskFeatures(tiny_encoder, "dense")(x, masks)[0]
    torch.testing.assert_close(got, torch.nn.functional.normalize(cell, dim=0))


def test_conceptfusion_blend_follows_the_paper():
    """w_i = softmax_i((cos(f_i, f_G) + mean_{j != i} cos(f_i, f_j)) / T); f = normalize(w f_G + (1 - w) f_i)."""
    g = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=1)
    local = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=1)
    mf = MaskFeatures.__new__(MaskFeatures)
    mf.temperature = 0.5
    got = mf.fuse(g, local)
    phi = (local @ g.T)[:, 0]
    sim = local @ local.T
    psi = torch.stack([(sim[i].sum() - sim[i, i]) / 2 for i in range(3)])
    w = torch.softmax((phi + psi) / 0.5, 0)
    want = torch.nn.functional.normalize(w[:, None] * g + (1 - w[:, None]) * local, dim=1)
    torch.testing.assert_close(got, want)


def test_mask_boxes_and_nms():
    m = torch.zeros(3, 10, 12, dtype=torch.bool)
    m[0, 2:5, 3:9] = True
    m[1, 2:5, 3:8] = True  # IoU 15/18 with mask 0
    m[2, 2:5, 3:8] = True
    np.testing.assert_array_equal(boxes_from_masks(m)[0], [3.0, 2, 9, 5])
    keep = mask_nms(m, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]), 0.5)
    assert keep.tolist() == [0, 2]  # same class suppressed, other class kept


def test_config_is_checked(tiny_encoder):
    with pytest.raises(ValueError, match="scoring"):
        SegmentConfig(scoring="nope")
    with pytest.raises(ValueError, match="mask_fill"):
        SegmentConfig(mask_fill="grey")
    with pytest.raises(TypeError, match="score_threshold"):
        SegmentConfig(score_threshold="high")
    with pytest.raises(ValueError, match="proposals must be a mask source"):  # a box source, refused by the config
        SegmentHead(tiny_encoder, SegmentConfig(proposals="windows"))


def _tiny_labels(encoder):
    """Labels equal to the canonical negatives leave no negative to beat: random weights still report."""
    space = ClassSpace.from_labels(", ".join(CANONICAL_NEGATIVES))
    return build_class_embeddings(encoder, space, load_templates("single"))


def test_segment_anything_automatic_masks_end_to_end(tiny_encoder):
    """Tiny random SAM: plumbing, shapes and the mapping back to a larger original image."""
    from ovtools.proposals.sam import build_tiny_sam

    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (150, 230, 3), dtype=np.uint8)
    opts = {"model": build_tiny_sam(), "points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    head = SegmentHead(tiny_encoder, SegmentConfig(proposals="sam", proposal_options=opts, score_threshold=0.0,
                                                   max_side=100, nms_iou=1.0))
    det = head(img, _tiny_labels(tiny_encoder))
    assert len(det) > 0 and det.mask.shape == (len(det), 150, 230)
    assert (det.xyxy[:, 2] <= 230).all() and (det.xyxy[:, 3] <= 150).all()
    assert det.label_map().shape == (150, 230)


def test_detect_then_segment_with_box_prompts(tiny_encoder):
    from ovtools.proposals.sam import build_tiny_sam

    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    head = SegmentHead(tiny_encoder, SegmentConfig(
        proposals="detect", proposal_options={"model": build_tiny_sam()}, max_side=100,
        detect_options={"scoring": "dense", "proposals": "windows", "score_threshold": 0.0, "max_detections": 5}))
    det = head(img, _tiny_labels(tiny_encoder))
    assert 0 < len(det) <= 5 and det.mask.shape == (len(det), 120, 200)
    assert (det.xyxy[:, 2] <= 200 + 1e-3).all() and (det.xyxy[:, 3] <= 120 + 1e-3).all()
