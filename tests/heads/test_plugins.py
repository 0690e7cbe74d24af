"""Plug-ins through the entry-point groups, and every registered head and proposal source built and run.

The plug-in is a real distribution on ``sys.path`` (a module plus a ``.dist-info`` folder with
``entry_points.txt``), found by :mod:`importlib.metadata` exactly as an installed package would be;
nothing is pip-installed and nothing is mocked.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ovtools.heads import HEADS, available_heads, create_head, head_spec
from ovtools.proposals import PROPOSALS, available_proposals, create_proposals
from ovtools.proposals.sam import build_tiny_sam
from ovtools.structures import Classifications, Detections, PointLabels

from ..conftest import TINY_VIT

PLUGIN = textwrap.dedent('''
    """A head and a proposal source from another package (the test's plug-in)."""
    from dataclasses import dataclass
    from typing import Literal

    import numpy as np

    from ovtools.config import Config, setting
    from ovtools.heads import HeadSpec, open_set_scores
    from ovtools.io.images import as_loaded
    from ovtools.structures import Detections


    class WholeImage:
        """Box proposals: the whole image (the simplest box source)."""

        def __call__(self, image):
            h, w = image.shape[:2]
            return np.array([[0, 0, w, h]], np.float32)


    @dataclass(frozen=True)
    class ToyConfig(Config):
        """Settings of the toy head."""

        reduce: Literal["first", "best"] = setting("best", "Which label the whole image gets.")
        min_confidence: float = setting(0.0, "Smallest confidence reported.", minimum=0.0, maximum=1.0)


    class ToyHead:
        """One box, the whole image, labelled by the global image feature."""

        def __init__(self, encoder, config):
            self.encoder, self.config = encoder, config

        def __call__(self, image, emb):
            im = as_loaded(image)
            s = open_set_scores(self.encoder.encode_images([im.pixels]), emb, self.encoder.logit_scale)
            c = int(s.confidence[0].argmax()) if self.config.reduce == "best" else 0
            h, w = im.original_size
            return Detections(np.array([[0, 0, w, h]], np.float32), s.confidence[0, c:c + 1].numpy(),
                              np.array([c]), list(emb.names), image_size=(h, w))


    SPEC = HeadSpec("toy", ToyConfig, ToyHead, Detections, "Label the whole image with one box.")
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The toy plug-in on sys.path, its entry points read; unregistered afterwards."""
    (tmp_path / "toy_ovtools_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "toy_ovtools_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ovtools-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ovtools.heads]\ntoy = toy_ovtools_plugin:SPEC\n\n"
                                           "[ovtools.proposals]\nwhole = toy_ovtools_plugin:WholeImage\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    added = HEADS.load_plugins() + PROPOSALS.load_plugins()
    yield added
    for registry, name in ((HEADS, "toy"), (PROPOSALS, "whole")):
        if name in registry.names():
            registry.remove(name)
    sys.modules.pop("toy_ovtools_plugin", None)


def test_entry_points_add_a_head_and_a_proposal_source(plugin, tiny_encoder, rgb_image):
    from ovtools.pipelines import DetectPipeline, pipeline_class

    assert plugin == ["toy", "whole"]
    assert "toy" in available_heads() and "whole" in available_proposals("boxes")
    # the head: a generic pipeline, settings validated from the plug-in's own config
    Toy = pipeline_class("toy")
    pipe = Toy(None, encoder=tiny_encoder, labels="red square, sky", reduce="first")
    det = pipe(rgb_image)
    assert isinstance(det, Detections) and det.class_id.tolist() == [0]
    assert det.xyxy.tolist() == [[0.0, 0.0, 160.0, 120.0]] and det.image_size == (120, 160)
    with pytest.raises(Exception, match="reduce must be one of 'first', 'best'"):
        Toy(None, encoder=tiny_encoder, labels="a", reduce="worst")
    # the proposal source: usable by the built-in detection head
    boxes = DetectPipeline(None, encoder=tiny_encoder, labels="red square", proposals="whole", score_threshold=0.0,
                           max_side=None)(rgb_image)
    assert len(boxes) <= 1


def test_a_plugin_head_gets_its_command(plugin, tmp_path, monkeypatch):
    from PIL import Image

    from ovtools.cli import app
    from ovtools.cli.images import register_image_command

    register_image_command(head_spec("toy"))
    img = tmp_path / "a.png"
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(img)
    runner = CliRunner()
    r = runner.invoke(app, ["toy", "--help"], env={"COLUMNS": "200"})
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "--reduce" in text and "Which label the whole image gets" in text
    r = runner.invoke(app, ["toy", str(img), "--model", TINY_VIT, "--pretrained", "none", "--labels", "a, b",
                            "--reduce", "first", "-o", str(tmp_path / "out.json")])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["results"][0]["detections"][0]["xyxy"] == [0.0, 0.0, 60.0, 40.0]
    r = runner.invoke(app, ["toy", str(img), "--model", TINY_VIT, "--pretrained", "none", "--labels", "a",
                            "--reduce", "worst"])
    assert r.exit_code == 2 and "worst" in r.output


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ovtools.heads]\nbroken = no_such_module_xyz:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.warns(UserWarning, match="broken"):
        assert HEADS.load_plugins() == []
    assert "broken" not in available_heads() and "detect" in available_heads()


# ------------------------------------------------------------------ every registered entry, built and run
@pytest.mark.parametrize("name", ["classify", "detect", "segment", "segment3d"])
def test_every_builtin_head_builds_and_runs(name, tiny_encoder, rgb_image, one_torch_thread):
    from ovtools.prompts import ClassSpace, build_class_embeddings, load_templates

    assert name in available_heads()
    spec = head_spec(name)
    emb = build_class_embeddings(tiny_encoder, ClassSpace.from_names(["red square", "noise"]), load_templates("single"))
    small = {"segment3d": dict(n_around=2, elevations=(30.0,), top_down=False, view_size=(32, 32), distill_steps=0,
                               mode="fusion")}.get(name, {})
    head = create_head(name, tiny_encoder, **small)
    if spec.inputs == "scene":
        rng = np.random.default_rng(0)
        pts = rng.uniform(0, 1, (400, 3)).astype(np.float32)
        from ovtools.pipelines import Segment3DPipeline

        pipe = Segment3DPipeline(None, encoder=tiny_encoder, labels="red square, noise", **small)
        out = pipe((pts, rng.integers(0, 255, (400, 3), dtype=np.uint8)))
    else:
        out = head(rgb_image, emb)
    assert isinstance(out, spec.result)
    if isinstance(out, Detections):
        assert out.xyxy.shape[1] == 4 and np.isfinite(out.xyxy).all() and np.isfinite(out.confidence).all()
    elif isinstance(out, Classifications):
        assert np.isfinite(out.confidence).all() and out.class_id.shape[0] == 1
    elif isinstance(out, PointLabels):
        assert len(out.class_id) == 400 and np.isfinite(out.confidence).all()


@pytest.mark.parametrize("name", ["windows", "segments", "hybrid", "regions", "sam", "detect"])
def test_every_builtin_proposal_source_builds_and_runs(name, tiny_encoder, rgb_image):
    import ovtools.heads  # noqa: F401  (registers "detect")
    from ovtools.heads.frame import processing_frame
    from ovtools.prompts import ClassSpace, build_class_embeddings, load_templates

    assert name in available_proposals()
    kind = getattr(PROPOSALS.get(name), "output", "boxes")
    opts = {"sam": {"model": build_tiny_sam(64)}, "detect": {"model": build_tiny_sam(64), "encoder": tiny_encoder,
                                                             "detect_options": {"score_threshold": 0.0}}}
    source = create_proposals(name, **opts.get(name, {}))
    if kind == "labelled_masks":
        emb = build_class_embeddings(tiny_encoder, ClassSpace.from_names(["red square"]), load_templates("single"))
        out = source(processing_frame(tiny_encoder, rgb_image, None), emb)
        assert isinstance(out, Detections) and out.mask is not None and out.mask.shape[1:] == (120, 160)
    elif kind == "masks":
        m = np.asarray(source(rgb_image))
        assert m.dtype == bool and m.shape[1:] == (120, 160)
    else:
        b = np.asarray(source(rgb_image))
        assert b.ndim == 2 and b.shape[1] == 4 and np.isfinite(b).all()
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= 160).all() and (b[:, 3] <= 120).all()
    torch.set_num_threads(torch.get_num_threads())


def test_specs_that_would_break_every_command_are_refused_at_registration():
    from dataclasses import dataclass

    from ovtools.config import Config, setting
    from ovtools.heads import HeadSpec, register_head
    from ovtools.heads.detect import DetectConfig, DetectHead

    @dataclass(frozen=True)
    class Clash(Config):
        """Uses a command option's name."""

        output: str = setting("x", "Clashes with --output.")

    bad = [
        (HeadSpec(5, DetectConfig, DetectHead, Detections), ValueError, "head name 5"),
        (HeadSpec("my head", DetectConfig, DetectHead, Detections), ValueError, "lower-case"),
        (HeadSpec("eval", DetectConfig, DetectHead, Detections), ValueError, "command name"),
        (HeadSpec("toy2", Clash, DetectHead, Detections), ValueError, r"\['output'\] clash"),
        (HeadSpec("toy3", DetectConfig(), DetectHead, Detections), TypeError, "config must be"),
        (HeadSpec("toy4", DetectConfig, 5, Detections), TypeError, "head must be"),
        (HeadSpec("toy5", DetectConfig, DetectHead, Detections, inputs="video"), ValueError, "inputs must be"),
    ]
    for spec, error, message in bad:
        with pytest.raises(error, match=message):
            register_head(spec)
    with pytest.raises(TypeError, match="HeadSpec"):
        register_head("toy")
    assert available_heads() == sorted(available_heads()) and "toy2" not in available_heads()
