"""Linear probe on frozen CLIP image features (CLIP paper §3.2 and Appendix A.3).

The paper trains scikit-learn's L-BFGS logistic regression on frozen features
and chooses the L2 regularisation strength on a validation split with a sweep
over powers of ten followed by a finer search.  ``k``-shot probes (1, 2, 4, 8,
16 labelled images per class) show data efficiency against zero-shot
(CLIP Figure 6).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import LabelledImages, map_to_space, read_labelled_images
from .features import image_features
from .zeroshot import classification_metrics, zero_shot_logits


def sample_k_shot(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``k`` examples per class, chosen with ``seed``; sorted."""
    rng = np.random.default_rng(seed)
    idx = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        idx.extend(rng.choice(members, size=min(k, len(members)), replace=False).tolist())
    return np.array(sorted(idx), dtype=np.int64)


def _fit(x, y, c: float):

    from sklearn.linear_model import LogisticRegression  # 1-4 s to import: kept to the one function needing it

    clf = LogisticRegression(C=c, max_iter=1000)
    with warnings.catch_warnings():  # k-shot sets trip sklearn's "looks like regression" heuristic
        warnings.simplefilter("ignore", UserWarning)
        return clf.fit(x, y)


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    val_fraction: float = 0.25,
    seed: int = 0,
) -> dict:
    """Fit the probe with C chosen on a validation split, refit on all training data, score the test set.

    Args:
        train_x: float (N, D) frozen image features; train_y: int (N,) class ids.
        test_x: float (M, D); test_y: int (M,).
        val_fraction: share of each class's training examples held out to choose C
            (at least one per class is kept for fitting; with one example per class there is
            no validation split and C is chosen on the training data).  C is swept over
            1e-3 … 1e4 and refined around the best; ties go to the smallest C.
        seed: split seed.

    Returns:
        ``{"C", "val_accuracy", "test_accuracy", "n_train", "n_test"}``.

    Raises:
        ValueError: fewer than two classes in the training data.
    """
    train_y = np.asarray(train_y)
    if len(np.unique(train_y)) < 2:
        raise ValueError("a linear probe needs at least two classes in the training data")
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(train_y), bool)
    for c in np.unique(train_y):
        members = np.flatnonzero(train_y == c)
        n_val = int(len(members) * val_fraction)
        if n_val >= 1 and len(members) - n_val >= 1:
            val_mask[rng.choice(members, n_val, replace=False)] = True
    fit_x, fit_y = train_x[~val_mask], train_y[~val_mask]
    val_x, val_y = (train_x[val_mask], train_y[val_mask]) if val_mask.any() else (fit_x, fit_y)

    def val_acc(c: float) -> float:
        return float((_fit(fit_x, fit_y, c).predict(val_x) == val_y).mean())

    # Ties in validation accuracy (common with few shots) go to the strongest regularisation (smallest C).
    coarse = {c: val_acc(c) for c in 10.0 ** np.arange(-3, 5)}
    best = max(coarse, key=lambda c: (coarse[c], -c))
    fine = {c: val_acc(c) for c in best * 10.0 ** np.array([-0.5, -0.25, 0.25, 0.5])}
    scores = {**coarse, **fine}
    best = max(scores, key=lambda c: (scores[c], -c))
    clf = _fit(train_x, train_y, best)
    return {
        "C": float(best),
        "val_accuracy": scores[best],
        "test_accuracy": float((clf.predict(test_x) == np.asarray(test_y)).mean()),
        "n_train": int(len(train_y)),
        "n_test": int(len(test_y)),
    }


def probe_evaluation(pipe, train: LabelledImages | str | Path, test: LabelledImages | str | Path,
                     shots: Sequence[int] = (1, 2, 4, 8, 16), trials: int = 3, seed: int = 0,
                     progress: bool = False) -> dict:
    """The linear-probe protocol (full training set and k-shot) beside zero-shot, on frozen features.

    Args:
        pipe: a :class:`~ovtools.pipelines.ClassifyPipeline`; its class space gives the zero-shot classifier
            and must contain every class of both datasets (by name).
        train, test: labelled images (:func:`~ovtools.eval.data.read_labelled_images`) or their paths.
        shots: k of the k-shot probes (k training images per class); a k larger than the smallest training
            class is skipped (one ``UserWarning``; listed in ``skipped_shots``).
        trials: k-shot draws per k (mean reported; draws with a single class are left out).
        seed: seed of the k-shot draws and the validation split.
        progress: show tqdm bars while encoding.

    Returns:
        ``{"train", "test", "model", "pretrained", "templates", "zero_shot_top1", ["skipped_shots",]
        "probes": [{"shots": k, "test_accuracy", "trials"}, ..., {"shots": "all", "test_accuracy", "C",
        "n_train"}]}``.

    Raises:
        ValueError: a k < 1, a dataset class not in the class space, fewer than two training classes.
        ImageLoadError: an image cannot be decoded (names the file).
    """
    ks = sorted({int(k) for k in shots})
    if ks and ks[0] < 1:
        raise ValueError(f"shots: each k must be >= 1, got {ks[0]}")
    tr = train if isinstance(train, LabelledImages) else read_labelled_images(train)
    te = test if isinstance(test, LabelledImages) else read_labelled_images(test)
    y_tr, y_te = map_to_space(tr, pipe.labels), map_to_space(te, pipe.labels)
    bs = pipe.settings["batch_size"]
    x_tr = image_features(pipe.encoder, tr.paths, bs, progress=progress, desc="train features").numpy()
    x_te = image_features(pipe.encoder, te.paths, bs, progress=progress, desc="test features")
    emb = pipe.embeddings
    zs = classification_metrics(zero_shot_logits(x_te, emb.classes, pipe.encoder.logit_scale), y_te, pipe.labels)
    x_te = x_te.numpy()
    result = {"train": str(tr.source), "test": str(te.source), "model": pipe.encoder.name,
              "pretrained": pipe.encoder.pretrained, "templates": emb.templates.name,
              "zero_shot_top1": zs["top1"], "probes": []}
    try:
        full = linear_probe(x_tr, y_tr, x_te, y_te, seed=seed)
    except ValueError as e:
        raise ValueError(f"{tr.source}: {e}") from None
    fewest = int(np.bincount(y_tr)[np.unique(y_tr)].min())
    skipped = [k for k in ks if k > fewest]
    if skipped:
        warnings.warn(f"shots {','.join(map(str, skipped))}: skipped, a training class has only {fewest} image(s)",
                      UserWarning, stacklevel=2)
        result["skipped_shots"] = skipped
    for k in (k for k in ks if k <= fewest):
        accs = []
        for t in range(trials):
            idx = sample_k_shot(y_tr, k, seed=seed + t)
            if len(np.unique(y_tr[idx])) < 2:
                continue
            accs.append(linear_probe(x_tr[idx], y_tr[idx], x_te, y_te, seed=seed + t)["test_accuracy"])
        if accs:
            result["probes"].append({"shots": k, "test_accuracy": float(np.mean(accs)), "trials": len(accs)})
    result["probes"].append({"shots": "all", "test_accuracy": full["test_accuracy"], "C": full["C"],
                             "n_train": full["n_train"]})
    return result
