"""The CLIP crop pyramid: grid geometry, encoding, disk cache, interpolation in position and scale (no nerfstudio)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovtools.nerf.pyramid import CropPyramid, PyramidSpec


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    ims[1][10:30, 20:40] = (230, 20, 20)
    return ims


def test_spec_grid_covers_the_image_and_rejects_bad_values():
    spec = PyramidSpec((0.25, 0.5), 0.5)
    side, step, rows, cols = spec.grid(0, 40, 56)
    assert (side, step) == (10, 5.0)
    assert (rows - 1) * step >= 39 and (cols - 1) * step >= 55 and (rows - 2) * step < 39
    for bad in ((), (0.5, 0.25), (0.0,), (3.0,)):
        with pytest.raises(ValueError, match="scales"):
            PyramidSpec(bad)
    with pytest.raises(ValueError, match="stride"):
        PyramidSpec((0.5,), 0.0)


def test_build_caches_and_samples_exact_values_at_crop_centres(images, tiny_encoder, tmp_path):
    spec = PyramidSpec((0.25, 0.5), 0.5)
    pyr = CropPyramid.build(images, tiny_encoder, spec, cache_dir=tmp_path, progress=False)
    assert pyr.n_images == 2 and pyr.embed_dim == tiny_encoder.embed_dim
    assert [tuple(lv.shape[:3]) for lv in pyr.levels] == [(2, *spec.grid(i, 40, 56)[2:]) for i in range(2)]
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    again = CropPyramid.build(images, tiny_encoder, spec, cache_dir=tmp_path, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(pyr.levels, again.levels))
    other = CropPyramid.build(images[:1], tiny_encoder, spec, cache_dir=tmp_path, progress=False)
    assert other.n_images == 1 and len(list(tmp_path.glob("*.safetensors"))) == 2  # other images, other key
    files[0].write_bytes(b"not safetensors")  # a damaged cache file is recomputed, not fatal
    fixed = CropPyramid.build(images, tiny_encoder, spec, cache_dir=tmp_path, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(pyr.levels, fixed.levels))

    # at a crop centre and exactly a pyramid scale the sample is that crop's embedding
    _, step, _, _ = spec.grid(1, 40, 56)
    got = pyr.sample(torch.tensor([1]), torch.tensor([2 * step]), torch.tensor([1 * step]), 0.5)
    want = F.normalize(pyr.levels[1][1, 2, 1].float()[None], dim=-1)
    assert torch.allclose(got, want, atol=1e-5)
    # the same crop encoded directly (a crop side of 20 px centred on pixel (2 * step, step))
    cy, cx = 2 * step, step
    x = tiny_encoder.normalize(tiny_encoder.to_float(images[1])).float()
    crop = F.pad(x, (20, 20, 20, 20))[..., int(cy) + 10 : int(cy) + 30, int(cx) + 10 : int(cx) + 30]
    direct = tiny_encoder.encode_pixels(F.interpolate(crop, size=tiny_encoder.image_size, mode="bilinear"))
    assert float((direct.cpu() * got).sum()) > 0.95


def test_sample_interpolates_between_scales_and_positions(images, tiny_encoder, tmp_path):
    spec = PyramidSpec((0.25, 0.5), 0.5)
    pyr = CropPyramid.build(images, tiny_encoder, spec, cache_dir=tmp_path, progress=False)
    idx, y, x = torch.tensor([0]), torch.tensor([10.0]), torch.tensor([20.0])
    lo, hi = pyr.sample(idx, y, x, 0.25), pyr.sample(idx, y, x, 0.5)
    mid = pyr.sample(idx, y, x, math.sqrt(0.25 * 0.5))  # halfway in log scale
    assert torch.allclose(mid, F.normalize(lo + hi, dim=-1), atol=1e-4)
    assert torch.allclose(pyr.sample(idx, y, x, 0.01), lo) and torch.allclose(pyr.sample(idx, y, x, 9.0), hi)
    # halfway between two centres of level 0 (step 5 px): the mean of both embeddings
    a = pyr.sample(idx, torch.tensor([10.0]), torch.tensor([20.0]), 0.25)
    b = pyr.sample(idx, torch.tensor([10.0]), torch.tensor([25.0]), 0.25)
    m = pyr.sample(idx, torch.tensor([10.0]), torch.tensor([22.5]), 0.25)
    raw = lambda j: pyr.levels[0][0, 2, j].float()  # noqa: E731
    assert torch.allclose(m, F.normalize((raw(4) + raw(5))[None] / 2, dim=-1), atol=1e-4)
    assert torch.allclose(a, F.normalize(raw(4)[None], dim=-1), atol=1e-4) and not torch.allclose(a, b)
    out = pyr.sample(torch.tensor([0, 1, 1]), torch.tensor([0.0, 39.0, 20.0]), torch.tensor([0.0, 55.0, 7.5]),
                     torch.tensor([0.3, 0.4, 0.26]))
    assert out.shape == (3, tiny_encoder.embed_dim) and torch.allclose(out.norm(dim=-1), torch.ones(3))


def test_bad_inputs_raise_clear_errors(images, tiny_encoder, tmp_path):
    spec = PyramidSpec((0.5,), 1.0)
    with pytest.raises(ValueError, match="at least one image"):
        CropPyramid.build([], tiny_encoder, spec, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="image 1 must be uint8"):
        CropPyramid.build([images[0], images[0][:20]], tiny_encoder, spec, cache_dir=tmp_path, progress=False)
    pyr = CropPyramid.build(images, tiny_encoder, spec, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"image indices must be in \[0, 2\)"):
        pyr.sample(torch.tensor([2]), torch.tensor([0.0]), torch.tensor([0.0]), 0.5)
    with pytest.raises(ValueError, match="one length"):
        pyr.sample(torch.tensor([0, 1]), torch.tensor([0.0]), torch.tensor([0.0, 1.0]), 0.5)
    with pytest.raises(ValueError, match="one length"):
        pyr.sample(torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), torch.ones(3))
    with pytest.raises(ValueError, match="level 0 must have shape"):
        CropPyramid([torch.zeros(1, 3, 3, 4)], spec, (40, 56))
