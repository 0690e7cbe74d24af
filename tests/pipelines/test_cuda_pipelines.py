"""The pipelines on a CUDA device: `precision: auto`, CPU-equal results in fp32, SAM beside the encoder.

Skipped without a GPU (marker ``gpu``: ``pytest -m gpu`` on a machine with CUDA).  The shipped
evaluation-world model and generated held-out scenes (seed 2002), so the figures compared are the
ones the README reports on the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ovtools.datasets.shapes import generate_scenes
from ovtools.encoders import CLIPEncoder
from ovtools.encoders.loading import auto_precision
from ovtools.pipelines import ClassifyPipeline, DetectPipeline, SegmentPipeline

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def scenes():
    return [s.image for s in generate_scenes(6, seed=2002)]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def _matched(ref, other) -> float:
    """Fraction of ``ref``'s detections that ``other`` has too: same label, box IoU >= 0.9."""
    if len(ref.xyxy) == 0:
        return 1.0
    if len(other.xyxy) == 0:
        return 0.0
    iou = _iou(ref.xyxy, other.xyxy)
    same = ref.class_id[:, None] == other.class_id[None]
    return float(((iou >= 0.9) & same).any(1).mean())


def test_auto_precision_on_cuda_picks_bf16_or_fp16():
    prec, why = auto_precision(torch.device("cuda"))
    assert prec == ("bf16" if torch.cuda.is_bf16_supported() else "fp16") and "CUDA" in why
    enc = CLIPEncoder("ovtools-shapes", "shapes", device="auto", precision="auto")
    assert enc.device.type == "cuda" and enc.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[prec]
    x = enc.encode_images([np.zeros((64, 64, 3), np.uint8)])
    assert x.dtype == torch.float32 and x.device.type == "cpu"  # encode_images documents CPU float32 output
    assert torch.allclose(x.norm(dim=-1), torch.ones(1), atol=1e-3)


def test_detect_fp32_on_cuda_matches_cpu(scenes):
    cpu, gpu = DetectPipeline("detect-shapes", device="cpu"), DetectPipeline("detect-shapes", device="cuda")
    assert gpu.encoder.device.type == "cuda" and gpu.encoder.dtype == torch.float32
    n = 0
    for image in scenes:
        a, b = cpu(image), gpu(image)
        n += len(a.xyxy)
        assert _matched(a, b) >= 0.99 and _matched(b, a) >= 0.99
        if len(a.xyxy) == len(b.xyxy):
            np.testing.assert_allclose(np.sort(a.confidence), np.sort(b.confidence), atol=0.02)
    assert n >= 10  # the scenes have objects and the model finds them


def test_detect_auto_precision_on_cuda_finds_the_same_objects(scenes):
    cpu = DetectPipeline("detect-shapes", device="cpu")
    gpu = DetectPipeline("detect-shapes", device="cuda", precision="auto")
    assert gpu.encoder.dtype in (torch.bfloat16, torch.float16)
    found = [_matched(cpu(im), gpu(im)) for im in scenes]
    assert np.mean(found) >= 0.8, found


@pytest.mark.parametrize("scoring", ["crop", "dense", "cascade"])
def test_every_detect_scoring_runs_on_cuda(scenes, scoring):
    det = DetectPipeline("detect-shapes", device="cuda", scoring=scoring)(scenes[0])
    assert det.xyxy.dtype == np.float32 and np.isfinite(det.xyxy).all() and len(det.xyxy) >= 1
    h, w = scenes[0].shape[:2]
    assert (det.xyxy[:, [0, 2]] <= w).all() and (det.xyxy[:, [1, 3]] <= h).all()


def test_segment_on_cuda_matches_cpu(scenes):
    cpu, gpu = SegmentPipeline("segment-shapes", device="cpu"), SegmentPipeline("segment-shapes", device="cuda")
    for image in scenes[:3]:
        a, b = cpu(image).label_map(), gpu(image).label_map()
        assert (a == b).mean() >= 0.98


def test_classify_on_cuda_matches_cpu(scenes):
    cpu, gpu = ClassifyPipeline("classify-shapes", device="cpu"), ClassifyPipeline("classify-shapes", device="cuda")
    crops = [im[40:120, 40:120] for im in scenes]
    a, b = cpu.classify_batch(crops), gpu.classify_batch(crops)
    assert np.array_equal(a.class_id[:, 0], b.class_id[:, 0])
    np.testing.assert_allclose(a.confidence, b.confidence, atol=0.01)


def test_sam_proposals_run_on_the_encoders_gpu(scenes):
    pytest.importorskip("segment_anything")
    from ovtools.proposals.sam import build_tiny_sam

    loose = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "max_side": 256}
    pipe = SegmentPipeline("segment-shapes", device="cuda", proposals="sam",
                           proposal_options={"model": build_tiny_sam(), **loose})
    assert next(pipe.head.source.model.parameters()).is_cuda  # not left on the CPU beside a GPU encoder
    out = pipe(scenes[0])
    assert out.mask is not None and out.mask.shape[1:] == scenes[0].shape[:2]
    cpu = SegmentPipeline("segment-shapes", device="cpu", proposals="sam",
                          proposal_options={"model": build_tiny_sam(), **loose})
    assert next(cpu.head.source.model.parameters()).device.type == "cpu"


def test_cli_detect_on_cuda(tmp_path, scenes):
    from PIL import Image

    Image.fromarray(scenes[0]).save(tmp_path / "a.png")
    r = subprocess.run([sys.executable, "-m", "ovtools", "detect", str(tmp_path / "a.png"), "--preset", "detect-shapes",
                        "--device", "cuda", "--precision", "auto", "-o", str(tmp_path / "a.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "a.png" in (tmp_path / "a.json").read_text() and json.loads((tmp_path / "a.json").read_text())
