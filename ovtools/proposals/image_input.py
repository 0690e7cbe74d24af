"""The image checks, downscaling and per-scale threading every proposal source shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from .registry import check_number

T = TypeVar("T")
R = TypeVar("R")


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an RGB uint8 (H, W, 3) array for a proposal source.

    Raises:
        TypeError: not a numpy array.
        ValueError: wrong shape, dtype or an empty image.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"proposal sources take an RGB uint8 numpy array (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must have shape (H, W, 3) with H, W > 0, got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {image.dtype}")
    return image


def downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """RGB uint8 (H, W, 3) resized (bilinear) so its longer side is at most ``max_side`` (``None``: unchanged)."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def felzenszwalb_input(image: np.ndarray, max_side: int | None, min_region: int) -> tuple[np.ndarray, int]:
    """The image Felzenszwalb segments (downscaled to ``max_side``) and its smallest region in pixels
    (``min_region`` is given for a 192 x 192 image and scaled with the area, at least 4).

    Raises:
        TypeError / ValueError: ``image`` is not an RGB uint8 (H, W, 3) array.
    """
    work = downscale(check_image(image), max_side)
    return work, max(4, int(round(min_region * work.shape[0] * work.shape[1] / (192.0 * 192.0))))


def thread_budget() -> int:
    """Threads this process may keep busy: torch's intra-op thread count (``OMP_NUM_THREADS``,
    ``torch.set_num_threads``; Ray and other schedulers set it per worker)."""
    return max(1, torch.get_num_threads())


def check_workers(workers: int | None, source: str) -> int | None:
    """Validate the ``workers`` option (``None`` or >= 1) of proposal source ``source`` (named in the message).

    Raises:
        ValueError: ``workers`` < 1 or not a number.
    """
    check_number(f"{source}: workers (threads for the segmentations, None: up to torch's thread count)", workers,
                 low=1, none=True)
    return None if workers is None else int(workers)


def check_felzenszwalb_options(source: str, scales, sigma, min_region, max_side, seed,
                               workers) -> tuple[tuple[float, ...], int | None]:
    """Check the options the Felzenszwalb-based sources (``segments``, ``regions``) share, each named with
    ``source``: ``scales`` non-empty and positive, ``sigma`` and ``seed`` >= 0, ``min_region`` >= 1,
    ``max_side`` >= 16 or ``None``, ``workers`` as :func:`check_workers`.

    Returns:
        ``(scales as a tuple of floats, workers)``.

    Raises:
        ValueError: an option out of range or NaN.
    """
    checked = tuple(float(check_number(f"{source}: scales", s, low=0, low_open=True)) for s in scales)
    if not checked:
        raise ValueError(f"{source}: scales must be a non-empty sequence of positive numbers, got {scales!r}")
    workers = check_workers(workers, source)
    check_number(f"{source}: sigma", sigma, low=0)
    check_number(f"{source}: max_side", max_side, low=16, none=True)
    check_number(f"{source}: seed", seed, low=0)
    check_number(f"{source}: min_region", min_region, low=1)
    return checked, workers


def map_in_threads(fn: Callable[[T], R], items: Sequence[T], workers: int | None) -> list[R]:
    """``[fn(x) for x in items]``, the calls spread over up to ``workers`` threads, results in order.

    For the per-scale segmentations of the Felzenszwalb-based sources: skimage's Felzenszwalb
    (Cython) and numpy's sorts release the GIL, so the scales overlap on several cores (the
    ``segments`` proposals of a 640x480 photo: 1.48x faster in wall time on 2 threads, 1.78x on 16,
    for some more CPU time; ``benchmarks/bench_proposals.py``); the results do not depend on ``workers``.

    Args:
        fn: the per-item work.
        items: the inputs.
        workers: most threads (``None``: one per item, up to :func:`thread_budget`; 1: this thread).
    """
    n = min(len(items), thread_budget() if workers is None else workers)
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(n, thread_name_prefix="ovtools-proposals") as pool:
        return list(pool.map(fn, items))
