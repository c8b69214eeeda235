"""REFERENCE ONLY: a literal, loop-based implementation of PySGG's Open Images V6 metrics
(docs/reference.md#oi-evaluation-protocol).

It is organised as PySGG's ``eval_rel_results`` / ``ap_eval_rel.py`` are: per image, the candidates
(predicates ranked per pair with ``np.argsort``, the p × 2 score matrix, its best 100 by ``np.argsort`` of
the negated flattened matrix, the > 1e-5 cut), a list ``pred_to_gt`` of matched GT rows per candidate
(Python loops, IoU one box pair at a time in float32) and the recall unions (``reduce(np.union1d, ...)``);
then, per predicate, all images' detections sorted by confidence and walked one by one against that
image's GT with a "visited" list, and the VOC AP with its precision envelope built in a loop. It is
deliberately slow and simple: tests compare :class:`rebalance_hca.evaluation.OIEvaluator` against it and
``benchmarks/bench_oi_evaluator.py`` times it as the PySGG-style baseline. mR@K (PySGG's classic block)
comes from the SGB-style loop reference in ``sgg_loop_reference.py``. ``np.argsort`` uses numpy's
default (unstable) kind, as PySGG's: inputs must avoid exact score ties for an exact comparison.
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from sgg_loop_reference import LoopReferenceEvaluator, _as_numpy, _iou_float32


def _union_box(box_a, box_b):
    return [min(box_a[0], box_b[0]), min(box_a[1], box_b[1]), max(box_a[2], box_b[2]), max(box_a[3], box_b[3])]


def _voc_ap(recall, precision) -> float:
    """VOC all-point AP: sentinels, precision envelope from the right, sum of Δrecall × precision."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    changes = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


class OILoopReference:
    """REFERENCE: PySGG's OI metrics with loops. Same constructor and result keys as OIEvaluator (a subset)."""

    def __init__(self, num_predicates=31, iou_threshold=0.5, mode="sgdet"):
        self.num_predicates = num_predicates
        self.iou_threshold = iou_threshold
        self.mode = mode
        self.classic = LoopReferenceEvaluator(mode, num_predicates, iou_threshold=iou_threshold)
        self.images = []  # per image: candidate list and GT list

    def add(self, groundtruth, prediction):
        self.classic.add(groundtruth, prediction)
        gt_boxes = _as_numpy(groundtruth["boxes"]).reshape(-1, 4).tolist()
        gt_labels = [int(v) for v in _as_numpy(groundtruth["labels"]).reshape(-1)]
        gt_rels = [tuple(int(v) for v in row) for row in _as_numpy(groundtruth["relations"]).reshape(-1, 3)]
        pairs = _as_numpy(prediction["rel_pair_idxs"]).reshape(-1, 2)
        if self.mode == "predcls" and "labels" not in prediction:
            boxes, labels = gt_boxes, gt_labels
            object_scores = np.ones(len(gt_labels), dtype=np.float32)
        else:
            boxes = _as_numpy(prediction["boxes"]).reshape(-1, 4).tolist()
            labels = [int(v) for v in _as_numpy(prediction["labels"]).reshape(-1)]
            object_scores = _as_numpy(prediction["scores"]).astype(np.float32)
        candidates = []  # (subject box, object box, subject label, predicate, object label, score)
        if len(pairs):
            predicate_scores = _as_numpy(prediction["rel_scores"]).astype(np.float32)[:, 1:]
            ranked_predicates = np.argsort(-predicate_scores, axis=1)
            ranked_scores = -np.sort(-predicate_scores, axis=1)
            pair_scores = object_scores[pairs[:, 0]] * object_scores[pairs[:, 1]]
            matrix = pair_scores[:, None] * ranked_scores[:, :2]
            best = np.column_stack(np.unravel_index(np.argsort(-matrix.ravel()), matrix.shape))[:100]
            for row, column in best:
                score = matrix[row, column]
                if score > 0.00001:
                    subject, obj = int(pairs[row, 0]), int(pairs[row, 1])
                    candidates.append((boxes[subject], boxes[obj], labels[subject],
                                       int(ranked_predicates[row, column]) + 1, labels[obj], score))
        gts = [(gt_boxes[s], gt_boxes[o], gt_labels[s], p, gt_labels[o]) for s, o, p in gt_rels]
        pred_to_gt = []
        for sbox, obox, slabel, predicate, olabel, _ in candidates:
            pred_to_gt.append([g for g, (gs, go, gsl, gp, gol) in enumerate(gts)
                               if (gsl, gp, gol) == (slabel, predicate, olabel)
                               and _iou_float32(gs, sbox) >= self.iou_threshold
                               and _iou_float32(go, obox) >= self.iou_threshold])
        self.images.append((candidates, gts, pred_to_gt))

    def summarize(self):
        results = {}
        total_gt = sum(len(gts) for _, gts, _ in self.images)
        for k in (1, 5, 10, 20, 50, 100):
            hits, per_image = 0, []
            for _, gts, pred_to_gt in self.images:
                match = reduce(np.union1d, pred_to_gt[:k]) if pred_to_gt else []
                hits += len(match)
                per_image.append(float(len(match)) / float(len(gts) + 1e-12))
            results[f"R@{k}"] = float(hits) / (float(total_gt) + 1e-12)
            results[f"R@{k}_per_image"] = float(np.mean(per_image))
        npos = [sum(1 for _, gts, _ in self.images for gt in gts if gt[3] == c)
                for c in range(1, self.num_predicates)]
        for name in ("rel", "phr"):
            aps = [self._class_ap(c, npos[c - 1], name == "rel") for c in range(1, self.num_predicates)]
            mean_ap = weighted_ap = 0.0
            for ap, count in zip(aps, npos):
                mean_ap += ap
                weighted_ap += ap * float(count) / float(total_gt)
            results[f"mAP_{name}"] = mean_ap / len(aps)
            results[f"wmAP_{name}"] = weighted_ap
            results[f"AP_{name}_per_predicate"] = aps
        results["npos_per_predicate"] = npos
        results["final_score"] = 0.4 * results["mAP_rel"] + 0.2 * results["R@50"] + 0.4 * results["mAP_phr"]
        results["score_wtd"] = 0.4 * results["wmAP_rel"] + 0.2 * results["R@50"] + 0.4 * results["wmAP_phr"]
        classic = self.classic.summarize()
        for k in (20, 50, 100):
            results[f"mR@{k}"] = classic[f"mR@{k}"]
            results[f"mR_per_predicate@{k}"] = classic[f"mR_per_predicate@{k}"]
        return results

    def _class_ap(self, predicate, npos, relation):
        detections = [(score, image, candidate) for image, (candidates, _, _) in enumerate(self.images)
                      for candidate in candidates if candidate[3] == predicate for score in [candidate[5]]]
        confidence = np.array([score for score, _, _ in detections], dtype=np.float64)
        order = np.argsort(-confidence)
        visited = [[False] * len(gts) for _, gts, _ in self.images]
        tp, fp = np.zeros(len(detections)), np.zeros(len(detections))
        for d, index in enumerate(order):
            _, image, (sbox, obox, slabel, _, olabel, _) = detections[index]
            gts = self.images[image][1]
            best, best_row = -np.inf, -1
            rows = [g for g, gt in enumerate(gts) if gt[3] == predicate]
            if rows:
                best = 0.0
                for g in rows:  # first maximum wins, as np.argmax
                    gs, go, gsl, _, gol = gts[g]
                    if (gsl, gol) != (slabel, olabel):
                        overlap = 0.0
                    elif relation:
                        overlap = min(_iou_float32(gs, sbox), _iou_float32(go, obox))
                    else:
                        overlap = _iou_float32(_union_box(gs, go), _union_box(sbox, obox))
                    if best_row < 0 or overlap > best:
                        best, best_row = overlap, g
            if best > self.iou_threshold and not visited[image][best_row]:
                tp[d] = 1.0
                visited[image][best_row] = True
            else:
                fp[d] = 1.0
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / (float(npos) + 1e-12)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return _voc_ap(recall, precision)
