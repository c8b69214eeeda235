"""The predicate confusion matrix as the relation head uses it
(docs/reference.md#transfer-classifier, #predicate-correlation).

The matrix C is a (P, P) array of counts, row = GT predicate, column = top-1 foreground predicted
predicate, written by tools/compute_confusion_matrix.py (docs/reference.md#confusion-matrix) and named by the config key
MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX. Three things are derived from it:

* ``normalized_confusion``: the row-normalised matrix P (background row and column masked out);
* ``transfer_matrix``: the fixed test-time map A of the transfer classifier, applied to relation
  logits (R, P) as ``logits @ A.T``, i.e. new[i] = Σ_j A[i, j]·old[j];
* ``predicate_correlation``: corr[i, j] = P[i, j] / (P[i, i] + 1e-4), read by the reweighting loss.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["TRANSFER_MATRIX_FORMS", "load_confusion_matrix", "normalized_confusion", "predicate_correlation",
           "transfer_matrix", "uninformative_confusion"]

CONFUSION_MATRIX_KEY = "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX"
TRANSFER_MATRIX_KEY = "MODEL.ROI_RELATION_HEAD.TRANSFER_MATRIX"
TRANSFER_MATRIX_FORMS = ("half_identity", "confusion")

_ROW_EPSILON = 1e-8          # added to every row sum before dividing (docs/reference.md#transfer-classifier step 2)
_DIAGONAL_EPSILON = 1e-4     # added to the diagonal before dividing (docs/reference.md#predicate-correlation)


def load_confusion_matrix(path: str, num_predicates: int, key: str = CONFUSION_MATRIX_KEY) -> np.ndarray:
    """Read the confusion counts from the .npy at ``path``; returns a float64 (num_predicates, num_predicates).

    Raises FileNotFoundError when the file is missing, ValueError when it is not a readable numeric .npy,
    has another shape, holds non-finite or negative entries, or carries no predicate correlation
    (``uninformative_confusion``); every message names ``key`` and ``path``.
    """
    where = f"{key}={path!r}"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: no such file (tools/compute_confusion_matrix.py writes it from a "
                                "trained PredCls model)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{where}: not a readable .npy file ({error})") from error
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{where}: expected a numeric array of counts, found {_describe(array)}")
    expected = (num_predicates, num_predicates)
    if array.shape != expected:
        raise ValueError(f"{where}: expected shape {expected} (num_predicates x num_predicates), "
                         f"found {array.shape}")
    counts = array.astype(np.float64)
    if not np.isfinite(counts).all():
        raise ValueError(f"{where}: {int((~np.isfinite(counts)).sum())} non-finite entries (NaN or inf)")
    if (counts < 0).any():
        raise ValueError(f"{where}: {int((counts < 0).sum())} negative entries; counts must be >= 0")
    problem = uninformative_confusion(counts)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return counts


def uninformative_confusion(confusion: np.ndarray) -> str:
    """Why counts ``confusion`` (P, P) carry no predicate correlation, or "" when they do.

    Only the foreground block [1:, 1:] counts (background is masked out). Without an off-diagonal count,
    every correlation corr[i, j], i != j, is 0: the reweighting loss reduces to plain cross-entropy and the
    transfer map to the identity, so stage 2 and the transfer classifier would change nothing. All zero: no
    GT relation was counted (an empty split?); diagonal only: every GT predicate was predicted as itself.
    """
    foreground = np.asarray(confusion)[1:, 1:]
    if np.count_nonzero(foreground) == np.count_nonzero(np.diag(foreground)):
        counted = "counts no relation at all" if not foreground.any() else \
            "counts only correct predictions (no predicate is confused with another)"
        return (f"the confusion matrix {counted}, so it carries no predicate correlation: the reweighting loss "
                "would be plain cross-entropy and the transfer classifier the identity; compute it with "
                "tools/compute_confusion_matrix.py from a stage-1 PredCls model over the train split")
    return ""


def normalized_confusion(confusion: np.ndarray) -> np.ndarray:
    """Row-normalised confusion P, float64 (P, P), from counts ``confusion`` (P, P) (not modified).

    C[0, :] = 0, C[:, 0] = 0 and C[0, 0] = 1 (background confuses with nothing but itself), then
    P = C / (row_sum + 1e-8): rows with a non-zero sum sum to 1, rows with a zero sum stay zero.
    """
    counts = _square(confusion, "normalized_confusion").astype(np.float64, copy=True)
    counts[0, :] = 0.0
    counts[:, 0] = 0.0
    counts[0, 0] = 1.0
    return counts / (counts.sum(axis=1, keepdims=True) + _ROW_EPSILON)


def transfer_matrix(confusion: np.ndarray, form: str = "half_identity") -> np.ndarray:
    """The transfer-classifier map A, float32 (P, P), from counts ``confusion`` (P, P)
    (docs/reference.md#transfer-classifier).

    form "half_identity" (RB): A = row-normalise(P + I), which is ½(P + I) for every row of P with a
    non-zero sum and the identity row otherwise. form "confusion" (G2S): A = P.
    Apply it to relation logits (R, P) as ``logits @ A.T``: new[i] = Σ_j A[i, j]·old[j].
    """
    if form not in TRANSFER_MATRIX_FORMS:
        raise ValueError(f"{TRANSFER_MATRIX_KEY}={form!r}: unknown transfer matrix; valid values are "
                         f"{', '.join(repr(name) for name in TRANSFER_MATRIX_FORMS)}")
    normalized = normalized_confusion(confusion)
    if form == "confusion":
        return normalized.astype(np.float32)
    shifted = normalized + np.eye(len(normalized))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def predicate_correlation(confusion: np.ndarray) -> np.ndarray:
    """Predicate correlation corr, float64 (P, P), from counts ``confusion`` (P, P)
    (docs/reference.md#predicate-correlation).

    corr[i, j] = P[i, j] / (P[i, i] + 1e-4) with P = ``normalized_confusion(confusion)``: how often GT
    predicate i is predicted as j relative to how often it is predicted correctly. RB first divides row i
    by the sum of column i and then row-normalises; that per-row scale cancels, so this is the effective
    formula (it differs from RB only by the 1e-8 in P's row sums). Rows with a zero sum are zero.
    """
    normalized = normalized_confusion(confusion)
    return normalized / (np.diag(normalized)[:, None] + _DIAGONAL_EPSILON)


def _square(matrix: np.ndarray, caller: str) -> np.ndarray:
    """``matrix`` as an array, checked to be square (P, P) with P >= 1."""
    array = np.asarray(matrix)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise ValueError(f"{caller}: expected a square (P, P) confusion matrix, found shape {array.shape}")
    return array


def _describe(value: object) -> str:
    """A short description of what np.load returned, for error messages."""
    if isinstance(value, np.ndarray):
        return f"dtype {value.dtype}"
    return type(value).__name__
