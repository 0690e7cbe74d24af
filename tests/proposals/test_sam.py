"""SAM mask proposals and box segmenter, on a tiny random-weight SAM (no real weights)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("segment_anything")

import torch  # noqa: E402

from ovtools.errors import UnknownNameError, WeightsUnavailableError  # noqa: E402
from ovtools.proposals import available_proposals, create_proposals  # noqa: E402
from ovtools.proposals.sam import (  # noqa: E402
    SAM_CHECKPOINT_URLS, SamBoxSegmenter, SamMaskProposals, build_tiny_sam, load_sam,
)

LOOSE = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_sam(img_size=256, seed=0)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _spy(obj, name, calls):
    orig = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return orig(*args, **kwargs)

    setattr(obj, name, wrapper)


def test_registry_builds_sam(tiny):
    assert "sam" in available_proposals()
    src = create_proposals("sam", model=tiny, **LOOSE)
    assert isinstance(src, SamMaskProposals) and src.output == "masks"
    assert src.model is tiny


@pytest.mark.slow
def test_masks_at_input_size_non_square(tiny):
    src = create_proposals("sam", model=tiny, max_side=256, **LOOSE)
    image = _image(200, 300)
    masks, scores = src.propose(image)
    assert masks.dtype == bool and masks.shape[1:] == (200, 300) and len(masks) > 0
    assert scores.dtype == np.float32 and scores.shape == (len(masks),) and np.isfinite(scores).all()
    assert np.all(np.diff(scores) <= 0)
    assert np.array_equal(src(image), masks)


def test_ranking_cap_and_upsampling(tiny):
    from segment_anything.utils.amg import mask_to_rle_pytorch

    src = SamMaskProposals(model=tiny, max_side=50, max_masks=2, **LOOSE)
    work = torch.zeros(3, 50, 100, dtype=torch.bool)  # SAM sees 50 x 100 for a 100 x 200 image
    work[0, 10:20, 10:30] = True
    work[1, 0:50, 50:100] = True
    work[2, 5:6, 5:6] = True
    rles = mask_to_rle_pytorch(work)
    quality = [(0.5, 0.9), (0.9, 0.9), (0.9, 0.1)]  # products 0.45, 0.81, 0.09
    src.generator.generate = lambda im: [
        {"segmentation": r, "predicted_iou": i, "stability_score": s} for r, (i, s) in zip(rles, quality)]
    masks, scores = src.propose(_image(100, 200))
    np.testing.assert_allclose(scores, [0.81, 0.45], rtol=1e-6)
    expect = np.zeros((2, 100, 200), bool)
    expect[0, :, 100:] = True
    expect[1, 20:40, 20:60] = True
    assert masks.shape == (2, 100, 200)
    assert (masks != expect).mean() < 0.01  # only boundary pixels may differ


def test_no_masks_gives_empty_array(tiny):
    src = SamMaskProposals(model=tiny, points_per_side=2, pred_iou_thresh=1.0)
    masks, scores = src.propose(_image(40, 60))
    assert masks.shape == (0, 40, 60) and masks.dtype == bool and scores.shape == (0,)


@pytest.mark.slow
def test_large_image_is_downscaled(tiny):
    src = SamMaskProposals(model=tiny, max_side=256, max_masks=3, **LOOSE)
    seen = []
    _spy(src.generator, "generate", seen)
    masks = src(_image(1500, 2000))
    assert seen[0][0][0].shape == (192, 256, 3)
    assert masks.shape[1:] == (1500, 2000) and 0 < len(masks) <= 3


def test_box_segmenter_shapes_and_box_scaling(tiny):
    seg = SamBoxSegmenter(model=tiny, max_side=200, boxes_per_batch=2)
    images, prompts = [], []
    _spy(seg.predictor, "set_image", images)
    _spy(seg.predictor, "predict_torch", prompts)
    boxes = np.array([[0, 0, 400, 300], [40, 20, 120, 100], [100, 100, 300, 250]], np.float32)
    masks = seg(_image(300, 400), boxes)
    assert masks.shape == (3, 300, 400) and masks.dtype == bool
    assert images[0][0][0].shape == (150, 200, 3)  # downscaled by 0.5 before SAM
    assert len(prompts) == 2  # batches of 2 boxes
    sent = torch.cat([kw["boxes"] for _, kw in prompts]).numpy()
    np.testing.assert_allclose(sent, boxes * 0.5 * (256 / 200), rtol=1e-5)  # then SAM's resize to 256


def test_box_segmenter_empty_and_invalid(tiny):
    seg = SamBoxSegmenter(model=tiny)
    image = _image(30, 40)
    assert seg(image, np.zeros((0, 4))).shape == (0, 30, 40)
    assert seg(image, []).shape == (0, 30, 40)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        seg(image, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="finite"):
        seg(image, [[0, 0, np.nan, 5]])
    with pytest.raises(ValueError, match=r"x_max >= x_min.*\[1\]"):
        seg(image, [[0, 0, 5, 5], [9, 0, 5, 5]])
    with pytest.raises(ValueError, match="uint8"):
        seg(image.astype(np.float32), [[0, 0, 5, 5]])


@pytest.mark.slow
def test_thread_safety(tiny):
    seg = SamBoxSegmenter(model=tiny, max_side=64)
    src = SamMaskProposals(model=tiny, max_side=64, **LOOSE)
    images = [_image(48 + 8 * i, 64 - 4 * i, seed=i) for i in range(6)]
    boxes = np.array([[2, 2, 30, 30], [10, 5, 40, 44]], np.float32)
    expected = [(seg(im, boxes), src(im)) for im in images]
    results: dict[int, tuple] = {}
    errors = []

    def work(idx):
        try:
            for i in idx:
                results[i] = (seg(images[i], boxes), src(images[i]))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(range(k, 6, 2),)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 6
    for i, (b, m) in enumerate(expected):
        assert np.array_equal(results[i][0], b) and np.array_equal(results[i][1], m)


@pytest.mark.parametrize("model_type", ["vit_b", "vit_h"])
def test_missing_checkpoint_explains_download(tmp_path, model_type):
    for ckpt in (None, tmp_path / "nope.pth"):
        with pytest.raises(WeightsUnavailableError) as err:
            load_sam(ckpt, model_type=model_type)
        msg = str(err.value)
        assert SAM_CHECKPOINT_URLS[model_type] in msg and model_type in msg
        assert "sam_checkpoint=" in msg and "--sam-checkpoint" in msg and "downloaded" in msg
    assert "nope.pth" in msg
    with pytest.raises(WeightsUnavailableError, match="sam_vit_b_01ec64"):
        create_proposals("sam")


def test_unknown_model_type_lists_names():
    with pytest.raises(UnknownNameError, match=r"vit_x.*'vit_b', 'vit_h', 'vit_l'"):
        load_sam("whatever.pth", model_type="vit_x")


def test_bad_checkpoints_name_the_file(tmp_path, tiny):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="junk.pth.*cannot be read"):
        load_sam(junk)
    other = tmp_path / "tiny.pth"
    torch.save(tiny.state_dict(), other)
    with pytest.raises(WeightsUnavailableError, match="tiny.pth does not fit model_type 'vit_b'"):
        load_sam(other, model_type="vit_b")


def test_checkpoint_round_trip(tmp_path, tiny, monkeypatch):
    import segment_anything

    path = tmp_path / "sam.pth"
    torch.save(tiny.state_dict(), path)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", lambda checkpoint=None: build_tiny_sam(seed=1))
    loaded = load_sam(str(path))
    assert not loaded.training
    for (name, a), b in zip(tiny.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.pixel_mean, tiny.pixel_mean)
    assert load_sam(tiny) is tiny  # a built model is passed through


def test_model_type_checked_and_import_errors(tiny, monkeypatch):
    with pytest.raises(TypeError, match="Sam instance"):
        SamBoxSegmenter(model="vit_b")
    with pytest.raises(ValueError, match="points_per_side"):
        SamMaskProposals(model=tiny, points_per_side=0)
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(ImportError, match=r'pip install "ovtools\[sam\]"'):
        SamMaskProposals(model=tiny)


@pytest.mark.slow
def test_segment_anything_imported_lazily():
    code = "import sys, ovtools.proposals; print('segment_anything' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.stdout.strip() == "False", out.stderr


def test_empty_checkpoint_is_named(tmp_path):
    """An empty .pth used to crash the error handler itself (IndexError on an empty message)."""
    from ovtools.errors import WeightsUnavailableError, first_line
    from ovtools.proposals.sam import load_sam

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsUnavailableError, match="empty file"):
        load_sam(empty)
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(ValueError("a\nb")) == "ValueError: a"


def test_heads_run_sam_on_their_encoders_device(tiny, tiny_encoder, monkeypatch):
    """SAM beside a GPU encoder must not stay on the CPU: the heads pass the encoder's device (checked on a
    GPU in tests/pipelines/test_cuda_pipelines.py); an explicit ``device`` option wins; other sources ignore it."""
    import ovtools.proposals.sam as sam_mod
    from ovtools.pipelines import SegmentPipeline

    seen = []
    real = sam_mod.load_sam
    monkeypatch.setattr(sam_mod, "load_sam", lambda m, t, device: seen.append(device) or real(m, t, "cpu"))
    SegmentPipeline(encoder=tiny_encoder, labels="a, b", templates="single", proposals="sam",
                    proposal_options={"model": tiny, **LOOSE})
    SegmentPipeline(encoder=tiny_encoder, labels="a, b", templates="single", proposals="sam",
                    proposal_options={"model": tiny, "device": "cpu", **LOOSE})
    assert seen == [tiny_encoder.device, torch.device("cpu")]
    assert create_proposals("segments", default_device="cuda:7").max_boxes == 500  # no device option: ignored
    assert sam_mod.SamMaskProposals.__init__.__defaults__[-1] == "auto"


def test_sam_never_runs_on_mps(tiny, monkeypatch):
    """segment-anything's mask generator makes float64 tensors, which MPS lacks: an MPS encoder keeps SAM on the CPU."""
    import ovtools.proposals.sam as sam_mod

    monkeypatch.setattr(sam_mod, "resolve_device",  # a Mac: "auto" and "mps" mean the Apple GPU
                        lambda device: torch.device("mps" if str(device) in ("auto", "mps") else device))
    seen = []
    real = sam_mod.load_sam
    monkeypatch.setattr(sam_mod, "load_sam", lambda m, t, device: seen.append(device) or real(m, t, "cpu"))
    create_proposals("sam", model=tiny, default_device="mps", **LOOSE)
    create_proposals("sam", model=tiny, **LOOSE)  # device "auto"
    assert seen == [torch.device("cpu")] * 2


def test_sam_options_out_of_range_and_devices_are_named(tiny):
    """Thresholds outside [0, 1] or NaN silently kept or dropped every mask; a bad SAM device (in a preset's
    proposal_options, next to the pipeline's own device) and a checkpoint that is no path are named."""
    cases = [
        ({"pred_iou_thresh": float("nan")}, ValueError, "sam: pred_iou_thresh must be a finite number >= 0"),
        ({"stability_score_thresh": 5}, ValueError, "sam: stability_score_thresh"),
        ({"box_nms_thresh": -1}, ValueError, "sam: box_nms_thresh must be a finite number > 0 and <= 1, got -1"),
        ({"device": "nonsense"}, ValueError, "SAM device='nonsense' is not a torch device"),
        ({"device": "meta"}, ValueError, "SAM device='meta'"),
    ]
    if not torch.cuda.is_available():
        cases.append(({"device": "cuda"}, ValueError, "SAM device='cuda' asked for but CUDA is not available"))
    for options, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            create_proposals("sam", model=tiny, **options)
    with pytest.raises(TypeError, match=re.escape("option checkpoint=5 must be str | Path | None")):
        create_proposals("sam", checkpoint=5)
