"""Independent cross-check of ``SGGEvaluator`` against Scene-Graph-Benchmark.pytorch (SGB).

``SGBReference`` below transcribes, in numpy, the algorithm of SGB's relation evaluator
(``maskrcnn_benchmark/data/datasets/evaluation/vg/sgg_eval.py`` and ``vg_eval.py`` of
KaihuaTang/Scene-Graph-Benchmark.pytorch, plus ``boxlist_iou`` of ``structures/boxlist_ops.py`` and
``intersect_2d`` / ``argsort_desc`` / ``bbox_overlaps`` of ``utils/miscellaneous.py``), step by step
and in SGB's order: ``evaluate_relation_of_one_image``, ``_triplet``, ``_compute_pred_matches`` (a loop
over the matched GT rows, float32 IoU with the +1 pixel convention), ``reduce(np.union1d, ...)`` for
every metric and K, and the aggregation of ``SGRecall``, ``SGNoGraphConstraintRecall``,
``SGZeroShotRecall``, ``SGNGZeroShotRecall``, ``SGPairAccuracy``, ``SGMeanRecall`` and
``SGNGMeanRecall``. It is written from SGB's code, independently of ``rebalance_hca.evaluation`` and of
``tests/sgg_loop_reference.py``, so that an error shared by those two would show here.

Random datasets (seeded) mix predcls / sgcls / sgdet, box pairs whose IoU is exactly or nearly the
threshold, duplicated GT rows, several predicates on one GT pair, images without GT relations or
without predicted pairs, pairs beyond rank 100, ties in the graph-constrained argmax and zero-shot
triplets. SGB ranks the no-graph-constraint entries with an unstable ``np.argsort``, whose order of
exactly equal scores is unspecified, so the generator redraws an image whose top 101 entries tie.
"""
import warnings
from functools import reduce

import numpy as np
import pytest
import torch

from rebalance_hca.evaluation import SGGEvaluator

KS = (20, 50, 100)
METRICS = ("R", "ng-R", "mR", "ng-mR", "zR", "ng-zR", "A")


# ----------------------------------------------------------------------------------------------
# SGB's algorithm, transcribed
# ----------------------------------------------------------------------------------------------
def sgb_box_iou(boxes1, boxes2):
    """``boxlist_iou`` of two float32 BoxLists (xyxy, +1 pixel), as an (N, M) float32 array."""
    b1 = np.asarray(boxes1, dtype=np.float32).reshape(-1, 4)
    b2 = np.asarray(boxes2, dtype=np.float32).reshape(-1, 4)
    one = np.float32(1)
    area1 = (b1[:, 2] - b1[:, 0] + one) * (b1[:, 3] - b1[:, 1] + one)
    area2 = (b2[:, 2] - b2[:, 0] + one) * (b2[:, 3] - b2[:, 1] + one)
    lt = np.maximum(b1[:, None, :2], b2[None, :, :2])
    rb = np.minimum(b1[:, None, 2:], b2[None, :, 2:])
    wh = np.maximum(rb - lt + one, np.float32(0))
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def sgb_intersect_2d(x1, x2):
    return (x1[..., None] == x2.T[None, ...]).all(1)


def sgb_argsort_desc(scores):
    return np.column_stack(np.unravel_index(np.argsort(-scores.ravel()), scores.shape))


def sgb_triplet(relations, classes, boxes):
    sub, obj, pred = relations[:, 0], relations[:, 1], relations[:, 2]
    return np.column_stack((classes[sub], pred, classes[obj])), np.column_stack((boxes[sub], boxes[obj]))


def sgb_compute_pred_matches(gt_triplets, pred_triplets, gt_boxes, pred_boxes, iou_thres):
    keeps = sgb_intersect_2d(gt_triplets, pred_triplets)
    gt_has_match = keeps.any(1)
    pred_to_gt = [[] for _ in range(pred_boxes.shape[0])]
    for gt_ind, gt_box, keep_inds in zip(np.where(gt_has_match)[0], gt_boxes[gt_has_match],
                                         keeps[gt_has_match]):
        boxes = pred_boxes[keep_inds]
        sub_iou = sgb_box_iou(gt_box[None, :4], boxes[:, :4])[0]
        obj_iou = sgb_box_iou(gt_box[None, 4:], boxes[:, 4:])[0]
        # float32 array against a Python float: compared in float32, as in SGB
        inds = (sub_iou >= iou_thres) & (obj_iou >= iou_thres)
        for i in np.where(keep_inds)[0][inds]:
            pred_to_gt[i].append(int(gt_ind))
    return pred_to_gt


def _zeroshot_hits(zeroshot_idx, match):
    match_list = match.tolist() if not isinstance(match, (list, tuple)) else match
    return len(zeroshot_idx) + len(match_list) - len(set(zeroshot_idx + match_list))


class SGBReference:
    """SGB's ``do_vg_evaluation`` relation part, fed with this project's input dicts."""

    def __init__(self, mode, num_rel, zeroshot_triplet, iou_thres=0.5):
        self.mode, self.num_rel, self.iou_thres = mode, num_rel, iou_thres
        self.zeroshot_triplet = np.asarray(zeroshot_triplet, dtype=np.int64).reshape(-1, 3)
        self.lists = {name: {k: [] for k in KS}
                      for name in ("recall", "recall_nogc", "zeroshot", "ng_zeroshot", "acc_hit", "acc_count")}
        self.collect = {name: {k: [[] for _ in range(num_rel)] for k in KS} for name in ("mR", "ng-mR")}

    def add(self, gt, pred):
        gt_rels = np.asarray(gt["relations"], dtype=np.int64).reshape(-1, 3)
        if len(gt_rels) == 0:
            return
        gt_boxes = np.asarray(gt["boxes"], dtype=np.float32).reshape(-1, 4)
        gt_classes = np.asarray(gt["labels"], dtype=np.int64)
        pred_rel_inds = np.asarray(pred["rel_pair_idxs"], dtype=np.int64).reshape(-1, 2)
        rel_scores = np.asarray(pred["rel_scores"])
        if self.mode == "predcls":
            pred_boxes, pred_classes = gt_boxes, gt_classes
            obj_scores = np.ones(gt_classes.shape[0])
        else:
            pred_boxes = np.asarray(pred["boxes"], dtype=np.float32).reshape(-1, 4)
            pred_classes = np.asarray(pred["labels"], dtype=np.int64)
            obj_scores = np.asarray(pred["scores"])

        if self.mode != "sgdet":  # SGPairAccuracy.prepare_gtpair
            pred_pair_idx = pred_rel_inds[:, 0] * 1024 + pred_rel_inds[:, 1]
            gt_pair_idx = gt_rels[:, 0] * 1024 + gt_rels[:, 1]
            pred_pair_in_gt = (pred_pair_idx[:, None] == gt_pair_idx[None, :]).sum(-1) > 0
        zs_triplets = np.column_stack((gt_classes[gt_rels[:, 0]], gt_classes[gt_rels[:, 1]], gt_rels[:, 2]))
        zeroshot_idx = np.where(sgb_intersect_2d(zs_triplets, self.zeroshot_triplet).sum(-1) > 0)[0].tolist()

        if pred_rel_inds.shape[0] == 0:
            return

        # SGRecall
        pred_rels = np.column_stack((pred_rel_inds, 1 + rel_scores[:, 1:].argmax(1)))
        gt_triplets, gt_triplet_boxes = sgb_triplet(gt_rels, gt_classes, gt_boxes)
        pred_triplets, pred_triplet_boxes = sgb_triplet(pred_rels, pred_classes, pred_boxes)
        pred_to_gt = sgb_compute_pred_matches(gt_triplets, pred_triplets, gt_triplet_boxes,
                                              pred_triplet_boxes, self.iou_thres)
        # SGNoGraphConstraintRecall
        obj_scores_per_rel = obj_scores[pred_rel_inds].prod(1)
        nogc_overall_scores = obj_scores_per_rel[:, None] * rel_scores[:, 1:]
        nogc_score_inds = sgb_argsort_desc(nogc_overall_scores)[:100]
        nogc_pred_rels = np.column_stack((pred_rel_inds[nogc_score_inds[:, 0]], nogc_score_inds[:, 1] + 1))
        nogc_triplets, nogc_triplet_boxes = sgb_triplet(nogc_pred_rels, pred_classes, pred_boxes)
        nogc_pred_to_gt = sgb_compute_pred_matches(gt_triplets, nogc_triplets, gt_triplet_boxes,
                                                   nogc_triplet_boxes, self.iou_thres)

        m = float(gt_rels.shape[0])
        for k in KS:
            match = reduce(np.union1d, pred_to_gt[:k])
            nogc_match = reduce(np.union1d, nogc_pred_to_gt[:k])
            self.lists["recall"][k].append(float(len(match)) / m)
            self.lists["recall_nogc"][k].append(float(len(nogc_match)) / m)
            if self.mode != "sgdet":
                kept = [p for p, flag in zip(pred_to_gt, pred_pair_in_gt) if flag]
                gt_pair_match = reduce(np.union1d, kept[:k]) if len(kept) > 0 else []
                self.lists["acc_hit"][k].append(float(len(gt_pair_match)))
                self.lists["acc_count"][k].append(m)
            for name, mt in (("mR", match), ("ng-mR", nogc_match)):
                recall_hit = [0] * self.num_rel
                recall_count = [0] * self.num_rel
                for idx in range(gt_rels.shape[0]):
                    recall_count[int(gt_rels[idx, 2])] += 1
                    recall_count[0] += 1
                for idx in range(len(mt)):
                    recall_hit[int(gt_rels[int(mt[idx]), 2])] += 1
                    recall_hit[0] += 1
                for n in range(self.num_rel):
                    if recall_count[n] > 0:
                        self.collect[name][k][n].append(float(recall_hit[n] / recall_count[n]))
            if len(zeroshot_idx) > 0:
                self.lists["zeroshot"][k].append(float(_zeroshot_hits(zeroshot_idx, match)) / len(zeroshot_idx))
                self.lists["ng_zeroshot"][k].append(
                    float(_zeroshot_hits(zeroshot_idx, nogc_match)) / len(zeroshot_idx))

    def summarize(self):
        with warnings.catch_warnings():  # np.mean([]) is nan with a RuntimeWarning, as in SGB
            warnings.simplefilter("ignore", RuntimeWarning)
            out = {}
            for k in KS:
                out[f"R@{k}"] = np.mean(self.lists["recall"][k])
                out[f"ng-R@{k}"] = np.mean(self.lists["recall_nogc"][k])
                out[f"zR@{k}"] = np.mean(self.lists["zeroshot"][k])
                out[f"ng-zR@{k}"] = np.mean(self.lists["ng_zeroshot"][k])
                if self.mode != "sgdet":
                    out[f"A@{k}"] = np.mean(self.lists["acc_hit"][k]) / np.mean(self.lists["acc_count"][k])
                for name in ("mR", "ng-mR"):  # SGMeanRecall.calculate_mean_recall
                    sum_recall = 0
                    per_predicate = []
                    for idx in range(self.num_rel - 1):
                        items = self.collect[name][k][idx + 1]
                        tmp_recall = 0.0 if len(items) == 0 else np.mean(items)
                        per_predicate.append(tmp_recall)
                        sum_recall += tmp_recall
                    out[f"{name}@{k}"] = sum_recall / float(self.num_rel - 1)
                    out[f"{name}_per_predicate@{k}"] = per_predicate
        return out


# ----------------------------------------------------------------------------------------------
# Random datasets
# ----------------------------------------------------------------------------------------------
def _gt_boxes(rng, n):
    boxes = np.empty((n, 4))
    for i in range(n):
        if rng.random() < 0.5:  # integer sides that are multiples of 10: exact threshold IoUs are possible
            w, h = rng.integers(1, 7, size=2) * 10
            x, y = rng.integers(0, 300, size=2)
        else:
            w, h = rng.uniform(2, 120, size=2)
            x, y = rng.uniform(0, 300, size=2)
        boxes[i] = (x, y, x + w - 1, y + h - 1)
    return boxes


def _near_threshold_box(rng, box, thr):
    """A box whose IoU with ``box`` is ``thr`` (shrunk or shifted along one axis), or a hair off it."""
    out = box.astype(np.float64)
    a = rng.integers(2)
    side = out[a + 2] - out[a] + 1
    eps = rng.choice([0.0, 0.0, 1e-7, -1e-7, 1e-5, -1e-5, 1e-3, -1e-3]) * side
    if rng.random() < 0.5:
        out[a + 2] = out[a] + thr * side + eps - 1
    else:
        shift = side * (1 - thr) / (1 + thr) + eps
        out[[a, a + 2]] += shift
    return out


def _predicted_objects(rng, gt_boxes, gt_labels, mode, n_cls, thr):
    boxes, labels, src = [], [], []
    for i, (box, label) in enumerate(zip(gt_boxes, gt_labels)):
        for _ in range(1 if mode == "sgcls" else rng.choice([0, 1, 1, 2])):
            u = rng.random()
            if u < (0.6 if mode == "sgcls" else 0.35):
                new = box.astype(np.float64)
            elif u < 0.8:
                new = _near_threshold_box(rng, box, thr)
            else:
                new = box + rng.normal(0, 4, 4)
                new[2:] = np.maximum(new[2:], new[:2])
            boxes.append(new)
            labels.append(label if rng.random() < 0.8 else rng.integers(1, n_cls + 1))
            src.append(i)
    if mode == "sgdet":
        extra = int(rng.integers(0, 4))
        boxes += list(_gt_boxes(rng, extra))
        labels += list(rng.integers(1, n_cls + 1, extra))
        src += [-1] * extra
        order = rng.permutation(len(boxes))
    else:
        order = np.arange(len(boxes))
    return (np.array(boxes, dtype=np.float64).reshape(-1, 4)[order], np.array(labels, dtype=np.int64)[order],
            np.array(src, dtype=np.int64)[order])


def _ranked_pairs(rng, src, gt_rels):
    k = len(src)
    s, o = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    pairs = np.column_stack((s.ravel(), o.ravel()))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if rng.random() < 0.3:
        pairs = pairs[rng.random(len(pairs)) < rng.random()]
    if rng.random() < 0.08:
        pairs = pairs[:0]
    gt_pair = {(int(a), int(b)): [] for a, b, _ in gt_rels}
    for a, b, p in gt_rels:
        gt_pair[(int(a), int(b))].append(int(p))
    preds_of_gt = [gt_pair.get((int(src[a]), int(src[b])), []) for a, b in pairs]
    key = rng.random(len(pairs)) - rng.random() * np.array([len(g) > 0 for g in preds_of_gt], dtype=float)
    order = np.argsort(key)
    return pairs[order], [preds_of_gt[i] for i in order]


def _rel_scores(rng, preds_of_gt, num_predicates, argmax_ties, dtype):
    rel = rng.random((len(preds_of_gt), num_predicates)) * 0.5
    for j, gt_preds in enumerate(preds_of_gt):
        if gt_preds and rng.random() < 0.6:
            rel[j, rng.choice(gt_preds)] = 0.5 + 0.5 * rng.random()
        if argmax_ties and rng.random() < 0.05:  # graph-constrained argmax: first maximum wins
            best = 1 + rel[j, 1:].argmax()
            rel[j, rng.choice([c for c in range(1, num_predicates) if c != best])] = rel[j, best]
    return rel.astype(dtype)


def _ng_top_has_ties(obj_scores, pairs, rel_scores):
    scores = (obj_scores[pairs].prod(1)[:, None] * rel_scores[:, 1:]).ravel()
    top = np.sort(scores)[::-1][:101]
    return len(np.unique(top)) < len(top)


def _random_image(rng, cfg):
    mode, num_predicates, n_cls, thr = cfg["mode"], cfg["num_predicates"], cfg["n_cls"], cfg["thr"]
    n = int(rng.integers(1, 13))
    gt_boxes, gt_labels = _gt_boxes(rng, n).astype(cfg["box_dtype"]), rng.integers(1, n_cls + 1, n)
    dense = rng.random() < 0.15  # more GT pairs than K=20 (A@K truncates)
    m = 0 if n < 2 or rng.random() < 0.1 else int(rng.integers(1, 9 if not dense else min(45, n * (n - 1))))
    rels = np.array([[*rng.choice(n, 2, replace=False), rng.integers(1, num_predicates)] for _ in range(m)],
                    dtype=np.int64).reshape(-1, 3)
    if m and rng.random() < 0.4:  # duplicated GT rows (SGB does not de-duplicate the test GT)
        rels = np.vstack((rels, rels[rng.integers(0, m, int(rng.integers(1, 4)))]))
    if m and rng.random() < 0.4:  # several predicates on one GT pair
        extra = rels[rng.integers(0, m, int(rng.integers(1, 4)))].copy()
        extra[:, 2] = rng.integers(1, num_predicates, len(extra))
        rels = np.vstack((rels, extra))
    gt = {"boxes": gt_boxes, "labels": gt_labels, "relations": rels}

    if mode == "predcls":
        boxes, labels, src = gt_boxes.astype(np.float64), gt_labels, np.arange(n)
    else:
        boxes, labels, src = _predicted_objects(rng, gt_boxes, gt_labels, mode, n_cls, thr)
    scores = rng.uniform(0.05, 1.0, len(src)).astype(cfg["obj_dtype"])
    pairs, preds_of_gt = _ranked_pairs(rng, src, rels)
    ng_obj_scores = np.ones(n) if mode == "predcls" else scores
    for attempt in range(50):
        rel_scores = _rel_scores(rng, preds_of_gt, num_predicates, attempt == 0, cfg["rel_dtype"])
        if not _ng_top_has_ties(ng_obj_scores, pairs, rel_scores):
            break
    else:
        raise AssertionError("could not draw untied no-graph-constraint scores")
    pred = {"rel_pair_idxs": pairs, "rel_scores": rel_scores}
    if mode != "predcls" or rng.random() < 0.5:  # in PredCls the object fields are optional and ignored
        pred.update(boxes=boxes.astype(cfg["box_dtype"]), labels=labels, scores=scores)
        if mode == "predcls":
            pred.update(labels=rng.integers(1, n_cls + 1, n), scores=rng.random(n).astype(cfg["obj_dtype"]))
    return gt, pred


def _random_dataset(mode, seed, n_images=50):
    rng = np.random.default_rng([seed, ("predcls", "sgcls", "sgdet").index(mode)])
    obj_dtype, rel_dtype = [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64),
                            (np.float64, np.float32)][seed % 4]
    cfg = {"mode": mode, "num_predicates": int(rng.choice([51, 9, 4])), "n_cls": int(rng.choice([3, 6, 150])),
           "thr": 0.7 if seed % 5 == 4 else 0.5, "obj_dtype": obj_dtype, "rel_dtype": rel_dtype,
           "box_dtype": np.float32 if rng.random() < 0.5 else np.float64}
    images = [_random_image(rng, cfg) for _ in range(n_images)]
    triplets = {(int(g["labels"][s]), int(g["labels"][o]), int(p)) for g, _ in images for s, o, p in g["relations"]}
    triplets = sorted(triplets)
    if seed % 7 == 6:
        zeroshot = np.zeros((0, 3), dtype=np.int64)
    else:
        chosen = [t for t in triplets if rng.random() < 0.3]
        unseen = np.column_stack((rng.integers(1, cfg["n_cls"] + 1, (5, 2)), rng.integers(1, cfg["num_predicates"], 5)))
        zeroshot = np.vstack((np.array(chosen, dtype=np.int64).reshape(-1, 3), unseen))
    return cfg, zeroshot, images


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------
def test_numpy_iou_equals_torch_boxlist_iou_bitwise():
    rng = np.random.default_rng(0)
    gt = _gt_boxes(rng, 200).astype(np.float32)
    near = np.array([_near_threshold_box(rng, b, thr) for b in gt for thr in (0.5, 0.7)], dtype=np.float32)
    b1, b2 = torch.as_tensor(gt), torch.as_tensor(near)
    area1 = (b1[:, 2] - b1[:, 0] + 1) * (b1[:, 3] - b1[:, 1] + 1)
    area2 = (b2[:, 2] - b2[:, 0] + 1) * (b2[:, 3] - b2[:, 1] + 1)
    wh = (torch.min(b1[:, None, 2:], b2[:, 2:]) - torch.max(b1[:, None, :2], b2[:, :2]) + 1).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    expected = (inter / (area1[:, None] + area2 - inter)).numpy()
    ours = sgb_box_iou(gt, near)
    np.testing.assert_array_equal(ours, expected)
    # the generator does reach the threshold exactly, and both sides of it by one float32 step
    own = ours[np.repeat(np.arange(len(gt)), 2), np.arange(len(near))]
    thr = np.tile(np.float32([0.5, 0.7]), len(gt))
    assert (own == thr).sum() > 20
    assert ((own < thr) & (own > thr - 1e-5)).sum() > 5 and ((own > thr) & (own < thr + 1e-5)).sum() > 5


def _same(a, b):
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
@pytest.mark.parametrize("seed", range(10))
def test_sgg_evaluator_equals_sgb_transcription(mode, seed):
    cfg, zeroshot, images = _random_dataset(mode, seed)
    ours = SGGEvaluator(mode=mode, num_predicates=cfg["num_predicates"], zeroshot_triplets=zeroshot,
                        iou_threshold=cfg["thr"])
    ref = SGBReference(mode, cfg["num_predicates"], zeroshot, iou_thres=cfg["thr"])
    for gt, pred in images:
        ours.add(gt, pred)
        ref.add(gt, pred)
    got, expected = ours.summarize(), ref.summarize()

    mismatches = []
    for k in KS:
        for name in METRICS:
            if name == "A" and mode == "sgdet":
                continue
            key = f"{name}@{k}"
            if not _same(float(got[key]), float(expected[key])):
                mismatches.append(f"{key}: ours {got[key]!r}, SGB {expected[key]!r}")
        for name in ("mR", "ng-mR"):
            key = f"{name}_per_predicate@{k}"
            bad = [c + 1 for c, (x, y) in enumerate(zip(got[key], expected[key])) if not _same(float(x), float(y))]
            if bad or len(got[key]) != len(expected[key]):
                mismatches.append(f"{key}: predicates {bad} differ")
    assert not mismatches, f"{mode} seed {seed} {cfg}:\n" + "\n".join(mismatches)

    # the random data is not degenerate
    assert got["num_images"] == len(ref.lists["recall"][20]) and 0 < got["num_skipped"] < len(images)
    assert 0.0 < expected["R@100"] < 1.0 and 0.0 < expected["ng-R@100"] <= 1.0
    assert np.isnan(expected["zR@100"]) == (len(zeroshot) == 0)


def _ng_values(obj_scores, rel_fg):
    """SGB's no-graph-constraint scores of pairs (0, 1) and (2, 3), in the inputs' dtypes."""
    return obj_scores[np.array([[0, 1], [2, 3]])].prod(1)[:, None] * rel_fg[:, None]


def _rounding_inversion(rng, obj_dtype, rel_dtype):
    """Scores whose SGB-dtype products rank pair A above pair B while the other precision ranks B first."""
    other = np.float32 if obj_dtype == np.float64 else np.float64
    while True:
        obj = rng.uniform(0.5, 1.0, 4).astype(obj_dtype)
        rel = np.array([rng.uniform(0.3, 0.6), 0.0], dtype=rel_dtype)
        rel[1] = float(obj[0]) * float(obj[1]) * float(rel[0]) / (float(obj[2]) * float(obj[3]))
        for direction in (-1, 1):
            for _ in range(3):
                sgb = _ng_values(obj, rel)
                alt = _ng_values(obj.astype(other), rel.astype(other))
                if sgb[0, 0] > sgb[1, 0] and alt[0, 0] < alt[1, 0]:
                    return obj, rel
                rel[1] = np.nextafter(rel[1], rel_dtype(direction * 2))


@pytest.mark.parametrize("obj_dtype, rel_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                                  (np.float32, np.float64), (np.float64, np.float32)])
def test_ng_ranking_follows_sgb_dtype_promotion(obj_dtype, rel_dtype):
    """Pair A (the GT relation) and pair B (boxes elsewhere) compete for the 20th ng entry; SGB ranks A
    first in the inputs' precision, the other precision ranks B first."""
    obj, rel = _rounding_inversion(np.random.default_rng(1), obj_dtype, rel_dtype)
    gt = {"boxes": np.array([[0, 0, 9, 9], [20, 20, 39, 39]], np.float32), "labels": np.array([1, 1]),
          "relations": np.array([[0, 1, 1]])}
    far = np.array([[200, 200, 219, 219], [300, 300, 319, 319]], np.float64)
    high = 2 + np.arange(19)  # 19 entries above both, on objects of another class
    pred = {"boxes": np.vstack((gt["boxes"], far, np.tile([[500, 500, 509, 509]], (38, 1)))),
            "labels": np.array([1, 1, 1, 1] + [2] * 38),
            "scores": np.concatenate((obj, np.ones(38))).astype(obj_dtype),
            "rel_pair_idxs": np.vstack(([[0, 1], [2, 3]], np.column_stack((2 * high, 2 * high + 1)))),
            "rel_scores": np.column_stack((np.full(21, 0.1), np.concatenate((rel, 0.9 + 0.001 * high))))
                          .astype(rel_dtype)}
    ours = SGGEvaluator(mode="sgdet", num_predicates=2, zeroshot_triplets=np.zeros((0, 3), np.int64))
    ref = SGBReference("sgdet", 2, np.zeros((0, 3), np.int64))
    ours.add(gt, pred)
    ref.add(gt, pred)
    expected = ref.summarize()
    assert expected["ng-R@20"] == 1.0 and expected["ng-R@50"] == 1.0
    assert ours.summarize()["ng-R@20"] == expected["ng-R@20"]
