"""Datasets bundled with scikit-learn or generated from a seed: nothing is downloaded."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def load_digits_split():
    """sklearn's 8x8 digits scaled to [0, 1], split 80/20 as the assignment contract says."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)
    for arr in (X_train, X_test, y_train, y_test):
        arr.setflags(write=False)  # shared across tests: nobody may change it by accident
    return X_train, X_test, y_train, y_test



def disguise(split, seed: int, *, permute: bool = True, flip: str | None = None):
    """The same learning problem in a form no bundled copy of the data matches.

    Trained checks train and evaluate on this, so a model that looks rows up in (or was fitted
    to) scikit-learn's digits, which the worker can load, gains nothing. Labels are relabelled
    by a permutation; with ``permute`` the features are shuffled, and ``flip`` changes half of
    them: "sign" (``x -> -x``) or "complement" (``x -> 1 - x``, for values in [0, 1]). A fully
    connected network learns the disguised problem as well as the original: its first layer
    absorbs the feature changes, its last the relabelling (signed permutations even leave
    Gaussian initialisation and Adam's per-coordinate steps unchanged). A convolutional network
    needs its inputs' layout: ``permute=False``.
    """
    X_train, X_test, y_train, y_test = split
    rng = np.random.default_rng(seed)
    labels = rng.permutation(int(max(y_train.max(), y_test.max())) + 1)
    order = rng.permutation(X_train.shape[1]) if permute else np.arange(X_train.shape[1])
    flipped = rng.random(X_train.shape[1]) < 0.5

    def features(X):
        X = X[:, order]
        if flip == "sign":
            return np.where(flipped, -X, X)
        if flip == "complement":
            return np.where(flipped, 1.0 - X, X)
        if flip is not None:
            raise ValueError(f"flip must be None, 'sign' or 'complement', not {flip!r}")
        return X

    out = features(X_train), features(X_test), labels[y_train], labels[y_test]
    for arr in out:
        arr.setflags(write=False)
    return out
