"""Linear probe on frozen CLIP image features (CLIP paper §3.2 and Appendix A.3).

The paper trains scikit-learn's L-BFGS logistic regression on frozen features
and chooses the L2 regularisation strength on a validation split with a sweep
over powers of ten followed by a finer search.  ``k``-shot probes (1, 2, 4, 8,
16 labelled images per class) show data efficiency against zero-shot
(CLIP Figure 6).
"""

from __future__ import annotations

import warnings

import numpy as np


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
