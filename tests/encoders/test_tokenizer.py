"""DeferredTokenizer: open_clip's tokenizer built on first call, same token ids; encoders hand it out."""

from __future__ import annotations

import pickle

import open_clip
import torch

from ovtools.encoders import CLIPEncoder
from ovtools.encoders.tokenizer import DeferredTokenizer
from tests.conftest import TINY_VIT

TEXTS = ["a photo of a red circle", "blue square", ""]


def test_same_ids_as_open_clips_tokenizer_built_once():
    tok = DeferredTokenizer(TINY_VIT)
    assert tok._built is None
    ids = tok(TEXTS)
    assert torch.equal(ids, open_clip.get_tokenizer(TINY_VIT)(TEXTS))
    first = tok.tokenizer
    tok(["again"])
    assert tok.tokenizer is first
    assert tok.context_length == ids.shape[1]  # attributes of the built tokenizer


def test_pickles_without_building_and_after():
    fresh = pickle.loads(pickle.dumps(DeferredTokenizer(TINY_VIT)))
    assert fresh._built is None and torch.equal(fresh(TEXTS), open_clip.get_tokenizer(TINY_VIT)(TEXTS))
    assert torch.equal(pickle.loads(pickle.dumps(fresh))(TEXTS), fresh(TEXTS))


def test_an_encoder_builds_its_tokenizer_only_to_encode_texts():
    torch.manual_seed(0)
    enc = CLIPEncoder(TINY_VIT, None, device="cpu", precision="fp32")
    assert isinstance(enc.tokenizer, DeferredTokenizer) and enc.tokenizer._built is None
    feats = enc.encode_texts(TEXTS)
    assert enc.tokenizer._built is not None
    with torch.inference_mode():
        raw = enc.model.encode_text(open_clip.get_tokenizer(TINY_VIT)(TEXTS))
    assert torch.allclose(feats, torch.nn.functional.normalize(raw.float(), dim=-1), atol=1e-6)
