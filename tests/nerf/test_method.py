"""The ovtools-field nerfstudio method: entry points, 2 CPU iterations offline, checkpoint loads and renders."""

from __future__ import annotations

import socket
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from .conftest import NEEDS_NERFSTUDIO

pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)
tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with tomllib (Python 3.11+)")

from nerfstudio.plugins.registry import discover_methods  # noqa: E402
from nerfstudio.plugins.types import MethodSpecification  # noqa: E402

from ovtools.nerf.method import METHOD_NAMES, make_config  # noqa: E402
from ovtools.nerf.model import OVFieldModel  # noqa: E402
from ovtools.nerf.train import load_run, train_field  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GROUP = "nerfstudio.method_configs"


def _declared() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return meta["project"]["entry-points"][GROUP]


def test_pyproject_declares_both_methods_and_their_objects_load():
    declared = _declared()
    assert set(declared) == set(METHOD_NAMES)
    for name, target in declared.items():
        module, attr = target.split(":")
        spec = getattr(__import__(module, fromlist=[attr]), attr)
        assert isinstance(spec, MethodSpecification)
        assert spec.config.method_name == name
        assert spec.description


def test_nerfstudio_registry_finds_the_methods_of_an_installed_distribution(tmp_path, monkeypatch):
    """A dist-info with the pyproject's entry points on sys.path is what `pip install ovtools` leaves behind."""
    dist = tmp_path / "ovtools_entrypoints_probe-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ovtools-entrypoints-probe\nVersion: 0.0\n")
    lines = [f"[{GROUP}]"] + [f"{k} = {v}" for k, v in _declared().items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert set(METHOD_NAMES) <= set(entry_points(group=GROUP).names)
    methods, descriptions = discover_methods()
    for name in METHOD_NAMES:
        assert methods[name].method_name == name
        assert "ovtools" in descriptions[name]


def test_make_config_names_the_valid_methods():
    with pytest.raises(ValueError, match="ovtools-field, ovtools-field-small"):
        make_config("ovtools-feld")
    small = make_config("ovtools-field-small")
    assert small.pipeline.datamanager.train_num_rays_per_batch < make_config("ovtools-field").pipeline.datamanager.train_num_rays_per_batch
    assert small.vis == "tensorboard"  # no viewer server, no wandb


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test (hub downloads, AlexNet for LPIPS, ZoeDepth, wandb)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")  # no cached AlexNet to hide a download


def _coarse_pyramid(config) -> None:
    """LERF's crop pyramid as targets (the default is masks), two coarse crop scales: ~40 crops per image instead
    of ~2000 (the test is about plumbing, not quality)."""
    config.pipeline.datamanager.clip_targets = "pyramid"
    config.pipeline.datamanager.pyramid_scales = (0.25, 0.4)
    config.pipeline.datamanager.pyramid_stride = 1.0


@pytest.fixture(scope="module")
def tiny_transforms_scene(rgbd_scene):
    _, folder = rgbd_scene
    return folder


def test_two_cpu_iterations_offline_then_the_checkpoint_loads_and_renders(tiny_transforms_scene, tmp_path,
                                                                          monkeypatch, no_network):
    monkeypatch.setenv("OVTOOLS_PYRAMID_DIR", str(tmp_path / "pyramids"))
    run = train_field(tiny_transforms_scene, tmp_path / "run", "ovtools-field-small", model="ovtools-shapes",
                      pretrained="shapes3d", max_iterations=2, quiet=True, configure=_coarse_pyramid)
    assert run == (tmp_path / "run").resolve()
    assert (run / "config.yml").is_file() and (run / "dataparser_transforms.json").is_file()
    assert list((run / "nerfstudio_models").glob("step-*.ckpt"))
    assert [p.name[:6] for p in (tmp_path / "pyramids").glob("*.safetensors")] != ["masks-"]
    assert len(list((tmp_path / "pyramids").glob("*.safetensors"))) == 1  # the pyramid was cached

    pipeline, step = load_run(run)
    assert step == 1
    model = pipeline.model
    assert isinstance(model, OVFieldModel) and model.lpips is None
    assert (model.config.encoder_model, model.config.encoder_pretrained) == ("ovtools-shapes", "shapes3d")
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.05], [0.3, 0.3, -0.1]])
    feats = model.language_at(pts, 0.1)
    assert feats.shape == (3, 128) and torch.allclose(feats.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(model.language_at(pts, 0.05), model.language_at(pts, 0.5))  # scale-conditioned
    dens = model.density_at(pts)
    assert dens.shape == (3,) and bool((dens >= 0).all())
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        model.language_at(torch.zeros(3, 2), 0.1)
    with pytest.raises(ValueError, match="scales"):
        model.language_at(pts, torch.ones(2))

    cam = pipeline.datamanager.train_dataparser_outputs.cameras[0:1]
    cam.rescale_output_resolution(0.25)
    out = model.get_outputs_for_camera(cam)
    h, w = int(cam.height), int(cam.width)
    assert out["rgb"].shape == (h, w, 3) and out["depth"].shape == (h, w, 1)
    assert out["clip"].shape == (h, w, 128)
    assert torch.allclose(out["clip"].norm(dim=-1), torch.ones(h, w), atol=1e-4)
    assert bool(torch.isfinite(out["rgb"]).all())
    model.render_language = False
    assert "clip" not in model.get_outputs_for_camera(cam)

    # a second run on the same images and CLIP reuses the cached pyramid
    train_field(tiny_transforms_scene, tmp_path / "run2", "ovtools-field-small", model="ovtools-shapes",
                pretrained="shapes3d", max_iterations=1, quiet=True, configure=_coarse_pyramid)
    assert len(list((tmp_path / "pyramids").glob("*.safetensors"))) == 1


def test_train_field_refuses_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_field(tmp_path / "missing", tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="transforms.json"):
        train_field(tmp_path / "empty", tmp_path / "run")
    with pytest.raises(ValueError, match="max_iterations"):
        train_field(tmp_path / "empty", tmp_path / "run", max_iterations=0)
    with pytest.raises(ValueError, match="unknown method"):
        train_field(tmp_path / "empty", tmp_path / "run", "nerfacto")
    with pytest.raises(FileNotFoundError, match="config.yml"):
        load_run(tmp_path)



def test_field_train_command_trains_on_mask_targets_and_shows_its_own_progress(tiny_run):
    """The default targets are masks (cached beside the run's other caches); piped, the command prints plain
    progress lines, not nerfstudio's per-step table redrawn with terminal escapes."""
    targets = list((tiny_run.parent / "pyramid").glob("*.safetensors"))
    assert [p.name.startswith("masks-") for p in targets] == [True]
    printed = (tiny_run.parent / "train-output.txt").read_text()
    assert "field train: 2/2 steps" in printed
    assert "CLIP mask targets of 7 images" in printed
    assert "\x1b[" not in printed and "Step (% Done)" not in printed


def test_method_module_imports_first_in_a_fresh_process():
    """Importing nerfstudio's method table scans the entry points, which load ovtools.nerf.method: imported at
    the top of that module it was a circular import whenever ovtools.nerf.method was the first nerf import."""
    import subprocess
    import sys

    code = "import ovtools.nerf.method as m; print(sorted(m.METHOD_NAMES))"
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ovtools-field-small" in res.stdout


def test_embedding_size_of_an_hf_hub_model_comes_from_the_local_hub_cache(tmp_path, monkeypatch):
    """hf-hub: ids have no open_clip architecture name: the size is read from the cached open_clip_config.json
    (never downloaded); a model not in the cache is a clear error naming the setting."""
    import json

    import huggingface_hub.constants

    from ovtools.nerf.model import OVFieldModelConfig, clip_embed_dim

    snap = tmp_path / "models--someorg--tiny-clip" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 384}}))
    (tmp_path / "models--someorg--tiny-clip" / "refs").mkdir()
    (tmp_path / "models--someorg--tiny-clip" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert clip_embed_dim(OVFieldModelConfig(encoder_model="hf-hub:someorg/tiny-clip")) == 384
    assert clip_embed_dim(OVFieldModelConfig(encoder_model="hf-hub:someorg/tiny-clip", embed_dim=16)) == 16
    assert clip_embed_dim(OVFieldModelConfig(encoder_model="ovtools-shapes")) == 128
    with pytest.raises(ValueError, match="not in the local Hugging Face cache.*embed-dim"):
        clip_embed_dim(OVFieldModelConfig(encoder_model="hf-hub:someorg/other"))


def test_with_depth_the_language_field_trains_at_the_measured_surface_point(tiny_run):
    """Mask targets + depth images: in training a ray's CLIP feature is the language field at origin + depth x
    directions_norm along the ray (not the blurred mix of its highest-weight samples); rays without depth
    (0) keep the rendered mix."""
    import torch.nn.functional as F
    from nerfstudio.cameras.rays import RayBundle

    pipeline, _ = load_run(tiny_run)
    model = pipeline.model
    torch.manual_seed(0)
    with torch.no_grad():  # 2 iterations leave the field almost constant in space: make it vary
        for prm in model.language_field.parameters():
            prm.add_(torch.randn_like(prm))
    n = 4
    origins = torch.tensor([[0.0, 0.0, 0.8]]).repeat(n, 1)
    directions = F.normalize(torch.tensor([[0.1, 0.0, -1.0], [0.0, 0.1, -1.0], [-0.1, 0.0, -1.0], [0.0, 0.0, -1.0]]))
    depth = torch.tensor([[0.5], [0.0], [0.7], [0.3]])
    norm = torch.full((n, 1), 1.2)
    bundle = RayBundle(origins=origins, directions=directions, pixel_area=torch.full((n, 1), 1e-4),
                       camera_indices=torch.zeros(n, 1, dtype=torch.long), nears=torch.full((n, 1), 0.05),
                       fars=torch.full((n, 1), 2.0), metadata={"clip_depth": depth, "directions_norm": norm})
    model.train()
    try:
        clip = model.get_outputs(bundle)["clip"]
    finally:
        model.eval()
    surface = origins + directions * depth * norm
    want = model.language_at(surface, model.config.default_query_scale)
    for i in (0, 2, 3):
        assert torch.allclose(clip[i], want[i], atol=1e-5)
    assert not torch.allclose(clip[1], want[1], atol=1e-3)  # no depth: the rendered mix of samples
    assert torch.allclose(clip.norm(dim=-1), torch.ones(n), atol=1e-5)
