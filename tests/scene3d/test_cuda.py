"""The scene3d code on a CUDA device gives the CPU's results (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovtools.scene3d import (
    FeaturePartition,
    RGBDFrame,
    backproject_rgbd,
    ensemble_features,
    fuse_features,
    plan_views,
    render_points,
    train_distill,
)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _cloud(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.random((n, 3)).astype(np.float32) * [3, 2, 1]
    pts[:, 2] = 0.2 * np.sin(3 * pts[:, 0]) + 0.5 * (pts[:, 1] > 1)
    return pts, rng.integers(0, 256, (n, 3), dtype=np.uint8)


def test_render_and_fuse_match_cpu():
    pts, cols = _cloud()
    cam = plan_views(pts, n_around=1, elevations=(40,), top_down=False, size=(120, 160))[0]
    cpu = render_points(pts, cols, cam.K, cam.pose, cam.size, point_size_m=0.03)
    gpu = render_points(torch.from_numpy(pts).cuda(), cols, cam.K, cam.pose, cam.size, point_size_m=0.03)
    assert gpu.index.is_cuda
    assert (gpu.index.cpu() == cpu.index).float().mean() > 0.999  # float rounding may flip rare ties
    part = FeaturePartition(torch.arange(12).view(3, 4), torch.randn(12, 32))
    a = fuse_features(pts, [(cam.K, cam.pose, cpu.depth, part)])
    b = fuse_features(torch.from_numpy(pts).cuda(), [(cam.K, cam.pose, cpu.depth.cuda(), part)])
    assert b.features.is_cuda
    assert (a.count == b.count.cpu()).float().mean() > 0.999
    both = a.seen & b.seen.cpu()
    assert torch.allclose(a.features[both].float(), b.features.cpu()[both].float(), atol=2e-3)


def test_distill_and_ensemble_on_cuda():
    pts, cols = _cloud(8000)
    p = torch.from_numpy(pts)
    target = torch.nn.functional.normalize(torch.cat([torch.sin(3 * p), torch.cos(2 * p)], 1), dim=1).half().cuda()
    model = train_distill(pts, cols, target, steps=200, seed=0)
    assert next(model.parameters()).is_cuda
    pred = model.predict(pts, cols)
    assert pred.is_cuda and float((pred.float() * target.float()).sum(1).mean()) > 0.9
    out = ensemble_features(target, pred, torch.eye(6, device="cuda")[:3])
    assert out.is_cuda and out.dtype == torch.float16


def test_backproject_on_cuda_matches_cpu():
    K = np.array([[50.0, 0, 29.5], [0, 50.0, 19.5], [0, 0, 1]])
    rng = np.random.default_rng(0)
    f = RGBDFrame(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), rng.uniform(1, 3, (40, 60)).astype(np.float32),
                  np.eye(4), K, K)
    a, ca = backproject_rgbd([f], voxel_size=0.05)
    b, cb = backproject_rgbd([f], voxel_size=0.05, device="cuda")
    assert np.allclose(a, b, atol=1e-5) and np.array_equal(ca, cb)


def test_colour_camera_fusion_and_survey_backprojection_on_cuda():
    """Issue 10: the colour-camera mapping (own K, size, extrinsic) and survey-coordinate poses on CUDA."""
    kd = np.array([[50.0, 0, 29.5], [0, 50.0, 19.5], [0, 0, 1]])
    kc = np.array([[70.0, 0, 42.0], [0, 70.0, 27.0], [0, 0, 1]])
    e = np.eye(4)
    e[0, 3] = -0.05
    rng = np.random.default_rng(0)
    pose = np.eye(4)
    pose[:3, 3] = (512345.0, 5412345.0, 310.0)
    f = RGBDFrame(rng.integers(0, 256, (56, 80, 3), dtype=np.uint8), rng.uniform(1, 3, (40, 60)).astype(np.float32),
                  pose, kc, kd, "0", e)
    a, ca = backproject_rgbd([f], voxel_size=0.05)
    b, cb = backproject_rgbd([f], voxel_size=0.05, device="cuda")
    assert np.allclose(a, b, atol=1e-5)
    # the colour camera's pixel is floor(x + 0.5) of a float32 projection: the GPU's fused multiply-adds
    # may round a point lying on a pixel border to the neighbouring pixel (seen on an H200)
    assert (ca == cb).all(1).mean() > 0.99
    local = (a - pose[:3, 3]).astype(np.float32)
    part = FeaturePartition(torch.arange(80).repeat(56, 1), torch.eye(80))
    view = (kd, np.eye(4), f.depth, part, kc, (56, 80), e)
    x = fuse_features(local, [view], depth_tolerance=0.1)
    y = fuse_features(torch.from_numpy(local).cuda(), [(kd, np.eye(4), torch.from_numpy(f.depth).cuda(), part,
                                                        kc, (56, 80), e)], depth_tolerance=0.1)
    assert y.features.is_cuda and (x.count == y.count.cpu()).float().mean() > 0.999
    assert (x.features.float().argmax(1) == y.features.cpu().float().argmax(1)).float().mean() > 0.999
