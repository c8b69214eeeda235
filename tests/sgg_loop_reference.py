"""REFERENCE ONLY: a literal, loop-based implementation of SGB's relation metrics (docs/reference.md#relation-recall).

It follows the definitions step by step in the way SGB's ``sgg_eval.py`` is organised: per image, a
list ``pred_to_gt`` of matched GT rows per prediction (Python loops over predictions and GT rows, IoU one
box pair at a time in float32), then, separately for every metric and every K, the union of the first K
lists (``reduce(np.union1d, ...)``). It is deliberately slow and simple. Tests compare the vectorized
:class:`rebalance_hca.evaluation.SGGEvaluator` against it, and ``benchmarks/bench_sgg_eval.py`` times it
as the SGB-style baseline. The no-graph-constraint entries are scored and sorted with numpy, as SGB does,
with ties broken by ascending flat index (SGB's unstable ``np.argsort`` leaves them unspecified).
"""
from __future__ import annotations

from functools import reduce

import numpy as np


def _as_numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _iou_float32(box_a, box_b) -> float:
    """+1-pixel IoU of two boxes computed in float32, one scalar operation at a time."""
    a = [np.float32(v) for v in box_a]
    b = [np.float32(v) for v in box_b]
    one, zero = np.float32(1), np.float32(0)
    width = max(min(a[2], b[2]) - max(a[0], b[0]) + one, zero)
    height = max(min(a[3], b[3]) - max(a[1], b[1]) + one, zero)
    inter = width * height
    area_a = (a[2] - a[0] + one) * (a[3] - a[1] + one)
    area_b = (b[2] - b[0] + one) * (b[3] - b[1] + one)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a + area_b - inter)


def _pred_to_gt(triplets, gt_rels, gt_classes, gt_boxes, classes, boxes, iou_threshold):
    """For each predicted (subject, object, predicate) in order, the list of GT rows it matches."""
    matched = []
    for subject, obj, predicate in triplets:
        hits = []
        for gt_index, (gt_subject, gt_object, gt_predicate) in enumerate(gt_rels):
            if (classes[subject] == gt_classes[gt_subject] and classes[obj] == gt_classes[gt_object]
                    and predicate == gt_predicate
                    and _iou_float32(gt_boxes[gt_subject], boxes[subject]) >= iou_threshold
                    and _iou_float32(gt_boxes[gt_object], boxes[obj]) >= iou_threshold):
                hits.append(gt_index)
        matched.append(hits)
    return matched


def _union_of_first(pred_to_gt, k):
    """The GT rows matched by the first k predictions (SGB: ``reduce(np.union1d, pred_to_gt[:k])``)."""
    return [int(v) for v in reduce(np.union1d, pred_to_gt[:k])] if pred_to_gt[:k] else []


class LoopReferenceEvaluator:
    """REFERENCE: SGB's metrics with loops. Same constructor subset and result keys as SGGEvaluator."""

    def __init__(self, mode, num_predicates=51, zeroshot_triplets=None, iou_threshold=0.5, recall_ks=(20, 50, 100)):
        self.mode = mode
        self.num_predicates = num_predicates
        self.zeroshot = set() if zeroshot_triplets is None else {tuple(int(v) for v in row)
                                                                  for row in _as_numpy(zeroshot_triplets)}
        self.iou_threshold = iou_threshold
        self.recall_ks = tuple(recall_ks)
        self.lists = {name: {k: [] for k in recall_ks}
                      for name in ("R", "ng-R", "zR", "ng-zR", "A_hit", "A_count")}
        self.per_predicate = {name: {k: [[] for _ in range(num_predicates)] for k in recall_ks}
                              for name in ("mR", "ng-mR")}

    def add(self, groundtruth, prediction):
        gt_rels = [tuple(int(v) for v in row) for row in _as_numpy(groundtruth["relations"]).reshape(-1, 3)]
        if len(gt_rels) == 0:
            return
        gt_boxes = _as_numpy(groundtruth["boxes"]).reshape(-1, 4).tolist()
        gt_classes = [int(v) for v in _as_numpy(groundtruth["labels"]).reshape(-1)]
        pairs = [tuple(int(v) for v in row) for row in _as_numpy(prediction["rel_pair_idxs"]).reshape(-1, 2)]
        rel_scores = _as_numpy(prediction["rel_scores"])
        if self.mode == "predcls":
            boxes, classes = gt_boxes, gt_classes
            object_scores = np.ones(len(gt_classes))
        else:
            boxes = _as_numpy(prediction["boxes"]).reshape(-1, 4).tolist()
            classes = [int(v) for v in _as_numpy(prediction["labels"]).reshape(-1)]
            object_scores = _as_numpy(prediction["scores"])
        gt_pairs = {(s, o) for s, o, _ in gt_rels}
        zeroshot_rows = [i for i, (s, o, p) in enumerate(gt_rels) if (gt_classes[s], gt_classes[o], p) in self.zeroshot]
        if len(pairs) == 0:
            return

        # graph constraint: each pair with its argmax foreground predicate (first maximum), in the given order
        triplets = []
        for rank, (s, o) in enumerate(pairs):
            best = 1
            for predicate in range(2, self.num_predicates):
                if rel_scores[rank, predicate] > rel_scores[rank, best]:
                    best = predicate
            triplets.append((s, o, best))
        pred_to_gt = _pred_to_gt(triplets, gt_rels, gt_classes, gt_boxes, classes, boxes, self.iou_threshold)

        # no graph constraint: every (pair, predicate) scored (obj_s * obj_o) * rel_score, top 100
        # (scored and sorted with numpy, as SGB does; ties by ascending flat index)
        pair_index = np.array(pairs)
        entry_scores = ((object_scores[pair_index[:, 0]] * object_scores[pair_index[:, 1]])[:, None]
                        * rel_scores[:, 1:]).ravel()
        order = np.lexsort((np.arange(len(entry_scores)), -entry_scores))[:100]
        ng_triplets = [(*pairs[flat // (self.num_predicates - 1)], flat % (self.num_predicates - 1) + 1)
                       for flat in order.tolist()]
        ng_pred_to_gt = _pred_to_gt(ng_triplets, gt_rels, gt_classes, gt_boxes, classes, boxes, self.iou_threshold)

        for name, matches in (("R", pred_to_gt), ("ng-R", ng_pred_to_gt)):
            for k in self.recall_ks:
                self.lists[name][k].append(len(_union_of_first(matches, k)) / len(gt_rels))
        if self.mode != "sgdet":
            in_gt_pair = [matches for (s, o), matches in zip(pairs, pred_to_gt) if (s, o) in gt_pairs]
            for k in self.recall_ks:
                self.lists["A_hit"][k].append(float(len(_union_of_first(in_gt_pair, k))))
                self.lists["A_count"][k].append(float(len(gt_rels)))
        for name, matches in (("mR", pred_to_gt), ("ng-mR", ng_pred_to_gt)):
            for k in self.recall_ks:
                match = _union_of_first(matches, k)
                counts = [0] * self.num_predicates
                hits = [0] * self.num_predicates
                for _, _, predicate in gt_rels:
                    counts[predicate] += 1
                for gt_index in match:
                    hits[gt_rels[gt_index][2]] += 1
                for predicate in range(1, self.num_predicates):
                    if counts[predicate] > 0:
                        self.per_predicate[name][k][predicate].append(hits[predicate] / counts[predicate])
        for name, matches in (("zR", pred_to_gt), ("ng-zR", ng_pred_to_gt)):
            for k in self.recall_ks:
                if zeroshot_rows:
                    match = _union_of_first(matches, k)
                    self.lists[name][k].append(len(set(zeroshot_rows) & set(match)) / len(zeroshot_rows))

    def summarize(self):
        nan = float("nan")
        results = {}
        for k in self.recall_ks:
            for name in ("R", "ng-R", "zR", "ng-zR"):
                values = self.lists[name][k]
                results[f"{name}@{k}"] = float(np.mean(values)) if values else nan
            for name in ("mR", "ng-mR"):
                recalls = [float(np.mean(values)) if values else 0.0 for values in self.per_predicate[name][k][1:]]
                results[f"{name}_per_predicate@{k}"] = recalls
                results[f"{name}@{k}"] = sum(recalls) / len(recalls)
            if self.mode != "sgdet":
                hits, counts = self.lists["A_hit"][k], self.lists["A_count"][k]
                results[f"A@{k}"] = float(np.mean(hits) / np.mean(counts)) if hits else nan
        return results
