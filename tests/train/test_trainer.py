"""Contrastive trainer: losses, seeded batches, a few steps on a tiny model, resume, loading the result."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ovtools.datasets.export import write_captions, write_classification
from ovtools.train import SupConClipLoss, TrainConfig, label_targets, resolve_loss, train
from ovtools.train.data import BatchSource, load_table

TINY_RN = "ovtools-test-rn"  # tests/assets, registered by tests/conftest.py


@pytest.fixture(scope="module")
def caption_csv(tmp_path_factory):
    out = write_captions(tmp_path_factory.mktemp("mix") / "mix", 24, seed=0, size=64)
    return out / "captions.csv"


def _cfg(csv, out, **kw):
    base = dict(data=str(csv), model=TINY_RN, out=str(out), steps=2, batch_size=8, lr=1e-3, save_every=0,
                log_every=1, threads=1, device="cpu", warmup=1)
    base.update(kw)
    return TrainConfig(**base)


def test_label_targets_primary_and_secondary_weights():
    cap = torch.tensor([0, 0, 1, 2])
    img = torch.tensor([[0, 2], [0, 2], [1, 2], [1, 2]])  # labels: 0 red star, 1 blue star, 2 "object"
    t = label_targets(cap, img, 0.1)
    assert t[0].tolist() == pytest.approx([1, 1, 0, 0.1]) and t[2].tolist() == pytest.approx([0, 0, 1, 0.1])
    assert t[3].tolist() == pytest.approx([0, 0, 1, 0.1])  # its own caption says "object": secondary
    with pytest.raises(ValueError, match="row 0"):
        label_targets(torch.tensor([5, 0]), torch.tensor([[0], [0]]), 0.1)


def test_supcon_with_identity_targets_equals_clip_loss():
    from open_clip.loss import ClipLoss

    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    b = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    scale = torch.tensor(10.0)
    assert SupConClipLoss()(a, b, scale, torch.eye(6)) == pytest.approx(float(ClipLoss()(a, b, scale)), rel=1e-5)


def test_resolve_loss():
    assert resolve_loss("auto", has_labels=False, captions_repeat=False) == "clip"
    assert resolve_loss("auto", has_labels=False, captions_repeat=True) == "supcon-clip"
    assert resolve_loss("clip", has_labels=True, captions_repeat=True) == "clip"
    with pytest.raises(ValueError, match="unknown loss"):
        resolve_loss("triplet", False, False)


def test_batches_are_a_pure_function_of_seed_and_step(caption_csv):
    import open_clip

    table = load_table(caption_csv)
    tok = open_clip.get_tokenizer(TINY_RN)
    mk = lambda: BatchSource(table, tok, 64, (0.5,) * 3, (0.25,) * 3, batch_size=8, seed=3)  # noqa: E731
    s1, s2 = mk(), mk()
    for step in (5, 0, 2):  # any order
        a, b = s1.batch(step), s2.batch(step)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    x, tokens, targets = s1.batch(0)
    assert x.shape == (8, 3, 64, 64) and tokens.shape[0] == 8 and targets.shape == (8, 8)
    assert bool((targets.diagonal() > 0).all())


def test_train_two_steps_finite_and_loss_decreases(caption_csv, tmp_path):
    r = train(_cfg(caption_csv, tmp_path / "run", steps=6, batch_size=24, augment=False), progress=False)
    assert r.loss_name == "supcon-clip" and r.step == 6 and len(r.losses) == 6
    assert all(torch.isfinite(torch.tensor(r.losses)))
    assert r.losses[-1] < r.losses[0]
    for name in ("checkpoint.safetensors", "checkpoint.json", "checkpoint.optim.pt", "model.safetensors",
                 "model.json", "log.jsonl"):
        assert (tmp_path / "run" / name).is_file()
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 6


def test_resume_matches_an_uninterrupted_run(caption_csv, tmp_path):
    full = train(_cfg(caption_csv, tmp_path / "full", steps=4), progress=False)
    part = train(_cfg(caption_csv, tmp_path / "part", steps=4, stop_after=2), progress=False)
    assert part.step == 2
    resumed = train(_cfg(caption_csv, tmp_path / "part", steps=4, resume=str(tmp_path / "part")), progress=False)
    assert resumed.step == 4 and len(resumed.losses) == 2
    assert resumed.losses == pytest.approx(full.losses[2:], rel=1e-4)
    a, b = load_file(str(full.model_path)), load_file(str(resumed.model_path))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_checkpoint_loads_with_clip_encoder_fp16(caption_csv, tmp_path):
    from ovtools.encoders import CLIPEncoder

    r = train(_cfg(caption_csv, tmp_path / "run", save_dtype="fp16"), progress=False)
    sd = load_file(str(r.model_path))
    assert sd["logit_scale"].dtype == torch.float16
    enc = CLIPEncoder(TINY_RN, str(r.model_path), device="cpu")
    f = enc.encode_texts(["a red star"])
    assert f.dtype == torch.float32 and torch.isfinite(f).all()


def test_image_folder_training(tmp_path):
    folder = write_classification(tmp_path / "cls", 8, seed=0, size=64)
    table = load_table(folder)
    assert table.captions[0].startswith("a photo of a ") and table.has_labels
    r = train(_cfg(folder, tmp_path / "run", steps=1, batch_size=4), progress=False)
    assert r.loss_name == "supcon-clip"


def test_train_cli_usage_errors(tmp_path, caption_csv):
    from typer.testing import CliRunner

    from ovtools.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["train", str(tmp_path / "missing.csv"), "--model", TINY_RN, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "missing.csv" in r.output
    r = runner.invoke(app, ["train", str(caption_csv), "--model", "no-such-net", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no-such-net" in r.output
    r = runner.invoke(app, ["train", str(caption_csv), "--model", TINY_RN, "--out", str(tmp_path / "o"),
                            "--steps", "1", "--batch-size", "4", "--quiet", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "model.safetensors").is_file()


def test_dense_loss_features_match_the_dense_module_and_train(caption_csv, tmp_path):
    from ovtools.encoders.dense import dense_patch_features
    from ovtools.encoders.loading import load_clip
    from ovtools.train.trainer import image_and_dense_features

    torch.manual_seed(0)
    visual = load_clip(TINY_RN, None, device="cpu").model.visual
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        g, d = image_and_dense_features(visual, x)
        assert torch.allclose(g, visual(x), atol=1e-5)
        assert torch.allclose(d, dense_patch_features(visual, x).mean((1, 2)), atol=1e-5)
    r = train(_cfg(caption_csv, tmp_path / "run", dense_weight=0.5), progress=False)
    assert all(torch.isfinite(torch.tensor(r.losses)))


@pytest.mark.quality
def test_shipped_model_zero_shot_on_held_out_images():
    from ovtools.datasets.export import SHAPES_TEMPLATES
    from ovtools.datasets.shapes import CLASS_NAMES, generate_classification
    from ovtools.encoders import CLIPEncoder
    from ovtools.resources import checkpoints_dir

    if not (checkpoints_dir() / "ovtools-shapes.safetensors").is_file():
        pytest.skip("shipped checkpoint not built (scripts/train_shapes_model.sh)")
    enc = CLIPEncoder("ovtools-shapes", "shapes", device="cpu")
    scenes = list(generate_classification(128, seed=4242))
    f = enc.encode_images([s.image for s in scenes])
    t = enc.encode_texts([SHAPES_TEMPLATES[1].replace("{}", n) for n in CLASS_NAMES])
    y = torch.tensor([s.objects[0].class_id for s in scenes])
    assert float(((f @ t.T).argmax(1) == y).float().mean()) >= 0.97
