"""Reduce a full relation prediction to exactly what SGB-exact evaluation can reach (the "compact" form).

Which pairs each metric reaches (docs/reference.md#relation-recall),
for a prediction with p ranked pairs and K_max = max(recall_ks):

* R@K, mR@K, zR@K: only the first K_max pairs in the given order, each with its argmax foreground
  predicate (argmax over columns 1.., first maximum on ties).
* A@K and the confusion matrix (PredCls/SGCls): every pair whose (subject, object) equals a GT pair, at
  any rank, in rank order, with its argmax predicate.
* ng-R@K, ng-mR@K, ng-zR@K: the top 100 (pair, predicate) entries of obj_s * obj_o * rel_score[:, 1:].
  These depend on every pair's scores, so the compact form stores the 100 entries themselves as
  (subject, object, predicate) triplets, computed here from the full scores.

The compact form keeps exactly these; :class:`~rebalance_hca.evaluation.SGGEvaluator` evaluates a full
prediction by compacting it first, so a full prediction and its compact form give identical numbers.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ._arrays import check_range, check_length, get_array
from .groundtruth import CLASS_ID_LIMIT, GroundTruthImage, pairs_in_groundtruth, prepare_groundtruth

MODES = ("predcls", "sgcls", "sgdet")
# SGB's no-graph-constraint ranking keeps the top 100 (pair, predicate) entries, whatever K is.
NG_TOP_ENTRIES = 100


def evaluation_mode(use_gt_box: bool, use_gt_object_label: bool) -> str:
    """SGB's mode rule: predcls with GT boxes and labels, sgcls with GT boxes only, else sgdet."""
    if use_gt_box:
        return "predcls" if use_gt_object_label else "sgcls"
    return "sgdet"


def is_compact(prediction: Mapping[str, Any]) -> bool:
    """Whether ``prediction`` is in the compact form (it has "ng_triplets") rather than the full one."""
    return "ng_triplets" in prediction


def compact_prediction(prediction: Mapping[str, Any], groundtruth: GroundTruthImage | Mapping[str, Any], mode: str,
                       num_predicates: int, max_k: int = 100, where: str = "prediction") -> dict:
    """The compact form of one image's full prediction (see the module docstring).

    prediction: {"boxes": (k, 4), "labels": (k,), "scores": (k,), "rel_pair_idxs": (p, 2) ranked best first,
        "rel_scores": (p, num_predicates), column 0 = background}; numpy or torch. In PredCls the object
        fields are optional (evaluation replaces them by the GT boxes, labels and scores 1).
    groundtruth: the GT of the same image, {"boxes", "labels", "relations"} or already checked (its object
        count and relation pairs are used).
    max_k: the largest K the compact form must support.

    Returns a dict of numpy arrays (q kept pairs in rank order, t <= 100 ng entries):
        "mode", "max_k", "num_pairs" (p), "boxes" (k, 4) float32, "labels" (k,) int64, "scores" (k,),
        "pair_idxs" (q, 2) int64, "pair_ranks" (q,) int64 positions in the full ranking,
        "pair_labels" (q,) int64 argmax foreground predicate, "pair_scores" (q,) its probability,
        "ng_triplets" (t, 3) int64 [subject, object, predicate] in no-graph-constraint rank order.
    Raises ValueError naming ``where`` and the field on malformed input.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(groundtruth, GroundTruthImage):
        groundtruth = prepare_groundtruth(groundtruth, num_predicates, f"groundtruth for {where}")
    boxes, labels, scores = object_fields(prediction, mode, where)
    if mode == "predcls":
        ranking_scores = np.ones(len(groundtruth.labels))
    else:
        ranking_scores = scores
    pairs, rel_scores = ranked_pairs(prediction, num_predicates, len(ranking_scores), where)

    foreground = rel_scores[:, 1:]
    kept = np.arange(min(len(pairs), max_k))
    if mode != "sgdet" and len(pairs) > max_k:
        in_gt = pairs_in_groundtruth(pairs[max_k:], groundtruth.relations)
        kept = np.concatenate([kept, max_k + np.flatnonzero(in_gt)])
    kept_labels = foreground[kept].argmax(axis=1) if len(kept) else np.zeros(0, dtype=np.int64)
    return {
        "mode": mode, "max_k": int(max_k), "num_pairs": int(len(pairs)),
        "boxes": boxes, "labels": labels, "scores": scores,
        "pair_idxs": pairs[kept], "pair_ranks": kept.astype(np.int64),
        "pair_labels": kept_labels.astype(np.int64) + 1,
        "pair_scores": foreground[kept, kept_labels],
        "ng_triplets": no_graph_constraint_triplets(pairs, foreground, ranking_scores, where),
    }


def check_compact_prediction(prediction: Mapping[str, Any], mode: str, max_k: int, num_predicates: int,
                             num_gt_objects: int, where: str = "prediction") -> dict:
    """The arrays of a compact prediction (e.g. read from a predictions file), checked.

    It must have been made for ``mode`` with at least ``max_k``; indices must lie within the objects (the
    ``num_gt_objects`` GT objects in PredCls), predicates in [1, num_predicates), ranks ascending.
    Returns {"num_pairs", "boxes" (k, 4) float32, "labels", "pair_idxs", "pair_ranks", "pair_labels",
    "ng_triplets"}. Raises ValueError naming ``where`` and the field.
    """
    if prediction.get("mode") != mode:
        raise ValueError(f"{where}: compact prediction was made for mode {prediction.get('mode')!r}, "
                         f"expected {mode!r}")
    if int(prediction.get("max_k", -1)) < max_k:
        raise ValueError(f"{where}: compact prediction keeps pairs up to K={prediction.get('max_k')}, "
                         f"the evaluator needs K={max_k}")
    if "num_pairs" not in prediction:
        raise ValueError(f"{where}: missing field 'num_pairs'")
    record = {
        "num_pairs": int(prediction["num_pairs"]),
        "boxes": get_array(prediction, "boxes", where, 2, 4).astype(np.float32, copy=False),
        "labels": get_array(prediction, "labels", where, 1, integer=True),
        "pair_idxs": get_array(prediction, "pair_idxs", where, 2, 2, integer=True),
        "pair_ranks": get_array(prediction, "pair_ranks", where, 1, integer=True),
        "pair_labels": get_array(prediction, "pair_labels", where, 1, integer=True),
        "ng_triplets": get_array(prediction, "ng_triplets", where, 2, 3, integer=True),
    }
    check_length(record["labels"], len(record["boxes"]), "labels", "boxes", where)
    check_length(record["pair_ranks"], len(record["pair_idxs"]), "pair_ranks", "pair_idxs", where)
    check_length(record["pair_labels"], len(record["pair_idxs"]), "pair_labels", "pair_idxs", where)
    if np.any(np.diff(record["pair_ranks"]) <= 0):
        raise ValueError(f"{where}: field 'pair_ranks' must be strictly increasing")
    check_range(record["labels"], 0, CLASS_ID_LIMIT, "labels", where)
    num_objects = num_gt_objects if mode == "predcls" else len(record["labels"])
    check_range(record["pair_idxs"], 0, num_objects, "pair_idxs", where)
    check_range(record["ng_triplets"][:, :2], 0, num_objects, "ng_triplets", where)
    check_range(record["pair_labels"], 1, num_predicates, "pair_labels", where)
    check_range(record["ng_triplets"][:, 2], 1, num_predicates, "ng_triplets", where)
    return record


def ranked_pairs(prediction: Mapping[str, Any], num_predicates: int, num_objects: int,
                 where: str = "prediction") -> tuple[np.ndarray, np.ndarray]:
    """A full prediction's checked "rel_pair_idxs" (p, 2) int64 and "rel_scores" (p, num_predicates).

    Raises ValueError naming ``where`` and the field on a wrong shape, a score width other than
    num_predicates or an object index outside [0, num_objects).
    """
    pairs = get_array(prediction, "rel_pair_idxs", where, 2, 2, integer=True)
    rel_scores = get_array(prediction, "rel_scores", where, 2)
    if len(pairs) and rel_scores.shape[1] != num_predicates:
        raise ValueError(f"{where}: field 'rel_scores' has {rel_scores.shape[1]} columns, "
                         f"expected num_predicates={num_predicates}")
    check_length(rel_scores, len(pairs), "rel_scores", "rel_pair_idxs", where)
    check_range(pairs, 0, num_objects, "rel_pair_idxs", where)
    return pairs, rel_scores


def no_graph_constraint_triplets(pairs: np.ndarray, foreground: np.ndarray, object_scores: np.ndarray,
                                 where: str = "prediction") -> np.ndarray:
    """SGB's no-graph-constraint top 100 (pair, predicate) entries as triplets.

    pairs: (p, 2) int; foreground: (p, P-1) rel_scores[:, 1:]; object_scores: (n,) used for ranking.
    Entry score = (obj_s * obj_o) * rel_score, in numpy's dtype promotion of the inputs as SGB computes
    it; entries are taken by descending score, ties by ascending flat index (pair rank, then predicate).
    Returns (t, 3) int64 [subject, object, predicate 1..P-1], t = min(100, p * (P-1)).

    Only pairs whose best entry is among the top 100 pair-best entries can contribute (a pair's best
    entry precedes all its other entries), so the full products are formed for about 100 pairs (more
    only when pair-best values tie). Raises ValueError naming ``where`` when a score is not finite.
    """
    if len(pairs) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    pair_object_scores = object_scores[pairs[:, 0]] * object_scores[pairs[:, 1]]
    if not np.all(np.isfinite(pair_object_scores)):
        raise ValueError(f"{where}: field 'scores' has non-finite values")
    if not np.all(np.isfinite(foreground)):
        raise ValueError(f"{where}: field 'rel_scores' has non-finite values")
    candidates = np.arange(len(pairs))
    if len(pairs) > 2 * NG_TOP_ENTRIES:  # with few pairs, forming every entry is cheaper
        # Rounding is monotone, so a row's largest product is the product with its largest score (or,
        # for an object score <= 0, with its smallest): the value the full product matrix would hold.
        pair_best = pair_object_scores * foreground.max(axis=1)
        if pair_object_scores.min() <= 0:
            pair_best = np.maximum(pair_best, pair_object_scores * foreground.min(axis=1))
        candidates = top_candidates(pair_best)
    entry_scores = (pair_object_scores[candidates, None] * foreground[candidates]).ravel()
    entries = top_candidates(entry_scores)
    order = entries[np.argsort(-entry_scores[entries], kind="stable")[:NG_TOP_ENTRIES]]
    rows, predicates = np.divmod(order, foreground.shape[1])
    return np.column_stack([pairs[candidates[rows]], predicates + 1]).astype(np.int64)


def top_candidates(values: np.ndarray) -> np.ndarray:
    """Ascending indices of every value >= the 100th largest: (n,) -> (c,), c >= min(n, 100).

    They contain the first 100 indices of the order (value descending, index ascending), ties included.
    """
    if len(values) <= NG_TOP_ENTRIES:
        return np.arange(len(values))
    cut = len(values) - NG_TOP_ENTRIES
    return np.flatnonzero(values >= np.partition(values, cut)[cut])


def object_fields(prediction: Mapping[str, Any], mode: str, where: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted boxes (k, 4) float32, labels (k,) int64 and scores (k,); optional in PredCls."""
    if mode == "predcls" and not all(key in prediction for key in ("boxes", "labels", "scores")):
        return np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    boxes = get_array(prediction, "boxes", where, 2, 4).astype(np.float32, copy=False)
    labels = get_array(prediction, "labels", where, 1, integer=True)
    scores = get_array(prediction, "scores", where, 1)
    check_length(labels, len(boxes), "labels", "boxes", where)
    check_length(scores, len(boxes), "scores", "boxes", where)
    check_range(labels, 0, CLASS_ID_LIMIT, "labels", where)
    return boxes, labels, scores
