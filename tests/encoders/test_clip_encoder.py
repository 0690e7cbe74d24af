"""CLIPEncoder on tiny random-weight open_clip models (real modules, no mocks)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from ovtools.encoders import CLIPEncoder
from ovtools.encoders.loading import resolve_device, resolve_precision
from ovtools.errors import UnknownNameError, WeightsUnavailableError
from tests.conftest import TINY_RN, TINY_VIT


def test_encode_images_shape_and_norm(tiny_encoder):
    imgs = [np.full((50, 80, 3), 100, np.uint8), np.zeros((1, 300, 3), np.uint8), np.zeros((300, 1, 3), np.uint8)]
    f = tiny_encoder.encode_images(imgs)
    assert f.shape == (3, 64) and f.dtype == torch.float32
    assert torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_batch_path_equals_raw_encode_image(tiny_encoder):
    """ovtools' preprocessing + batching gives what model.encode_image gives on the same tensor."""
    x = tiny_encoder.preprocess([np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)] * 3)
    ours = tiny_encoder.encode_images(x, batch_size=2)
    with torch.no_grad():
        raw = F.normalize(tiny_encoder.model.encode_image(x), dim=-1)
    assert torch.allclose(ours, raw, atol=1e-5)


def test_preprocess_matches_open_clip_transform(tiny_encoder):
    """Tensor preprocessing ≈ open_clip's PIL evaluation transform (resize shortest side + centre crop)."""
    from PIL import Image

    rng = np.random.default_rng(2)
    img = (rng.random((90, 130, 3)) * 40 + np.linspace(0, 200, 130)[None, :, None]).astype(np.uint8)
    tf = open_clip.image_transform(64, is_train=False)
    ref = tf(Image.fromarray(img))[None]
    ours = tiny_encoder.preprocess([img])
    assert ours.shape == ref.shape == (1, 3, 64, 64)
    assert (ours - ref).abs().mean() < 0.03


def test_encode_texts_and_truncation_warning(tiny_encoder):
    f = tiny_encoder.encode_texts(["a photo of a dog", "a photo of a cat"])
    assert f.shape == (2, 64)
    assert torch.allclose(f.norm(dim=-1), torch.ones(2), atol=1e-5)
    with pytest.warns(UserWarning, match="truncated"):
        long = tiny_encoder.encode_texts(["a very long label " * 20])
    assert long.shape == (1, 64) and torch.isfinite(long).all()


def test_empty_inputs(tiny_encoder):
    assert tiny_encoder.encode_texts([]).shape == (0, 64)
    assert tiny_encoder.encode_images([]).shape == (0, 64)


@pytest.mark.parametrize("name", [TINY_VIT, TINY_RN])
def test_dense_features_grid(name):
    enc = CLIPEncoder(name, None, device="cpu")
    x = torch.zeros(2, 3, 128, 96)
    d = enc.dense_features(x)
    ps = enc.patch_size
    assert d.shape == (2, 128 // ps, 96 // ps, 64)
    assert torch.allclose(d.norm(dim=-1), torch.ones(d.shape[:3]), atol=1e-4)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        enc.dense_features(torch.zeros(1, 3, 65, 64))


def test_dense_vit_uses_value_path(tiny_encoder):
    """On a 1×1 grid ViT, value-path features differ from the pooled class token but stay finite."""
    x = tiny_encoder.preprocess([np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)])
    d = tiny_encoder.dense_features(x)
    assert torch.isfinite(d).all() and d.shape == (1, 4, 4, 64)


def test_logit_scale_is_exp_of_parameter(tiny_encoder):
    assert tiny_encoder.logit_scale == pytest.approx(float(tiny_encoder.model.logit_scale.detach().exp()), rel=1e-6)


def test_precision_fallback_warns_on_cpu():
    with pytest.warns(UserWarning, match="falling back to fp32"):
        assert resolve_precision("fp16", torch.device("cpu")) == torch.float32
    assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", torch.device("cpu"))


def test_auto_precision_reads_the_cpu_flags():
    from ovtools.encoders.loading import auto_precision, bf16_unit_in_cpuinfo, cpu_bf16_units

    assert bf16_unit_in_cpuinfo("processor : 0\nflags : fpu sse avx512f avx512_bf16 avx2\n") == "avx512_bf16"
    assert bf16_unit_in_cpuinfo("flags : fpu amx_tile amx_bf16 avx512_bf16\n") == "amx_bf16"
    assert bf16_unit_in_cpuinfo("flags : fpu sse avx2 avx512f\n") is None
    assert bf16_unit_in_cpuinfo("no flags line") is None
    picked, why = auto_precision(torch.device("cpu"))
    assert picked == ("bf16" if cpu_bf16_units() else "fp32") and why
    assert resolve_precision("auto", torch.device("cpu")) == {"bf16": torch.bfloat16, "fp32": torch.float32}[picked]
    enc = CLIPEncoder(TINY_VIT, None, device="cpu")  # the default is auto
    assert enc.dtype == resolve_precision("auto", torch.device("cpu")) and enc.precision_note.startswith("auto → ")
    assert enc.model.logit_scale.dtype == torch.float32  # the temperature is never cast
    f = enc.encode_images([np.zeros((64, 64, 3), np.uint8)])
    assert f.dtype == torch.float32 and torch.allclose(f.norm(dim=-1), torch.ones(1))


def test_resnet_towers_run_channels_last_with_the_same_features(tiny_rn_encoder):
    x = torch.randn(3, 3, 64, 64)
    assert tiny_rn_encoder.channels_last
    with torch.no_grad():
        raw = F.normalize(tiny_rn_encoder.model.encode_image(x.contiguous()), dim=-1)
    assert torch.allclose(tiny_rn_encoder.encode_pixels(x), raw, atol=1e-5)


def test_bf16_encoder_runs_on_cpu():
    enc = CLIPEncoder(TINY_VIT, None, device="cpu", precision="bf16")
    assert enc.dtype == torch.bfloat16
    f = enc.encode_images([np.zeros((64, 64, 3), np.uint8)])
    assert f.dtype == torch.float32 and torch.isfinite(f).all()


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")


def test_unknown_model_and_tag_list_valid_names():
    with pytest.raises(UnknownNameError, match="unknown model 'ViT-Q-99'"):
        CLIPEncoder("ViT-Q-99", None, device="cpu")
    with pytest.raises(UnknownNameError, match="laion2b_s34b_b79k"):
        CLIPEncoder("ViT-B-32", "no_such_tag", device="cpu")


def test_missing_local_checkpoint():
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        CLIPEncoder(TINY_VIT, "/nowhere.safetensors", device="cpu")


def test_local_checkpoint_roundtrip(tmp_path, tiny_encoder):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_encoder.model.state_dict().items()}, str(path))
    enc = CLIPEncoder(TINY_VIT, str(path), device="cpu", precision="fp32")
    img = [np.full((64, 64, 3), 77, np.uint8)]
    assert torch.allclose(enc.encode_images(img), tiny_encoder.encode_images(img), atol=1e-6)
    assert enc.model_id != tiny_encoder.model_id or "w.safetensors" in enc.model_id


def test_checkpoint_of_other_architecture_is_clear_error(tmp_path, tiny_encoder):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_encoder.model.state_dict().items()}, str(path))
    with pytest.raises(WeightsUnavailableError, match="does not fit model"):
        CLIPEncoder(TINY_RN, str(path), device="cpu")


def test_random_inits_get_distinct_model_ids():
    a = CLIPEncoder(TINY_VIT, None, device="cpu")
    b = CLIPEncoder(TINY_VIT, None, device="cpu")
    assert a.model_id != b.model_id


@pytest.mark.parametrize("model,pretrained", [("ViT-B-32", "laion2b_s34b_b79k"),
                                              ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)])
def test_offline_download_fails_fast_with_instructions(model, pretrained, monkeypatch, tmp_path):
    """With the hub unreachable and nothing cached, loading fails in seconds and says how to use a local file."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr("ovtools.encoders.loading._hub_reachable", lambda timeout=3.0: False)
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as e:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CLIPEncoder(model, pretrained, device="cpu")
    assert time.monotonic() - t0 < 60
    msg = str(e.value)
    assert "not in the local cache" in msg and "--pretrained /path/to" in msg
    assert (pretrained or model) in msg
