"""Mask-level CLIP targets of the language field: smallest mask per pixel, zero rows outside, disk cache.

No nerfstudio needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovtools.heads.segment3d import Segment3DHead
from ovtools.nerf.masktargets import MaskTargets


@pytest.fixture(scope="module")
def images():
    """Two 48x64 images: grey with a red square holding a smaller blue one; the second also a green bar."""
    a = np.full((48, 64, 3), 128, np.uint8)
    a[8:40, 10:42] = (220, 30, 30)
    a[16:30, 18:32] = (30, 30, 220)
    b = a.copy()
    b[4:44, 48:60] = (30, 200, 30)
    return [a, b]


def test_sample_returns_the_pixel_rows_feature_and_zero_outside_every_mask():
    index = torch.full((2, 4, 5), -1, dtype=torch.int32)
    index[0, 1:3, 1:4] = 0
    index[1, :, :2] = 2
    index[1, 2:, 3:] = 1
    feats = torch.eye(3, 8).half()
    t = MaskTargets(index, feats)
    assert t.n_images == 2 and t.image_size == (4, 5) and t.embed_dim == 8
    assert t.coverage() == pytest.approx(float((index >= 0).float().mean()))
    got = t.sample(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([1.0, 0.0, 3.0, 2.6, 0.4]),
                   torch.tensor([2.0, 0.0, 0.4, 3.2, 4.0]))
    want = torch.zeros(5, 8)
    want[0, 0] = 1  # image 0, inside mask 0
    want[2, 2] = 1  # image 1, column 0 -> mask 2
    want[3, 1] = 1  # rounded to (3, 3) -> mask 1
    assert got.dtype == torch.float32 and torch.equal(got, want)  # rows 1 and 4 lie in no mask: zeros
    # a scale is accepted and ignored (same call shape as the crop pyramid)
    assert torch.equal(t.sample(torch.tensor([0]), torch.tensor([1.0]), torch.tensor([2.0]), 0.3), want[:1])


def test_bad_indices_and_shapes_raise_clear_errors():
    t = MaskTargets(torch.zeros(1, 4, 4, dtype=torch.int32), torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"image indices must be in \[0, 1\)"):
        t.sample(torch.tensor([1]), torch.tensor([0.0]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="one length"):
        t.sample(torch.tensor([0, 0]), torch.tensor([0.0]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="feature row 5"):
        MaskTargets(torch.full((1, 2, 2), 5, dtype=torch.int32), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        MaskTargets(torch.zeros(4, 4, dtype=torch.int32), torch.ones(1, 3))


def test_build_matches_segment3d_partitions_and_caches(images, tiny_encoder, tmp_path):
    t = MaskTargets.build(images, tiny_encoder, min_mask_area=16, cache_dir=tmp_path, progress=False)
    assert t.n_images == 2 and t.image_size == (48, 64) and t.feats.dtype == torch.float16
    head = Segment3DHead(tiny_encoder, features="masks", min_mask_area=16, context_padding=0.2)
    parts = [head.partition(im) for im in images]
    assert t.feats.shape[0] == sum(p.feats.shape[0] for p in parts)
    # every pixel of image 1 reads the feature of the mask segment3d paints there (rows offset past image 0's)
    for y, x in ((20, 25), (10, 12), (2, 2), (30, 54)):
        row = int(parts[1].index[y, x])
        got = t.sample(torch.tensor([1]), torch.tensor([float(y)]), torch.tensor([float(x)]))[0]
        if row < 0:
            assert torch.equal(got, torch.zeros_like(got))
        else:
            assert torch.allclose(got, parts[1].feats[row].half().float(), atol=1e-6)
            assert abs(float(got.norm()) - 1) < 1e-2
    # the blue square (inside the red one) has its own, smaller mask: a different target from the red square's
    blue = t.sample(torch.tensor([0]), torch.tensor([22.0]), torch.tensor([24.0]))
    red = t.sample(torch.tensor([0]), torch.tensor([10.0]), torch.tensor([12.0]))
    assert int(t.index[0, 22, 24]) != int(t.index[0, 10, 12]) and not torch.equal(blue, red)

    files = list(tmp_path.glob("masks-*.safetensors"))
    assert len(files) == 1
    again = MaskTargets.build(images, tiny_encoder, min_mask_area=16, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.index, t.index) and torch.equal(again.feats, t.feats)
    MaskTargets.build(images, tiny_encoder, min_mask_area=32, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("masks-*.safetensors"))) == 2  # other settings, other key
    files[0].write_bytes(b"not safetensors")  # a damaged cache file is recomputed, not fatal
    fixed = MaskTargets.build(images, tiny_encoder, min_mask_area=16, cache_dir=tmp_path, progress=False)
    assert torch.equal(fixed.index, t.index)


def test_build_refuses_bad_images(images, tiny_encoder, tmp_path):
    with pytest.raises(ValueError, match="at least one image"):
        MaskTargets.build([], tiny_encoder, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"image 1 must be uint8 \(48, 64, 3\)"):
        MaskTargets.build([images[0], images[1][:20]], tiny_encoder, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="image 0 must be uint8"):
        MaskTargets.build([images[0].astype(np.float32)], tiny_encoder, cache_dir=tmp_path)
