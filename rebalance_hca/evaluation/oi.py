"""PySGG's Open Images V6 relation metrics (docs/reference.md#oi-evaluation-protocol), vectorized per image.

The OI block scores up to 100 triplet candidates per image (:func:`oi_candidates`): each ranked pair's
top-2 predicates, scored subject score × object score × predicate score in float32, the best 100 of
them with a score above 1e-5. Per image the evaluator then stores, for every GT relation, the first
candidate position that matches it (recall, IoU >= threshold), and for every candidate whether it is a
true positive of the relation AP and of the phrase AP (IoU > threshold). PySGG walks each predicate's
detections of all images in confidence order, but a detection can only claim a GT relation of its own
image, and inside one image the walk meets the candidates in their list order (score descending), so
the true-positive flags are decided per image; ``summarize`` sorts each predicate's detections once.
mR@K comes from PySGG's "classic" graph-constrained block, an embedded :class:`SGGEvaluator`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..structures.boxes import paired_iou_legacy, union_boxes
from ._arrays import check_length, check_range, get_array
from .compaction import MODES, compact_prediction, is_compact, object_fields, ranked_pairs, top_candidates
from .groundtruth import GroundTruthImage, prepare_groundtruth, triplet_keys
from .sgg import SGGEvaluator

__all__ = ["OIEvaluator", "compact_oi_prediction", "is_oi_compact", "oi_candidates", "OI_RECALL_KS",
           "CLASSIC_RECALL_KS"]

# PySGG's ``eval_rel_results``: top-2 predicates per pair, the best 100 candidates, scores > 1e-5.
PREDICATES_PER_PAIR = 2
TOP_CANDIDATES = 100
MIN_CANDIDATE_SCORE = np.float32(1e-5)
OI_RECALL_KS = (1, 5, 10, 20, 50, 100)
CLASSIC_RECALL_KS = (20, 50, 100)
# PySGG's recall and AP denominators: hits / (count + 1e-12), so an image or class without GT gives 0.
_EPSILON = 1e-12
_NEVER = np.iinfo(np.int64).max


def is_oi_compact(prediction: Mapping[str, Any]) -> bool:
    """Whether ``prediction`` carries OI candidates ("oi_triplets"), i.e. is in the OI compact form."""
    return "oi_triplets" in prediction


def oi_candidates(prediction: Mapping[str, Any], groundtruth: GroundTruthImage | Mapping[str, Any], mode: str,
                  num_predicates: int, where: str = "prediction") -> dict[str, np.ndarray]:
    """PySGG's OI triplet candidates of one full prediction (docs/reference.md#oi-triplet-candidates).

    prediction: {"boxes" (k, 4), "labels" (k,), "scores" (k,), "rel_pair_idxs" (p, 2) ranked,
        "rel_scores" (p, num_predicates), column 0 = background}; numpy or torch. In PredCls the object
        fields are optional: without them the candidates index the GT objects, whose scores count as 1.
    groundtruth: the same image's GT (its object count is used in PredCls).

    Candidate score = (subject score × object score) × predicate score, in float32. Per pair the
    predicates are ranked by score (ties: lower id first) and the first two kept; over all pairs × 2 the
    best 100 are kept (ties: pair rank, then predicate rank), then those with score <= 1e-5 dropped.
    PySGG's ``np.argsort`` leaves the order of exact ties unspecified.
    Returns {"oi_triplets": (t, 3) int64 [subject, object, predicate 1..num_predicates-1],
    "oi_scores": (t,) float32 descending}, t <= 100.
    Raises ValueError naming ``where`` and the field on malformed input or non-finite scores.
    """
    if not isinstance(groundtruth, GroundTruthImage):
        groundtruth = prepare_groundtruth(groundtruth, num_predicates, f"groundtruth for {where}")
    _, labels, scores = object_fields(prediction, mode, where)
    if mode == "predcls" and len(labels) == 0:
        scores = np.ones(len(groundtruth.labels), dtype=np.float32)
    pairs, rel_scores = ranked_pairs(prediction, num_predicates, len(scores), where)
    if len(pairs) == 0:
        return {"oi_triplets": np.zeros((0, 3), dtype=np.int64), "oi_scores": np.zeros(0, dtype=np.float32)}
    foreground = rel_scores[:, 1:].astype(np.float32)
    scores = scores.astype(np.float32)
    if not np.all(np.isfinite(foreground)):
        raise ValueError(f"{where}: field 'rel_scores' has non-finite values")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{where}: field 'scores' has non-finite values")
    pair_scores = scores[pairs[:, 0]] * scores[pairs[:, 1]]
    # Only pairs whose best entry is among the 100 best pair-best entries can place an entry in the top
    # 100 (a pair's best entry precedes its second); their top predicates are found by repeated argmax.
    best = foreground.argmax(axis=1)
    kept = top_candidates(pair_scores * foreground[np.arange(len(pairs)), best])
    remaining = foreground[kept]
    top_predicates = [best[kept]]
    for _ in range(1, min(PREDICATES_PER_PAIR, foreground.shape[1])):
        remaining[np.arange(len(kept)), top_predicates[-1]] = -np.inf
        top_predicates.append(remaining.argmax(axis=1))
    top_predicates = np.stack(top_predicates, axis=1)  # (c, 1 or 2), first maximum on ties
    products = pair_scores[kept, None] * np.take_along_axis(foreground[kept], top_predicates, axis=1)
    flat = products.ravel()
    entries = top_candidates(flat)
    order = entries[np.argsort(-flat[entries], kind="stable")[:TOP_CANDIDATES]]
    order = order[flat[order] > MIN_CANDIDATE_SCORE]
    rows, columns = np.divmod(order, top_predicates.shape[1])
    triplets = np.column_stack([pairs[kept[rows]], top_predicates[rows, columns] + 1]).astype(np.int64)
    return {"oi_triplets": triplets, "oi_scores": flat[order]}


def compact_oi_prediction(prediction: Mapping[str, Any], groundtruth: GroundTruthImage | Mapping[str, Any],
                          mode: str, num_predicates: int, max_k: int = 100, where: str = "prediction") -> dict:
    """The compact form of :func:`compact_prediction` plus the OI candidates of :func:`oi_candidates`:
    everything :class:`OIEvaluator` reads, a few KB per image."""
    if not isinstance(groundtruth, GroundTruthImage):
        groundtruth = prepare_groundtruth(groundtruth, num_predicates, f"groundtruth for {where}")
    return {**compact_prediction(prediction, groundtruth, mode, num_predicates, max_k, where),
            **oi_candidates(prediction, groundtruth, mode, num_predicates, where)}


@dataclass(frozen=True)
class _OIImage:
    """One image's OI record (m GT relations, t candidates).

    gt_predicates: (m,) int64; first_hits: (m,) int64 first candidate position matching each GT relation
    (``_NEVER`` if none); predicates: (t,) int64 candidate predicates; scores: (t,) float32 candidate
    scores; tp_rel, tp_phr: (t,) bool, whether each candidate is a true positive of the relation / phrase AP.
    """

    gt_predicates: np.ndarray
    first_hits: np.ndarray
    predicates: np.ndarray
    scores: np.ndarray
    tp_rel: np.ndarray
    tp_phr: np.ndarray


_GT_FIELDS = ("gt_predicates", "first_hits")
_CANDIDATE_FIELDS = ("predicates", "scores", "tp_rel", "tp_phr")


class OIEvaluator:
    """PySGG's Open Images V6 relation metrics, quirks included (docs/reference.md#oi-evaluation-protocol).

    num_predicates: including background 0 (31 for OIv6). predicate_names: num_predicates names, index 0 =
    background (kept for reports). iou_threshold: recall needs IoU >= it for subject and object, the APs
    need overlap > it (+1 pixel convention, float32). mode: "predcls" | "sgcls" | "sgdet", used by the
    classic block (mR@K); OIv6 results are conventionally SGDet.

    ``add`` takes one image at a time: a full prediction (as for :meth:`SGGEvaluator.add`) or the OI
    compact form of :func:`compact_oi_prediction`. Unlike the classic block, the OI block counts every
    image, with or without GT relations or predictions. ``summarize`` returns the metrics dict;
    ``state``/``merge`` combine evaluators filled in different processes.
    """

    def __init__(self, num_predicates: int = 31, predicate_names: Sequence[str] | None = None,
                 iou_threshold: float = 0.5, mode: str = "sgdet") -> None:
        if mode not in MODES:
            raise ValueError(f"OIEvaluator: mode must be one of {MODES}, got {mode!r}")
        self.classic = SGGEvaluator(mode, num_predicates, predicate_names, iou_threshold=iou_threshold,
                                    recall_ks=CLASSIC_RECALL_KS)
        self.mode = mode
        self.num_predicates = int(num_predicates)
        self.predicate_names = list(predicate_names) if predicate_names is not None else None
        self.iou_threshold = float(iou_threshold)
        self._images: dict[int, _OIImage] = {}
        self._next_image_id = 0

    # ------------------------------------------------------------------ filling
    def add(self, groundtruth: Mapping[str, Any], prediction: Mapping[str, Any], image_id: int | None = None) -> None:
        """Evaluate one image.

        groundtruth: {"boxes": (n, 4) xyxy original frame, "labels": (n,), "relations": (m, 3)
            [subject, object, predicate]} (``get_groundtruth(i, evaluation=True)``: all relations kept).
        prediction: full {"boxes", "labels", "scores", "rel_pair_idxs" (p, 2) ranked, "rel_scores"
            (p, num_predicates)} or the OI compact form; numpy or torch, original image frame.
        image_id: a unique id (dataset index); default a counter. Raises ValueError naming the image and
        the field on malformed input.
        """
        image_id = self._next_image_id if image_id is None else int(image_id)
        if image_id in self._images:
            raise ValueError(f"OIEvaluator.add: image id {image_id} was already added")
        where = f"prediction of image {image_id}"
        gt = prepare_groundtruth(groundtruth, self.num_predicates, f"groundtruth of image {image_id}")
        if is_oi_compact(prediction):
            candidates = _check_candidates(prediction, self.num_predicates, where)
        elif is_compact(prediction):
            raise ValueError(f"{where}: a compact prediction without OI candidates ('oi_triplets'); the OI "
                             f"protocol needs predictions compacted by compact_oi_prediction")
        else:
            candidates = oi_candidates(prediction, gt, self.mode, self.num_predicates, where)
        boxes, labels = _candidate_objects(prediction, gt, self.mode, where)
        check_range(candidates["oi_triplets"][:, :2], 0, len(labels), "oi_triplets", where)
        self.classic.add(groundtruth, prediction, image_id=image_id)
        self._images[image_id] = self._image_record(gt, candidates["oi_triplets"], candidates["oi_scores"],
                                                    boxes, labels)
        self._next_image_id = max(self._next_image_id, image_id + 1)

    def _image_record(self, gt: GroundTruthImage, triplets: np.ndarray, scores: np.ndarray, boxes: np.ndarray,
                      labels: np.ndarray) -> _OIImage:
        """Recall positions and AP true-positive flags of one image's t candidates against its m GT rows."""
        gt_subjects, gt_objects, gt_predicates = gt.relations.T
        subjects, objects, predicates = triplets.T
        same_predicate = predicates[:, None] == gt_predicates[None, :]  # (t, m)
        gt_keys = triplet_keys(gt.labels[gt_subjects], gt.labels[gt_objects], gt_predicates)
        keys = triplet_keys(labels[subjects], labels[objects], predicates)
        candidate, row = np.nonzero(keys[:, None] == gt_keys[None, :])
        gt_pair_boxes = (gt.boxes[gt_subjects[row]], gt.boxes[gt_objects[row]])
        pair_boxes = (boxes[subjects[candidate]], boxes[objects[candidate]])
        with np.errstate(invalid="ignore", divide="ignore"):
            subject_iou = paired_iou_legacy(gt_pair_boxes[0], pair_boxes[0], dtype=np.float32)
            object_iou = paired_iou_legacy(gt_pair_boxes[1], pair_boxes[1], dtype=np.float32)
            phrase_iou = paired_iou_legacy(union_boxes(*gt_pair_boxes), union_boxes(*pair_boxes), dtype=np.float32)
        hit = (subject_iou >= self.iou_threshold) & (object_iou >= self.iou_threshold)
        first_hits = np.full(len(gt_predicates), _NEVER, dtype=np.int64)
        np.minimum.at(first_hits, row[hit], candidate[hit])
        return _OIImage(gt_predicates=gt_predicates.copy(), first_hits=first_hits, predicates=predicates.copy(),
                        scores=scores.astype(np.float32),
                        tp_rel=self._true_positives(same_predicate, candidate, row,
                                                    np.minimum(subject_iou, object_iou)),
                        tp_phr=self._true_positives(same_predicate, candidate, row, phrase_iou))

    def _true_positives(self, same_predicate: np.ndarray, candidate: np.ndarray, row: np.ndarray,
                        overlap: np.ndarray) -> np.ndarray:
        """PySGG's ``ap_eval`` decisions for one image's candidates, in list (score) order.

        same_predicate: (t, m) bool; candidate, row, overlap: (c,) the label-matching (candidate, GT row)
        cells and their overlap. A candidate tries only the GT row of its predicate with the largest
        overlap (0 where the labels differ; first row on ties); it is a TP when that overlap exceeds the
        threshold and no earlier candidate claimed the row. -> (t,) bool.
        """
        overlaps = np.where(same_predicate, np.float32(0), np.float32(-1))
        overlaps[candidate, row] = overlap
        if overlaps.shape[1] == 0:
            return np.zeros(len(overlaps), dtype=bool)
        best_row = overlaps.argmax(axis=1)
        claiming = np.flatnonzero(overlaps[np.arange(len(overlaps)), best_row] > self.iou_threshold)
        _, first = np.unique(best_row[claiming], return_index=True)
        true_positive = np.zeros(len(overlaps), dtype=bool)
        true_positive[claiming[first]] = True
        return true_positive

    # ------------------------------------------------------------------ combining
    def state(self) -> dict:
        """Picklable state (plain numpy arrays, ints and the classic block's state) for gathering across ranks."""
        image_ids = sorted(self._images)
        records = [self._images[image_id] for image_id in image_ids]
        state: dict[str, Any] = {"mode": self.mode, "num_predicates": self.num_predicates,
                                 "iou_threshold": self.iou_threshold, "classic": self.classic.state(),
                                 "image_ids": np.array(image_ids, dtype=np.int64),
                                 "gt_counts": np.array([len(r.gt_predicates) for r in records], dtype=np.int64),
                                 "candidate_counts": np.array([len(r.predicates) for r in records], dtype=np.int64)}
        for name in _GT_FIELDS + _CANDIDATE_FIELDS:
            parts = [getattr(record, name) for record in records]
            state[name] = np.concatenate(parts) if parts else np.zeros(0)
        return state

    def merge(self, other: "OIEvaluator | Mapping[str, Any]") -> None:
        """Add the images of another evaluator (or its ``state()``, e.g. from another rank).

        Both must have the same mode, predicates and IoU threshold and disjoint image ids; the merged
        result equals one evaluator fed all images.
        """
        state = other.state() if isinstance(other, OIEvaluator) else other
        for key in ("mode", "num_predicates", "iou_threshold"):
            if state[key] != getattr(self, key):
                raise ValueError(f"OIEvaluator.merge: {key} differs ({state[key]!r} vs {getattr(self, key)!r})")
        incoming = state["image_ids"].tolist()
        overlap = set(incoming) & set(self._images)
        if overlap:
            raise ValueError(f"OIEvaluator.merge: image ids added to both evaluators, e.g. {min(overlap)}")
        self.classic.merge(state["classic"])
        split = {name: np.split(np.asarray(state[name]), np.cumsum(state[counts])[:-1]) if len(incoming) else []
                 for names, counts in ((_GT_FIELDS, "gt_counts"), (_CANDIDATE_FIELDS, "candidate_counts"))
                 for name in names}
        dtypes = {"gt_predicates": np.int64, "first_hits": np.int64, "predicates": np.int64, "scores": np.float32,
                  "tp_rel": bool, "tp_phr": bool}
        for index, image_id in enumerate(incoming):
            self._images[image_id] = _OIImage(**{name: split[name][index].astype(dtypes[name]) for name in split})
        self._next_image_id = max([self._next_image_id] + [i + 1 for i in incoming])

    # ------------------------------------------------------------------ results
    def summarize(self) -> dict:
        """The metrics dict (fractions, not percent; definitions in docs/evaluation.md).

        OI block: "R@K" for K in 1, 5, 10, 20, 50, 100 (micro: all hits / (all GT relations + 1e-12)),
        "R@K_per_image" (mean of per-image hits / (GT + 1e-12)), "mAP_rel", "wmAP_rel", "mAP_phr",
        "wmAP_phr", "final_score" = 0.2 R@50 + 0.4 mAP_rel + 0.4 mAP_phr, "score_wtd" (PySGG's
        w_final_score) = 0.2 R@50 + 0.4 wmAP_rel + 0.4 wmAP_phr, and per predicate (num_predicates-1
        floats, id order) "AP_rel_per_predicate", "AP_phr_per_predicate", "npos_per_predicate" (test GT
        counts, the wmAP weights). Classic block: "mR@K" and "mR_per_predicate@K" for K in 20, 50, 100,
        and the whole :meth:`SGGEvaluator.summarize` dict under "classic". Also "num_images",
        "num_gt_relations". The weighted numbers are NaN without any GT relation.
        """
        image_ids = sorted(self._images)
        records = [self._images[image_id] for image_id in image_ids]
        gt_counts = np.array([len(r.gt_predicates) for r in records], dtype=np.int64)
        first_hits = _concatenate([r.first_hits for r in records], np.int64)
        image_of_gt = np.repeat(np.arange(len(records)), gt_counts)
        total_gt = int(gt_counts.sum())
        results: dict[str, Any] = {"mode": self.mode, "num_images": len(records), "num_gt_relations": total_gt}
        for k in OI_RECALL_KS:
            hits = np.bincount(image_of_gt, weights=first_hits < k, minlength=len(records))
            results[f"R@{k}"] = float(hits.sum()) / (float(total_gt) + _EPSILON)
            results[f"R@{k}_per_image"] = float(np.mean(hits / (gt_counts + _EPSILON))) if records else math.nan

        npos = np.bincount(_concatenate([r.gt_predicates for r in records], np.int64),
                           minlength=self.num_predicates)[1:self.num_predicates]
        predicates = _concatenate([r.predicates for r in records], np.int64)
        scores = _concatenate([r.scores for r in records], np.float32)
        for name in ("rel", "phr"):
            true_positives = _concatenate([getattr(r, f"tp_{name}") for r in records], bool)
            aps = [_average_precision(scores[predicates == c], true_positives[predicates == c], int(npos[c - 1]))
                   for c in range(1, self.num_predicates)]
            mean_ap, weighted_ap = 0.0, 0.0
            for ap, count in zip(aps, npos.tolist()):  # PySGG's summation order
                mean_ap += ap
                weighted_ap += ap * float(count) / float(total_gt) if total_gt else math.nan
            results[f"mAP_{name}"] = mean_ap / len(aps)
            results[f"wmAP_{name}"] = weighted_ap
            results[f"AP_{name}_per_predicate"] = aps
        results["npos_per_predicate"] = npos.tolist()
        results["final_score"] = 0.4 * results["mAP_rel"] + 0.2 * results["R@50"] + 0.4 * results["mAP_phr"]
        results["score_wtd"] = 0.4 * results["wmAP_rel"] + 0.2 * results["R@50"] + 0.4 * results["wmAP_phr"]

        classic = self.classic.summarize()
        for k in CLASSIC_RECALL_KS:
            results[f"mR@{k}"] = classic[f"mR@{k}"]
            results[f"mR_per_predicate@{k}"] = classic[f"mR_per_predicate@{k}"]
        results["classic"] = classic
        return results


def _average_precision(scores: np.ndarray, true_positives: np.ndarray, npos: int) -> float:
    """PySGG's ``ap_eval`` + ``get_ap`` for one predicate: VOC all-point AP of detections sorted by score.

    scores, true_positives: (d,) the predicate's detections of all images in image-id order (ties keep
    that order). npos: its GT relation count. 0.0 without detections.
    """
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    tp = np.cumsum(true_positives[order].astype(np.float64))
    fp = np.cumsum(~true_positives[order]).astype(np.float64)
    recall = np.concatenate([[0.0], tp / (float(npos) + _EPSILON), [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, np.finfo(np.float64).eps), [0.0]])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def _concatenate(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _candidate_objects(prediction: Mapping[str, Any], gt: GroundTruthImage, mode: str,
                       where: str) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (k, 4) float32 and labels (k,) the candidates index: the prediction's, or in PredCls without
    object fields the GT's."""
    boxes, labels, _ = object_fields(prediction, mode, where)
    if mode == "predcls" and len(labels) == 0:
        return gt.boxes, gt.labels
    return boxes, labels


def _check_candidates(prediction: Mapping[str, Any], num_predicates: int, where: str) -> dict[str, np.ndarray]:
    """The OI candidates of a compact prediction, checked: (t, 3) triplets, (t,) float32 scores, t <= 100."""
    triplets = get_array(prediction, "oi_triplets", where, 2, 3, integer=True)
    scores = get_array(prediction, "oi_scores", where, 1).astype(np.float32)
    check_length(scores, len(triplets), "oi_scores", "oi_triplets", where)
    if len(triplets) > TOP_CANDIDATES:
        raise ValueError(f"{where}: field 'oi_triplets' has {len(triplets)} rows, at most {TOP_CANDIDATES} expected")
    check_range(triplets[:, 2], 1, num_predicates, "oi_triplets", where)
    return {"oi_triplets": triplets, "oi_scores": scores}
