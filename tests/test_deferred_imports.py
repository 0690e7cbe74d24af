"""The CLI imports open_clip without timm / transformers, and load_clip gives them back to models that need them.

Each check runs in a fresh interpreter: this test process imported open_clip plainly (conftest).
Works with open_clip_torch 2.32 (timm 0.6.7: open_clip has no timm towers there) and 3.x (timm 1.x:
the timm-tower test runs).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ovtools.deferred_imports import optional_towers_needed
from tests.conftest import ASSETS, TINY_RN, TINY_VIT

ROOT = Path(__file__).resolve().parents[1]

# open_clip's state that its optional imports decide, printed as JSON
STATE = """
import json, sys, open_clip.timm_model as t, open_clip.hf_model as h, open_clip.coca_model as c, open_clip.model as m
print("STATE" + json.dumps({"timm": t.timm is not None, "transformers": h.transformers is not None,
      "coca_generation": c._has_transformers, "same_classes": m.TimmModel is t.TimmModel
      and m.HFTextEncoder is h.HFTextEncoder}))
"""


def _python(code: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("STATE")][-1][5:])


def test_the_cli_imports_open_clip_without_timm_transformers_and_wandb():
    got = _python("""
import json, sys, importlib.util
import ovtools.cli
loaded = [m for m in ("timm", "transformers", "wandb") if m in sys.modules]
# hidden only during open_clip's import: the packages import normally afterwards
unhidden = all(sys.modules.get(m, 0) is not None for m in ("timm", "transformers"))
print("STATE" + json.dumps({"loaded": loaded, "unhidden": unhidden}))
""")
    assert got == {"loaded": [], "unhidden": True}


def test_enabling_gives_open_clip_the_state_of_a_plain_import():
    plain = _python(STATE)
    deferred = _python("""
from ovtools.deferred_imports import defer_optional_towers, enable_optional_towers, deferred_packages
hidden = defer_optional_towers()
assert hidden == deferred_packages(), (hidden, deferred_packages())
enable_optional_towers()
assert not deferred_packages()
""" + STATE)
    assert deferred == plain
    assert plain["same_classes"]


def test_a_model_of_open_clips_own_towers_keeps_them_deferred():
    got = _python(f"""
import json, sys, torch
import ovtools.cli
from ovtools.deferred_imports import deferred_packages
from ovtools.encoders import CLIPEncoder
enc = CLIPEncoder("{TINY_VIT}", None, device="cpu")
feats = enc.encode_texts(["a red circle"])
print("STATE" + json.dumps({{"deferred": sorted(deferred_packages()), "shape": list(feats.shape),
      "loaded": [m for m in ("timm", "transformers", "wandb") if m in sys.modules]}}))
""", OVTOOLS_MODEL_CONFIGS=str(ASSETS))
    present = sorted(m for m in ("timm", "transformers") if importlib.util.find_spec(m) is not None)
    assert got == {"deferred": present, "shape": [1, 64], "loaded": []}


def test_towers_needed_from_the_model_config(tmp_path):
    import open_clip

    def needed(model):  # as load_clip asks (open_clip 3.x would download an hf-hub: config)
        return optional_towers_needed(model, None if model.startswith("hf-hub:") else open_clip.get_model_config(model))

    assert needed(TINY_VIT) == () and needed(TINY_RN) == () and needed("ViT-B-32") == ()
    assert needed("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K") == ("timm", "transformers")
    assert needed("no-such-model") == ("timm", "transformers")
    assert needed("coca_ViT-B-32") == ("transformers",)
    towers = {"embed_dim": 64, "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "image_size": 32},
              "text_cfg": {"hf_model_name": "some/bert", "hf_tokenizer_name": "some/bert"}}
    assert optional_towers_needed("any", towers) == ("timm", "transformers")


def _tiny_bert(folder: Path) -> None:
    """A 2-layer random BERT and a 30-word WordPiece vocabulary, saved as a local HF model folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=77)).save_pretrained(folder)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "blue", "square"]
    (folder / "vocab.txt").write_text("\n".join(words + [f"w{i}" for i in range(30 - len(words))]) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers not installed")
def test_a_hugging_face_text_tower_builds_in_the_cli_process(tmp_path):
    _tiny_bert(tmp_path / "bert")
    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
           "text_cfg": {"hf_model_name": str(tmp_path / "bert"), "hf_tokenizer_name": str(tmp_path / "bert"),
                        "hf_proj_type": "linear", "hf_pooler_type": "mean_pooler",
                        "context_length": 16}}
    (tmp_path / "archs").mkdir()
    (tmp_path / "archs" / "ovtools-test-hftext.json").write_text(json.dumps(cfg))
    got = _python("""
import json, sys, torch
import ovtools.cli
from ovtools.deferred_imports import deferred_packages
from ovtools.encoders import CLIPEncoder
enc = CLIPEncoder("ovtools-test-hftext", None, device="cpu", precision="fp32")
# token ids, not enc.encode_texts: open_clip 2.32's HFTokenizer calls batch_encode_plus, gone in transformers 5
f = enc.model.encode_text(torch.randint(5, 30, (2, 16)), normalize=True)
print("STATE" + json.dumps({"shape": list(f.shape), "norm": float(f.norm(dim=-1).min()),
      "transformers_deferred": "transformers" in deferred_packages()}))
""", OVTOOLS_MODEL_CONFIGS=str(tmp_path / "archs"))
    assert got["shape"] == [2, 16] and abs(got["norm"] - 1) < 1e-4 and not got["transformers_deferred"]


@pytest.mark.skipif(importlib.util.find_spec("timm") is None or importlib.util.find_spec("timm.layers") is None,
                    reason="timm without timm.layers (< 0.9): open_clip has no timm towers with it")
def test_a_timm_image_tower_builds_in_the_cli_process(tmp_path):
    cfg = {"embed_dim": 16,
           "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
                          "timm_pool": "avg", "timm_proj": "linear", "image_size": 224},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "archs").mkdir()
    (tmp_path / "archs" / "ovtools-test-timm.json").write_text(json.dumps(cfg))
    got = _python("""
import json, numpy as np
import ovtools.cli
from ovtools.encoders import CLIPEncoder
enc = CLIPEncoder("ovtools-test-timm", None, device="cpu", precision="fp32")
f = enc.encode_images(enc.preprocess([np.zeros((40, 40, 3), np.uint8)]))
print("STATE" + json.dumps({"shape": list(f.shape), "tower": type(enc.model.visual).__name__}))
""", OVTOOLS_MODEL_CONFIGS=str(tmp_path / "archs"))
    assert got == {"shape": [1, 16], "tower": "TimmModel"}

