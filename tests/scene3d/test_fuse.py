"""fuse_features: occlusion test, mean over views, partitions at other resolutions; dense_partition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovtools.scene3d import (
    FeaturePartition,
    FusionView,
    dense_partition,
    fuse_features,
    look_at,
    plan_views,
    render_points,
)

K = np.array([[100.0, 0.0, 16.0], [0.0, 100.0, 12.0], [0.0, 0.0, 1.0]])
SIZE = (24, 32)


def _uniform(feat) -> FeaturePartition:
    """One feature for the whole image, on a coarse 3 x 4 index grid."""
    return FeaturePartition(torch.zeros(3, 4, dtype=torch.long), torch.tensor([feat], dtype=torch.float32))


def test_occluded_point_gets_no_features_from_that_view():
    # A (front) and B (2 m behind A) share a pixel in view 1; view 2 looks from the side and sees both.
    # C is outside both images.
    pts = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0], [30.0, 0.0, -9.0]], np.float32)
    pose1 = np.eye(4)
    pose2 = look_at((20.0, 0.0, 3.0), (0.0, 0.0, 3.0))
    f1, f2 = [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]
    views = []
    for pose, f in ((pose1, f1), (pose2, f2)):
        r = render_points(pts, None, K, pose, SIZE, point_radius_px=1, fill_holes=0)
        views.append(FusionView(K, pose, r.depth, _uniform(f)))
    assert int((render_points(pts, None, K, pose2, SIZE, point_radius_px=0).index >= 0).sum()) == 2
    out = fuse_features(pts, views)
    assert out.features.dtype == torch.float16 and out.count.dtype == torch.int32
    assert out.count.tolist() == [2, 1, 0]
    s = 2**-0.5
    assert torch.allclose(out.features[0].float(), torch.tensor([s, s, 0, 0]), atol=1e-3)  # mean of f1, f2
    assert torch.allclose(out.features[1].float(), torch.tensor(f2))  # view 1 sees A, not B
    assert torch.equal(out.features[2], torch.zeros(4, dtype=torch.float16))
    assert out.seen.tolist() == [True, True, False]


def test_mean_over_views_and_unit_norm():
    rng = np.random.default_rng(0)
    pts = np.array([[0.0, 0.0, 2.0]], np.float32)
    feats = rng.normal(size=(3, 8)).astype(np.float32)
    depth = np.full(SIZE, 2.0, np.float32)
    views = [(K, np.eye(4), depth, (torch.zeros(SIZE, dtype=torch.long), f[None])) for f in feats]
    out = fuse_features(torch.from_numpy(pts), iter(views))  # a generator of tuples is fine
    ref = F.normalize(torch.from_numpy(feats).mean(0), dim=0)
    assert out.count.tolist() == [3]
    assert torch.allclose(out.features[0].float(), ref, atol=2e-3)
    assert float(out.features[0].float().norm()) == pytest.approx(1.0, abs=2e-3)


def test_partition_at_other_resolution_and_missing_cells():
    # 2 x 2 partition over a 24 x 32 depth map; cell (1, 1) has no feature.
    index = torch.tensor([[0, 1], [2, -1]])
    feats = torch.eye(3)
    depth = np.full(SIZE, 2.0, np.float32)
    # pixels (row, col): (5, 5) -> cell 0, (5, 20) -> 1, (20, 5) -> 2, (20, 20) -> none
    px = [(5, 5), (5, 20), (20, 5), (20, 20)]
    pts = np.array([[(c - 16) * 2 / 100, (r - 12) * 2 / 100, 2.0] for r, c in px], np.float32)
    out = fuse_features(pts, [(K, np.eye(4), depth, (index, feats))])
    assert out.count.tolist() == [1, 1, 1, 0]
    assert torch.equal(out.features[:3].float(), torch.eye(3))


def test_depth_tolerance_absolute_and_relative():
    pts = np.array([[0.0, 0.0, 2.1]], np.float32)
    depth = np.full(SIZE, 2.0, np.float32)
    views = [(K, np.eye(4), depth, _uniform([1.0, 0.0]))]
    assert fuse_features(pts, views).count.tolist() == [0]
    assert fuse_features(pts, views, depth_tolerance=0.2).count.tolist() == [1]
    assert fuse_features(pts, views, depth_tolerance=0.05, relative_tolerance=0.05).count.tolist() == [1]
    zero = np.zeros(SIZE, np.float32)  # invalid depth everywhere: nothing is seen
    assert fuse_features(pts, [(K, np.eye(4), zero, _uniform([1.0, 0.0]))], depth_tolerance=9).count.tolist() == [0]


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(0)
    pts = (rng.random((500, 3)) * [1, 1, 1] + [-0.5, -0.5, 1.5]).astype(np.float32)
    r = render_points(pts, None, K, np.eye(4), SIZE, point_radius_px=1)
    part = FeaturePartition(torch.arange(12).view(3, 4), torch.randn(12, 5, generator=torch.Generator().manual_seed(0)))
    views = [(K, np.eye(4), r.depth, part)]
    a = fuse_features(pts, views, depth_tolerance=0.1)
    b = fuse_features(pts, views, depth_tolerance=0.1, chunk_size=37)
    assert torch.equal(a.features, b.features) and torch.equal(a.count, b.count)
    assert 0 < int(a.count.sum()) < 500


def test_errors():
    pts = np.zeros((2, 3), np.float32)
    depth = np.ones(SIZE, np.float32)
    with pytest.raises(ValueError, match="row 5 of only 2"):
        fuse_features(pts, [(K, np.eye(4), depth, (torch.full((2, 2), 5), torch.zeros(2, 4)))])
    with pytest.raises(ValueError, match="feature_dim"):
        fuse_features(pts, [])
    out = fuse_features(pts, [], feature_dim=7)
    assert out.features.shape == (2, 7) and out.count.tolist() == [0, 0]
    with pytest.raises(ValueError, match="differs"):
        fuse_features(pts, [(K, np.eye(4), depth, _uniform([1.0, 0.0])), (K, np.eye(4), depth, _uniform([1.0]))])
    with pytest.raises(ValueError, match=r"depth must have shape \(H, W\)"):
        fuse_features(pts, [(K, np.eye(4), depth[None], _uniform([1.0]))])


def test_dense_partition_vit(tiny_encoder, rgb_image):
    part = dense_partition(tiny_encoder, rgb_image, side=64)  # 120 x 160 -> 64 x 80 -> 4 x 5 cells
    assert part.index.shape == (4, 5) and part.index.dtype == torch.int64
    assert torch.equal(part.index.flatten(), torch.arange(20))
    assert part.feats.shape == (20, tiny_encoder.embed_dim) and part.feats.dtype == torch.float32
    assert torch.allclose(part.feats.norm(dim=1), torch.ones(20), atol=1e-4)
    x = F.interpolate(tiny_encoder.to_float(rgb_image), size=(64, 80), mode="bicubic", antialias=True,
                      align_corners=False).clamp(0, 1)
    ref = tiny_encoder.dense_features(tiny_encoder.normalize(x))[0].reshape(20, -1)
    assert torch.allclose(part.feats, ref, atol=1e-5)
    same = dense_partition(tiny_encoder, torch.from_numpy(rgb_image), side=64)  # torch input
    assert torch.allclose(same.feats, part.feats)
    with pytest.raises(ValueError, match="patch size"):
        dense_partition(tiny_encoder, rgb_image, side=8)
    with pytest.raises(ValueError, match="uint8"):
        dense_partition(tiny_encoder, rgb_image.astype(np.float32), side=64)


def test_dense_partition_resnet(tiny_rn_encoder, rgb_image):
    part = dense_partition(tiny_rn_encoder, rgb_image, side=64)  # patch 32: 64 x 96 -> 2 x 3 cells
    assert part.index.shape == (2, 3) and part.feats.shape == (6, tiny_rn_encoder.embed_dim)


def test_render_dense_fuse_end_to_end(tiny_encoder):
    rng = np.random.default_rng(0)
    pts = rng.random((2000, 3)).astype(np.float32)
    pts[:, 2] = 0.1 * np.sin(4 * pts[:, 0])  # a height field: every point is on the visible surface
    cols = rng.integers(0, 256, (2000, 3), dtype=np.uint8)
    cams = plan_views(pts, n_around=3, elevations=(40,), size=(48, 64))

    def views():
        for cam in cams:
            r = render_points(pts, cols, cam.K, cam.pose, cam.size)
            yield FusionView(cam.K, cam.pose, r.depth, dense_partition(tiny_encoder, r.rgb, side=32))

    out = fuse_features(pts, views(), depth_tolerance=0.05)
    seen = out.seen
    assert out.features.shape == (2000, tiny_encoder.embed_dim)
    assert float(seen.float().mean()) > 0.9
    assert torch.allclose(out.features[seen].float().norm(dim=1), torch.ones(int(seen.sum())), atol=3e-3)
