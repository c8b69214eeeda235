"""SGB-exact scene-graph metrics, vectorized per image (docs/reference.md#relation-recall).

Per image, every metric is decided by one number per GT relation row: the first position at which a
prediction matches it, in each of three ranked lists (graph-constrained pairs, no-graph-constraint
entries, pairs equal to a GT pair). The evaluator stores those positions, so summarizing any K and
merging evaluators from different processes are cheap and exact.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..structures.boxes import paired_iou_legacy
from .compaction import MODES, check_compact_prediction, compact_prediction, is_compact
from ._arrays import get_array, to_numpy
from .groundtruth import CLASS_ID_LIMIT, GroundTruthImage, pairs_in_groundtruth, prepare_groundtruth, triplet_keys

__all__ = ["SGGEvaluator", "predicate_groups"]

_NEVER = np.iinfo(np.int64).max  # position of a GT row that no prediction matches


class SGGEvaluator:
    """Scene graph metrics with the numbers of SGB's ``sgg_eval.py`` (docs/reference.md#relation-recall).

    mode: "predcls" | "sgcls" | "sgdet". num_predicates: including background 0.
    predicate_names: num_predicates names, index 0 = background (kept as ``predicate_names`` for reports).
    zeroshot_triplets: (T, 3) int [subject_class, object_class, predicate]; zR is NaN without them.
    iou_threshold: subject and object IoU (+1 pixel convention, float32 as SGB) needed for a match.
    recall_ks: the K of every @K metric.
    predicate_counts: (num_predicates,) training-set predicate counts (index 0 ignored); they define the
        head/body/tail split of :func:`predicate_groups`. Without them the group means are NaN.

    ``add`` takes one image at a time (full or compact predictions, numpy or torch); ``summarize`` returns
    the metrics dict; ``state``/``merge`` combine evaluators filled in different processes.
    """

    def __init__(self, mode: str = "sgdet", num_predicates: int = 51, predicate_names: Sequence[str] | None = None,
                 zeroshot_triplets: Any = None, iou_threshold: float = 0.5,
                 recall_ks: Sequence[int] = (20, 50, 100), predicate_counts: Any = None) -> None:
        if mode not in MODES:
            raise ValueError(f"SGGEvaluator: mode must be one of {MODES}, got {mode!r}")
        if num_predicates < 2:
            raise ValueError(f"SGGEvaluator: num_predicates must be >= 2 (background included), got {num_predicates}")
        if predicate_names is not None and len(predicate_names) != num_predicates:
            raise ValueError(f"SGGEvaluator: predicate_names has {len(predicate_names)} names, "
                             f"expected num_predicates={num_predicates}")
        if not recall_ks or any(int(k) < 1 for k in recall_ks):
            raise ValueError(f"SGGEvaluator: recall_ks must be positive integers, got {recall_ks}")
        self.mode = mode
        self.num_predicates = int(num_predicates)
        self.predicate_names = list(predicate_names) if predicate_names is not None else None
        self.iou_threshold = float(iou_threshold)
        self.recall_ks = tuple(int(k) for k in recall_ks)
        self.max_k = max(self.recall_ks)
        self._zeroshot_keys = _zeroshot_keys(zeroshot_triplets)
        self.predicate_counts = _predicate_counts(predicate_counts, self.num_predicates)
        self._images: list[tuple[int, np.ndarray]] = []  # (image_id, (5, m) int64 per-GT-row record)
        self._image_ids: set[int] = set()
        self._next_image_id = 0
        self.num_skipped = 0

    # ------------------------------------------------------------------ filling
    def add(self, groundtruth: Mapping[str, Any], prediction: Mapping[str, Any], image_id: int | None = None) -> None:
        """Evaluate one image.

        groundtruth: {"boxes": (n, 4) xyxy, "labels": (n,), "relations": (m, 3) [subject, object, predicate]}.
        prediction: full {"boxes", "labels", "scores", "rel_pair_idxs" (p, 2) ranked, "rel_scores"
            (p, num_predicates)} or the compact form of :func:`compact_prediction` for this mode.
        image_id: a unique id (dataset index); images are aggregated in id order. Defaults to a counter.
        Images with no GT relation or no predicted pair are skipped (counted in ``num_skipped``), as in SGB.
        Raises ValueError naming the image and the field on malformed input.
        """
        image_id = self._next_image_id if image_id is None else int(image_id)
        if image_id in self._image_ids:
            raise ValueError(f"SGGEvaluator.add: image id {image_id} was already added")
        gt = prepare_groundtruth(groundtruth, self.num_predicates, f"groundtruth of image {image_id}")
        where = f"prediction of image {image_id}"
        if is_compact(prediction):
            record = check_compact_prediction(prediction, self.mode, self.max_k, self.num_predicates,
                                              len(gt.labels), where)
        else:
            record = compact_prediction(prediction, gt, self.mode, self.num_predicates, self.max_k, where)
        if len(gt.relations) and record["num_pairs"]:
            self._images.append((image_id, self._gt_row_record(gt, record)))
        else:
            self.num_skipped += 1
        self._image_ids.add(image_id)
        self._next_image_id = max(self._next_image_id, image_id + 1)

    def _gt_row_record(self, gt: GroundTruthImage, record: Mapping[str, Any]) -> np.ndarray:
        """(5, m) int64: first matching position in the graph / ng / GT-pair lists, predicate, zero-shot flag."""
        segment_of, positions, candidate, row, gt_keys = self._matches(gt, record)
        rows = np.full((5, len(gt.relations)), _NEVER, dtype=np.int64)
        np.minimum.at(rows, (segment_of[candidate], row), positions[candidate])
        rows[3] = gt.relations[:, 2]
        rows[4] = self._is_zeroshot(gt_keys)
        return rows

    def _matches(self, gt: GroundTruthImage, record: Mapping[str, Any]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every (candidate, GT row) match of one image.

        The candidates are the graph-constrained pairs (ranks < max K, segment 0), the ng entries (segment 1)
        and, with GT boxes, the pairs equal to a GT pair (segment 2); a candidate matches a GT row when the
        classes and predicate agree and both IoUs reach the threshold. Returns (segment_of (c,), positions
        (c,) each candidate's position in its list, candidate (h,), row (h,) the matched pairs, gt_keys (m,)).
        """
        if self.mode == "predcls":
            object_boxes, object_labels = gt.boxes, gt.labels
        else:
            object_boxes, object_labels = record["boxes"], record["labels"]
        pairs, ranks, ng = record["pair_idxs"], record["pair_ranks"], record["ng_triplets"]
        pair_triplets = np.column_stack([pairs, record["pair_labels"]])
        num_graph = int(np.searchsorted(ranks, self.max_k))
        triplets, positions = [pair_triplets[:num_graph], ng], [ranks[:num_graph], np.arange(len(ng))]
        if self.mode != "sgdet":
            in_gt = pairs_in_groundtruth(pairs, gt.relations)
            triplets.append(pair_triplets[in_gt])
            positions.append(np.arange(len(triplets[-1])))
        segment_of = np.repeat(np.arange(len(triplets)), [len(position) for position in positions])
        triplets, positions = np.concatenate(triplets), np.concatenate(positions)

        gt_subjects, gt_objects, gt_predicates = gt.relations.T
        classes = object_labels[triplets[:, :2]]
        candidate_keys = triplet_keys(classes[:, 0], classes[:, 1], triplets[:, 2])
        gt_keys = triplet_keys(gt.labels[gt_subjects], gt.labels[gt_objects], gt_predicates)
        candidate, row = np.nonzero(candidate_keys[:, None] == gt_keys[None, :])
        gt_members = np.concatenate([gt_subjects[row], gt_objects[row]])
        predicted_members = np.concatenate([triplets[candidate, 0], triplets[candidate, 1]])
        with np.errstate(invalid="ignore", divide="ignore"):
            member_match = paired_iou_legacy(gt.boxes[gt_members], object_boxes[predicted_members],
                                             dtype=np.float32) >= self.iou_threshold
        boxes_match = member_match[:len(row)] & member_match[len(row):]
        return segment_of, positions, candidate[boxes_match], row[boxes_match], gt_keys

    def match_image(self, groundtruth: Mapping[str, Any], prediction: Mapping[str, Any],
                    where: str = "image") -> dict[str, np.ndarray]:
        """Which GT triplets one prediction finds, by this evaluator's R@K matching (for error analysis;
        nothing is added to the evaluator).

        groundtruth, prediction: as for ``add``. Returns {"gt_rank": (m,) int64, the graph-constrained rank
        of the first prediction that matches each GT relation row, -1 when none among the first max K;
        "pair_idxs" (q, 2), "pair_labels" (q,), "pair_scores" (q,) the prediction's first max K ranked pairs
        with their predicate and its probability (NaN where the prediction did not keep it);
        "pair_matched" (q,) bool whether each matches some GT row; "boxes" (k, 4), "labels" (k,) the
        objects the pairs index (the GT objects in PredCls)}.
        """
        gt = prepare_groundtruth(groundtruth, self.num_predicates, f"groundtruth of {where}")
        if is_compact(prediction):
            record = check_compact_prediction(prediction, self.mode, self.max_k, self.num_predicates,
                                              len(gt.labels), f"prediction of {where}")
            record["pair_scores"] = (np.asarray(prediction["pair_scores"], dtype=np.float64)
                                     if "pair_scores" in prediction else np.full(len(record["pair_idxs"]), np.nan))
        else:
            record = compact_prediction(prediction, gt, self.mode, self.num_predicates, self.max_k,
                                        f"prediction of {where}")
        segment_of, positions, candidate, row, _ = self._matches(gt, record)
        graph = segment_of[candidate] == 0
        first = np.full(len(gt.relations), _NEVER, dtype=np.int64)
        np.minimum.at(first, row[graph], positions[candidate[graph]])
        num_graph = int(np.searchsorted(record["pair_ranks"], self.max_k))
        matched = np.zeros(num_graph, dtype=bool)
        matched[candidate[graph]] = True
        predcls = self.mode == "predcls"
        return {"gt_rank": np.where(first == _NEVER, -1, first), "pair_idxs": record["pair_idxs"][:num_graph],
                "pair_labels": record["pair_labels"][:num_graph],
                "pair_scores": np.asarray(record["pair_scores"], dtype=np.float64)[:num_graph],
                "pair_matched": matched, "boxes": gt.boxes if predcls else record["boxes"],
                "labels": gt.labels if predcls else record["labels"]}

    def _is_zeroshot(self, gt_keys: np.ndarray) -> np.ndarray:
        """(m,) bool: whether each GT row's triplet key (:func:`triplet_keys`) is a zero-shot triplet's."""
        if self._zeroshot_keys is None or len(self._zeroshot_keys) == 0:
            return np.zeros(len(gt_keys), dtype=bool)
        found = np.searchsorted(self._zeroshot_keys, gt_keys).clip(max=len(self._zeroshot_keys) - 1)
        return self._zeroshot_keys[found] == gt_keys

    # ------------------------------------------------------------------ combining
    def state(self) -> dict:
        """Picklable state (plain numpy arrays and ints) for gathering across processes."""
        lengths = np.array([rows.shape[1] for _, rows in self._images], dtype=np.int64)
        rows = np.concatenate([rows for _, rows in self._images], axis=1) if self._images \
            else np.zeros((5, 0), dtype=np.int64)
        return {"mode": self.mode, "num_predicates": self.num_predicates, "recall_ks": self.recall_ks,
                "iou_threshold": self.iou_threshold, "num_skipped": self.num_skipped,
                "image_ids": np.array([image_id for image_id, _ in self._images], dtype=np.int64),
                "skipped_image_ids": np.array(sorted(self._image_ids - {i for i, _ in self._images}), dtype=np.int64),
                "gt_rows_per_image": lengths, "gt_rows": rows,
                "zeroshot_keys": self._zeroshot_keys}

    def merge(self, other: "SGGEvaluator | Mapping[str, Any]") -> None:
        """Add the images of another evaluator (or its ``state()``, e.g. from another rank).

        Both must have been built with the same mode, predicates, IoU threshold, Ks and zero-shot set, and
        their image ids must be disjoint; the merged result equals one evaluator fed all images.
        """
        state = other.state() if isinstance(other, SGGEvaluator) else other
        for key in ("mode", "num_predicates", "recall_ks", "iou_threshold"):
            if state[key] != getattr(self, key):
                raise ValueError(f"SGGEvaluator.merge: {key} differs ({state[key]!r} vs {getattr(self, key)!r})")
        if not _same_keys(state["zeroshot_keys"], self._zeroshot_keys):
            raise ValueError("SGGEvaluator.merge: the zero-shot triplet sets differ")
        incoming = set(state["image_ids"].tolist()) | set(state["skipped_image_ids"].tolist())
        overlap = incoming & self._image_ids
        if overlap:
            raise ValueError(f"SGGEvaluator.merge: image ids added to both evaluators, e.g. {min(overlap)}")
        offsets = np.concatenate([[0], np.cumsum(state["gt_rows_per_image"])])
        for index, image_id in enumerate(state["image_ids"].tolist()):
            self._images.append((image_id, state["gt_rows"][:, offsets[index]:offsets[index + 1]]))
        self._image_ids |= incoming
        self._next_image_id = max([self._next_image_id] + [i + 1 for i in incoming])
        self.num_skipped += int(state["num_skipped"])

    # ------------------------------------------------------------------ results
    def summarize(self) -> dict:
        """The metrics dict (keys in docs/evaluation.md); per-image means are taken in image-id order.

        For each K: "R@K", "ng-R@K", "mR@K", "ng-mR@K", "zR@K", "ng-zR@K" (NaN without zero-shot GT rows),
        "A@K" (predcls/sgcls), "F@K" = 2·R·mR/(R+mR), "mR_per_predicate@K" and "ng-mR_per_predicate@K"
        (num_predicates-1 floats, predicate order), "mR_head@K", "mR_body@K", "mR_tail@K". Also
        "num_images" (evaluated) and "num_skipped". With no evaluated image R, ng-R, zR, ng-zR, A and F
        are NaN and mR, ng-mR are 0.0, as in SGB.
        """
        ordered = sorted(self._images, key=lambda item: item[0])
        lengths = np.array([rows.shape[1] for _, rows in ordered], dtype=np.int64)
        rows = np.concatenate([rows for _, rows in ordered], axis=1) if ordered else np.zeros((5, 0), dtype=np.int64)
        image_of_row = np.repeat(np.arange(len(ordered)), lengths)
        predicates, zeroshot = rows[3], rows[4].astype(bool)
        groups = predicate_groups(self.predicate_counts) if self.predicate_counts is not None else None
        results: dict[str, Any] = {"mode": self.mode, "num_images": len(ordered), "num_skipped": self.num_skipped}
        for k in self.recall_ks:
            graph_hits, ng_hits, pair_hits = rows[0] < k, rows[1] < k, rows[2] < k
            recall = _mean_image_recall(graph_hits, image_of_row, lengths)
            per_predicate = self._per_predicate_recall(graph_hits, image_of_row, predicates)
            ng_per_predicate = self._per_predicate_recall(ng_hits, image_of_row, predicates)
            mean_recall = _sgb_mean_recall(per_predicate)
            results[f"R@{k}"] = recall
            results[f"ng-R@{k}"] = _mean_image_recall(ng_hits, image_of_row, lengths)
            results[f"mR@{k}"] = mean_recall
            results[f"ng-mR@{k}"] = _sgb_mean_recall(ng_per_predicate)
            results[f"zR@{k}"] = _zeroshot_recall(graph_hits, zeroshot, image_of_row, len(ordered))
            results[f"ng-zR@{k}"] = _zeroshot_recall(ng_hits, zeroshot, image_of_row, len(ordered))
            if self.mode != "sgdet":
                hits = np.bincount(image_of_row, weights=pair_hits, minlength=len(ordered))
                results[f"A@{k}"] = float(np.mean(hits) / np.mean(lengths.astype(np.float64))) if len(ordered) \
                    else math.nan
            results[f"F@{k}"] = _harmonic_mean(recall, mean_recall)
            results[f"mR_per_predicate@{k}"] = per_predicate
            results[f"ng-mR_per_predicate@{k}"] = ng_per_predicate
            for name in ("head", "body", "tail"):
                members = groups[name] if groups is not None else []
                results[f"mR_{name}@{k}"] = float(np.mean([per_predicate[c - 1] for c in members])) if members \
                    else math.nan
        return results

    def _per_predicate_recall(self, hits: np.ndarray, image_of_row: np.ndarray, predicates: np.ndarray) -> list[float]:
        """SGB's per-predicate recall: mean over the images containing c of hits_c / count_c (0.0 if none).

        hits, image_of_row, predicates: (R,) over all GT rows, images in id order -> num_predicates-1 floats.
        """
        group = image_of_row * self.num_predicates + predicates
        keys, inverse, counts = np.unique(group, return_inverse=True, return_counts=True)
        group_hits = np.bincount(inverse, weights=hits, minlength=len(keys))
        ratios = group_hits / counts
        group_predicates = keys % self.num_predicates
        order = np.argsort(group_predicates, kind="stable")
        bounds = np.searchsorted(group_predicates[order], np.arange(self.num_predicates + 1))
        sorted_ratios = ratios[order]
        return [float(np.mean(sorted_ratios[bounds[c]:bounds[c + 1]])) if bounds[c + 1] > bounds[c] else 0.0
                for c in range(1, self.num_predicates)]


def predicate_groups(predicate_counts: Any) -> dict[str, list[int]]:
    """Head / body / tail predicates from training-set counts (G2S/RB's split, generalised).

    predicate_counts: (P,) counts, index 0 = background (ignored). Predicates 1..P-1 are sorted by
    descending count (ties: lower index first); the last ceil(n/3) form the tail, the ceil(half) of the
    rest just before them the body, and the remainder the head, n = P-1. For VG150 (n = 50) this is
    16 head / 17 body / 17 tail, the split of G2S's ``SGGroup_Mean_Recall``.
    Returns {"head": [...], "body": [...], "tail": [...]} of predicate ids, most frequent first.
    """
    counts = np.asarray(predicate_counts)[1:]
    order = (np.argsort(-counts, kind="stable") + 1).tolist()
    num_tail = math.ceil(len(order) / 3)
    num_body = math.ceil((len(order) - num_tail) / 2)
    num_head = len(order) - num_tail - num_body
    return {"head": order[:num_head], "body": order[num_head:num_head + num_body],
            "tail": order[num_head + num_body:]}


def _mean_image_recall(hits: np.ndarray, image_of_row: np.ndarray, lengths: np.ndarray) -> float:
    """Mean over images of (#GT rows hit) / (#GT rows); NaN without images."""
    if len(lengths) == 0:
        return math.nan
    return float(np.mean(np.bincount(image_of_row, weights=hits, minlength=len(lengths)) / lengths))


def _zeroshot_recall(hits: np.ndarray, zeroshot: np.ndarray, image_of_row: np.ndarray, num_images: int) -> float:
    """Mean over images with zero-shot GT rows of the recall of those rows; NaN when there is none."""
    zeroshot_counts = np.bincount(image_of_row, weights=zeroshot, minlength=num_images)
    zeroshot_hits = np.bincount(image_of_row, weights=hits & zeroshot, minlength=num_images)
    has_zeroshot = zeroshot_counts > 0
    if not has_zeroshot.any():
        return math.nan
    return float(np.mean(zeroshot_hits[has_zeroshot] / zeroshot_counts[has_zeroshot]))


def _sgb_mean_recall(per_predicate: list[float]) -> float:
    """SGB's mR: the sum of all per-predicate recalls (unseen ones count 0) divided by their number."""
    total = 0.0
    for value in per_predicate:
        total += value
    return total / float(len(per_predicate))


def _harmonic_mean(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


def _zeroshot_keys(zeroshot_triplets: Any) -> np.ndarray | None:
    """Sorted unique int64 keys of the (T, 3) zero-shot triplets, or None."""
    if zeroshot_triplets is None:
        return None
    triplets = get_array({"zeroshot_triplets": zeroshot_triplets}, "zeroshot_triplets", "SGGEvaluator", 2, 3,
                         integer=True)
    if triplets.size and (triplets.min() < 0 or triplets.max() >= CLASS_ID_LIMIT):
        raise ValueError(f"SGGEvaluator: zeroshot_triplets values must lie in [0, {CLASS_ID_LIMIT})")
    return np.unique(triplet_keys(triplets[:, 0], triplets[:, 1], triplets[:, 2]))


def _predicate_counts(predicate_counts: Any, num_predicates: int) -> np.ndarray | None:
    if predicate_counts is None:
        return None
    counts = to_numpy(predicate_counts)
    if counts.shape != (num_predicates,):
        raise ValueError(f"SGGEvaluator: predicate_counts has shape {counts.shape}, expected ({num_predicates},)")
    return counts


def _same_keys(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(a, b)
