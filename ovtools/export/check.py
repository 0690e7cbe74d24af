"""Run an exported file and compare it with the torch pipeline it came from.

:func:`load_exported` gives a callable over numpy batches for either format
(ONNX through onnxruntime, TorchScript through ``torch.jit.load``);
:func:`compare_with_pipeline` runs both on the same preprocessed images and reports
the largest absolute difference, top-1 agreement and the time per image of each.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..heads.scoring import open_set_scores
from .writer import read_metadata


def load_exported(path: str | Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A callable ``f(pixels) -> output`` over float32 (B, 3, S, S) numpy batches.

    Args:
        path: ``.onnx`` (run with onnxruntime on the CPU) or a TorchScript file.
        threads: intra-op threads (default: the runtime's).

    Raises:
        ImportError: an ONNX file without onnxruntime (``ovtools[export]``).
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnxruntime as ort  # optional extra: ovtools[export]

        opts = ort.SessionOptions()
        # idle ORT threads would otherwise spin for a while after each run and slow whatever runs next
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    return run


@dataclass(frozen=True)
class Comparison:
    """Exported file vs torch pipeline on the same inputs.

    Attributes:
        max_abs_diff: largest |exported - torch| over every output value.
        top1_agree: fraction of images with the same arg-max (classify), or (embed) whose exported
            embedding is (one of) the nearest to its own torch embedding among all torch embeddings.
        n_images: images compared.
        seconds_exported, seconds_torch: time per image of each (same batches, after a warm-up).
    """

    max_abs_diff: float
    top1_agree: float
    n_images: int
    seconds_exported: float
    seconds_torch: float


def compare_with_pipeline(path: str | Path, pipe, images: Sequence[np.ndarray], batch_size: int = 16,
                          threads: int | None = None) -> Comparison:
    """Run the exported file and ``pipe``'s torch path on the same preprocessed images.

    Args:
        path: an exported file (its metadata says ``classify`` or ``embed``).
        pipe: the :class:`~ovtools.pipelines.ClassifyPipeline` it was exported from.
        images: RGB uint8 (H, W, 3) arrays; preprocessed once with ``pipe.encoder.preprocess``.
        batch_size: images per call of either.
        threads: intra-op threads of the exported runtime (default: torch's current count).

    Returns:
        :class:`Comparison`.
    """
    task = read_metadata(path)["task"]
    run = load_exported(path, threads or torch.get_num_threads())
    enc = pipe.encoder
    x = enc.preprocess(list(images)).float().cpu()

    def torch_out(xb: torch.Tensor) -> np.ndarray:
        f = enc.encode_pixels(xb, batch_size)
        if task == "embed":
            return f.cpu().numpy()
        return open_set_scores(f.cpu(), pipe.embeddings, enc.logit_scale).class_probs.numpy()

    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
    run(batches[0].numpy()), torch_out(batches[0])  # warm-up
    ours, ref, t_exp, t_torch = [], [], 0.0, 0.0
    for b in batches:  # alternate, so that load on a shared machine hits both alike
        t0 = time.perf_counter()
        ours.append(run(b.numpy()))
        t1 = time.perf_counter()
        ref.append(torch_out(b))
        t_exp, t_torch = t_exp + t1 - t0, t_torch + time.perf_counter() - t1
    ours, ref = np.concatenate(ours), np.concatenate(ref)
    if task == "embed":  # each exported embedding is (one of) the nearest to its own torch embedding
        sim = ours @ ref.T
        agree = float((np.diag(sim) >= sim.max(axis=1) - 1e-6).mean())
    else:
        agree = float((ours.argmax(1) == ref.argmax(1)).mean())
    n = len(x)
    return Comparison(float(np.abs(ours - ref).max()), agree, n, t_exp / n, t_torch / n)
