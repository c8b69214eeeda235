"""Predicate confusion matrix over GT subject-object pairs (docs/reference.md#confusion-matrix),
the input of RB's stage 2.

For every predicted pair whose (subject index, object index) equals a GT relation's pair — at any rank,
by SGB's pair key — and for every such GT relation, ``counts[gt_predicate, argmax_fg_predicate] += 1``
(G2S's ``SGConfMat``). Row = GT predicate, column = top-1 foreground predicted predicate; row 0 and
column 0 stay 0. Defined for PredCls and SGCls, where predicted pair indices refer to the GT objects.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils.atomic import atomic_write
from .compaction import check_compact_prediction, is_compact, ranked_pairs
from .groundtruth import pair_keys, prepare_groundtruth

__all__ = ["PredicateConfusionMatrix", "predicate_confusion_matrix"]


class PredicateConfusionMatrix:
    """Accumulates the (num_predicates, num_predicates) predicate confusion counts image by image.

    mode: "predcls" or "sgcls". ``add`` takes the same per-image inputs as SGGEvaluator (full or compact
    predictions); ``merge`` adds another accumulator (or its matrix) from another process; ``matrix`` is
    float32 like G2S's (exact below 2**24 counts per cell); ``save`` writes it as .npy, atomically.
    """

    def __init__(self, num_predicates: int = 51, mode: str = "predcls") -> None:
        if mode not in ("predcls", "sgcls"):
            raise ValueError(f"PredicateConfusionMatrix: mode must be 'predcls' or 'sgcls', got {mode!r} "
                             "(in sgdet predicted pairs do not index GT objects)")
        self.num_predicates = int(num_predicates)
        self.mode = mode
        self._counts = np.zeros((self.num_predicates, self.num_predicates), dtype=np.int64)
        self._next_image = 0

    def add(self, groundtruth: Mapping[str, Any], prediction: Mapping[str, Any]) -> None:
        """Count one image. groundtruth: {"boxes", "labels", "relations" (m, 3)}; prediction: full
        {"rel_pair_idxs" (p, 2), "rel_scores" (p, num_predicates), ...} or compact. Raises ValueError
        naming the image and the field on malformed input."""
        image = self._next_image
        self._next_image += 1
        gt = prepare_groundtruth(groundtruth, self.num_predicates, f"groundtruth of image {image}")
        pairs, labels = _pair_labels(prediction, self.num_predicates, len(gt.labels), self.mode,
                                     f"prediction of image {image}")
        pair_index, gt_index = np.nonzero(pair_keys(pairs)[:, None] == pair_keys(gt.relations)[None, :])
        np.add.at(self._counts, (gt.relations[gt_index, 2], labels[pair_index]), 1)

    def merge(self, other: "PredicateConfusionMatrix | np.ndarray") -> None:
        """Add the counts of another accumulator or a (num_predicates, num_predicates) count matrix."""
        counts = other._counts if isinstance(other, PredicateConfusionMatrix) else np.asarray(other)
        if counts.shape != self._counts.shape:
            raise ValueError(f"PredicateConfusionMatrix.merge: shape {counts.shape}, expected {self._counts.shape}")
        self._counts += counts.astype(np.int64)

    @property
    def matrix(self) -> np.ndarray:
        """(num_predicates, num_predicates) float32 counts, row = GT predicate, column = predicted."""
        return self._counts.astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``matrix`` to ``path`` (.npy) atomically."""
        with atomic_write(str(path)) as stream:
            np.save(stream, self.matrix)


def predicate_confusion_matrix(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                               num_predicates: int = 51, mode: str = "predcls") -> np.ndarray:
    """The (num_predicates, num_predicates) float32 confusion counts of paired per-image inputs."""
    if len(groundtruths) != len(predictions):
        raise ValueError(f"predicate_confusion_matrix: {len(groundtruths)} groundtruths but "
                         f"{len(predictions)} predictions")
    accumulator = PredicateConfusionMatrix(num_predicates, mode)
    for groundtruth, prediction in zip(groundtruths, predictions):
        accumulator.add(groundtruth, prediction)
    return accumulator.matrix


def _pair_labels(prediction: Mapping[str, Any], num_predicates: int, num_objects: int, mode: str,
                 where: str) -> tuple[np.ndarray, np.ndarray]:
    """Predicted pairs (p, 2) and their argmax foreground predicate (p,), from a full or compact prediction.

    A compact prediction keeps every pair equal to a GT pair (PredCls/SGCls), which is all this needs.
    """
    if is_compact(prediction):
        record = check_compact_prediction(prediction, mode, 0, num_predicates, num_objects, where)
        return record["pair_idxs"], record["pair_labels"]
    pairs, rel_scores = ranked_pairs(prediction, num_predicates, num_objects, where)
    labels = rel_scores[:, 1:].argmax(axis=1) + 1 if len(pairs) else np.zeros(0, dtype=np.int64)
    return pairs, labels
