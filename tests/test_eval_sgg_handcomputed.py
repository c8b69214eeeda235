"""SGGEvaluator on small cases whose every number is worked out by hand (docs/reference.md#relation-recall).

Image 1 (3 GT objects, classes 1, 2, 3; 4 GT rows; predicates 1..4, predicate 4 never in the GT):
    GT rows  g0 = (0, 1, 1), g1 = (1, 2, 2), g2 = (0, 2, 3), g3 = (0, 1, 2)   (g0 and g3 share a pair)
    ranked pairs and rel_scores [bg, p1, p2, p3, p4] (argmax over p1..p4):
        rank 0 (2, 0) [.95, .5, .4, .1, 0] -> p1, no GT pair (a large background score is ignored)
        rank 1 (0, 1) [.10, .6, .3, .0, 0] -> p1 = g0
        rank 2 (1, 2) [.00, .2, .1, .7, 0] -> p3, no match (g1 has p2)
        rank 3 (0, 2) [.00, .1, .2, .7, 0] -> p3 = g2
    graph-constrained first match: g0 at rank 1, g2 at rank 3, g1 and g3 never.
    ng entries obj_s*obj_o*score (object scores 1 in PredCls), ties by flat index rank*4 + p - 1:
        .7 (1,2,p3) | .7 (0,2,p3)=g2 | .6 (0,1,p1)=g0 | .5 (2,0,p1) | .4 (2,0,p2) | .3 (0,1,p2)=g3 |
        .2 (1,2,p1) | .2 (0,2,p2) | .1 (2,0,p3) | .1 (1,2,p2)=g1 | ...
        -> first ng match: g2 at 1, g0 at 2, g3 at 5, g1 at 9.
    pairs equal to a GT pair, in rank order: (0,1)->g0, (1,2)->none, (0,2)->g2 -> A: g0 at 0, g2 at 2.
Image 2 (2 objects, classes 1, 1; one GT row (0, 1, 1)): one pair (0, 1) [0, .9, .05, .05, 0] -> match at
    rank 0 and ng position 0.
Image 3 has no GT relation and image 4 no predicted pair: both skipped.
Zero-shot set {(1, 2, 2)}: only g3 (classes 1, 2, predicate 2) is zero-shot.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rebalance_hca.evaluation import SGGEvaluator

KS = (1, 2, 4, 6, 10)
BOXES = np.array([[0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49]], dtype=np.float32)


def image_one() -> tuple[dict, dict]:
    groundtruth = {"boxes": BOXES, "labels": np.array([1, 2, 3]),
                   "relations": np.array([[0, 1, 1], [1, 2, 2], [0, 2, 3], [0, 1, 2]])}
    prediction = {"boxes": BOXES, "labels": np.array([1, 2, 3]), "scores": np.ones(3, dtype=np.float32),
                  "rel_pair_idxs": np.array([[2, 0], [0, 1], [1, 2], [0, 2]]),
                  "rel_scores": np.array([[.95, .5, .4, .1, 0], [.1, .6, .3, 0, 0], [0, .2, .1, .7, 0],
                                          [0, .1, .2, .7, 0]], dtype=np.float32)}
    return groundtruth, prediction


def image_two() -> tuple[dict, dict]:
    boxes = BOXES[:2]
    groundtruth = {"boxes": boxes, "labels": np.array([1, 1]), "relations": np.array([[0, 1, 1]])}
    prediction = {"boxes": boxes, "labels": np.array([1, 1]), "scores": np.ones(2, dtype=np.float32),
                  "rel_pair_idxs": np.array([[0, 1]]),
                  "rel_scores": np.array([[0, .9, .05, .05, 0]], dtype=np.float32)}
    return groundtruth, prediction


def skipped_images() -> list[tuple[dict, dict]]:
    no_relation = ({"boxes": BOXES, "labels": np.array([1, 2, 3]), "relations": np.zeros((0, 3), dtype=np.int64)},
                   image_one()[1])
    no_pair = (image_two()[0], {"boxes": BOXES[:2], "labels": np.array([1, 1]), "scores": np.ones(2),
                                "rel_pair_idxs": np.zeros((0, 2), dtype=np.int64),
                                "rel_scores": np.zeros((0, 5), dtype=np.float32)})
    return [no_relation, no_pair]


def evaluate(mode: str, images, zeroshot=((1, 2, 2),), **kwargs) -> dict:
    evaluator = SGGEvaluator(mode, num_predicates=5, zeroshot_triplets=np.array(zeroshot) if zeroshot else None,
                             recall_ks=KS, **kwargs)
    for groundtruth, prediction in images:
        evaluator.add(groundtruth, prediction)
    return evaluator.summarize()


def assert_values(results: dict, expected: dict) -> None:
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(results[key]), key
        else:
            assert results[key] == pytest.approx(value, abs=1e-12), key


EXPECTED_TWO_IMAGES = {
    # R@K: image 1 recall 0, 1/4, 2/4, 2/4, 2/4; image 2 recall 1 -> mean
    "R@1": 0.5, "R@2": 0.625, "R@4": 0.75, "R@6": 0.75, "R@10": 0.75,
    # ng-R@K: image 1 recall 0, 1/4, 2/4, 3/4, 4/4; image 2 recall 1
    "ng-R@1": 0.5, "ng-R@2": 0.625, "ng-R@4": 0.75, "ng-R@6": 0.875, "ng-R@10": 1.0,
    # mR@K = (p1 + p2 + p3 + p4) / 4, p1 averaged over both images, p4 absent counts 0
    "mR@1": (0.5 + 0 + 0 + 0) / 4, "mR@2": (1 + 0 + 0 + 0) / 4, "mR@4": (1 + 0 + 1 + 0) / 4, "mR@10": 0.5,
    "ng-mR@1": (0.5 + 0 + 0 + 0) / 4, "ng-mR@2": (0.5 + 0 + 1 + 0) / 4, "ng-mR@4": (1 + 0 + 1 + 0) / 4,
    "ng-mR@6": (1 + 0.5 + 1 + 0) / 4, "ng-mR@10": (1 + 1 + 1 + 0) / 4,
    # zR over image 1 only (g3): never matched graph-constrained; ng at position 5
    "zR@1": 0.0, "zR@10": 0.0, "ng-zR@4": 0.0, "ng-zR@6": 1.0,
    # A@K = mean(hits) / mean(counts): image 1 hits 1, 1, 2 (K = 1, 2, 4), count 4; image 2 hit 1, count 1
    "A@1": 1.0 / 2.5, "A@2": 1.0 / 2.5, "A@4": 1.5 / 2.5, "A@10": 1.5 / 2.5,
    # F@K = 2 R mR / (R + mR)
    "F@4": 2 * 0.75 * 0.5 / 1.25, "F@1": 2 * 0.5 * 0.125 / 0.625,
}


def test_predcls_two_images_every_metric():
    results = evaluate("predcls", [image_one(), image_two()])
    assert_values(results, EXPECTED_TWO_IMAGES)
    assert results["mR_per_predicate@4"] == [1.0, 0.0, 1.0, 0.0]
    assert results["ng-mR_per_predicate@6"] == [1.0, 0.5, 1.0, 0.0]
    assert results["mR_per_predicate@1"] == [0.5, 0.0, 0.0, 0.0]
    assert results["num_images"] == 2


def test_skipped_images_change_nothing():
    results = evaluate("predcls", [image_one(), *skipped_images(), image_two()])
    assert_values(results, EXPECTED_TWO_IMAGES)
    assert results["num_images"] == 2 and results["num_skipped"] == 2


def test_torch_inputs_equal_numpy_inputs():
    def as_torch(record: dict) -> dict:
        return {key: torch.as_tensor(value) for key, value in record.items()}
    images = [(as_torch(g), as_torch(p)) for g, p in (image_one(), image_two())]
    assert_values(evaluate("predcls", images), EXPECTED_TWO_IMAGES)


def test_zero_shot_recall_is_nan_without_zero_shot_rows():
    results = evaluate("predcls", [image_one(), image_two()], zeroshot=None)
    assert math.isnan(results["zR@4"]) and math.isnan(results["ng-zR@4"])
    results = evaluate("predcls", [image_two()], zeroshot=((1, 2, 2),))  # image 2 has no zero-shot row
    assert math.isnan(results["zR@4"])


def test_predcls_replaces_predicted_objects_by_ground_truth():
    """Wrong predicted boxes, labels and scores change nothing in PredCls (GT objects, scores 1)."""
    groundtruth, prediction = image_one()
    garbage = dict(prediction, boxes=BOXES + 100, labels=np.array([7, 7, 7]),
                   scores=np.array([0.1, 0.9, 0.01], dtype=np.float32))
    assert_values(evaluate("predcls", [(groundtruth, garbage), image_two()]), EXPECTED_TWO_IMAGES)


def test_sgcls_uses_predicted_labels_and_scores():
    """SGCls: object 2 predicted as class 9 loses g1 and g2; object scores re-rank the ng entries.

    Graph constrained: only g0 (rank 1) can match -> image 1 recall 1/4 for K >= 2.
    ng with scores (1, 1, .5): pair (0, 2) products halve: (0,1,p1) .6 first = g0 at position 0.
    """
    groundtruth, prediction = image_one()
    prediction = dict(prediction, labels=np.array([1, 2, 9]), scores=np.array([1, 1, .5], dtype=np.float32))
    results = evaluate("sgcls", [(groundtruth, prediction)])
    assert_values(results, {"R@1": 0.0, "R@2": 0.25, "R@10": 0.25, "ng-R@1": 0.25,
                            "A@1": 0.25, "A@10": 0.25})


@pytest.mark.parametrize("mode", ("sgcls", "sgdet"))
def test_predicting_the_gt_objects_with_score_one_equals_predcls(mode):
    """Same hand-computed numbers when the predicted objects are the GT ones with scores 1; SGDet has no A@K."""
    results = evaluate(mode, [image_one(), image_two()])
    assert_values(results, {key: value for key, value in EXPECTED_TWO_IMAGES.items()
                            if mode != "sgdet" or not key.startswith("A@")})
    assert ("A@4" in results) == (mode == "sgcls")


def test_sgdet_iou_uses_the_plus_one_convention_at_the_threshold():
    """GT box [0,0,9,9] has area 10*10 = 100 (+1 convention). Predicted [0,0,9,4]: intersection 10*5 = 50,
    union 100 -> IoU exactly 0.5, a match (>= 0.5); in continuous coordinates it would be 36/81 < 0.5.
    [0,0,9,3]: 40/100 = 0.4, no match."""
    groundtruth = {"boxes": BOXES[:2], "labels": np.array([1, 2]), "relations": np.array([[0, 1, 1]])}
    scores = np.array([[0, 1, 0]], dtype=np.float32)
    for subject_box, expected in (([0, 0, 9, 4], 1.0), ([0, 0, 9, 3], 0.0)):
        prediction = {"boxes": np.array([subject_box, BOXES[1]], dtype=np.float32), "labels": np.array([1, 2]),
                      "scores": np.ones(2, dtype=np.float32), "rel_pair_idxs": np.array([[0, 1]]),
                      "rel_scores": scores}
        evaluator = SGGEvaluator("sgdet", num_predicates=3, recall_ks=(1,))
        evaluator.add(groundtruth, prediction)
        results = evaluator.summarize()
        assert results["R@1"] == expected and results["ng-R@1"] == expected
        assert "A@1" not in results


def test_sgdet_one_detection_pair_matches_duplicate_gt_rows():
    """SGB keeps duplicate GT rows: one prediction matches both; two detections of one object both match."""
    groundtruth = {"boxes": BOXES[:2], "labels": np.array([1, 2]), "relations": np.array([[0, 1, 1], [0, 1, 1]])}
    prediction = {"boxes": np.array([BOXES[0], BOXES[0] + 1, BOXES[1]]), "labels": np.array([1, 1, 2]),
                  "scores": np.array([.9, .8, .7], dtype=np.float32), "rel_pair_idxs": np.array([[1, 2], [0, 2]]),
                  "rel_scores": np.array([[0, 1, 0], [0, 1, 0]], dtype=np.float32)}
    evaluator = SGGEvaluator("sgdet", num_predicates=3, recall_ks=(1,))
    evaluator.add(groundtruth, prediction)
    assert evaluator.summarize()["R@1"] == 1.0


def test_graph_constraint_keeps_the_given_order():
    """The evaluator does not re-sort pairs: a low-scored pair ranked first still counts for R@1."""
    groundtruth = {"boxes": BOXES[:2], "labels": np.array([1, 2]), "relations": np.array([[0, 1, 2]])}
    prediction = {"boxes": BOXES[:2], "labels": np.array([1, 2]), "scores": np.ones(2),
                  "rel_pair_idxs": np.array([[0, 1], [1, 0]]),
                  "rel_scores": np.array([[0, .1, .2], [0, .9, .05]], dtype=np.float32)}
    evaluator = SGGEvaluator("predcls", num_predicates=3, recall_ks=(1,))
    evaluator.add(groundtruth, prediction)
    results = evaluator.summarize()
    assert results["R@1"] == 1.0   # rank 0 is (0, 1) with argmax p2
    assert results["ng-R@1"] == 0.0  # the best entry is (1, 0, p1) at .9


def test_no_graph_constraint_keeps_only_the_top_100_entries():
    """101 pairs x 1 predicate: the matching pair's entry is the 101st best, so ng misses it at any K."""
    num_objects = 12
    boxes = np.array([[30 * i, 0, 30 * i + 9, 9] for i in range(num_objects)], dtype=np.float32)
    pairs = np.array([(s, o) for s in range(num_objects) for o in range(num_objects) if s != o])[:101]
    groundtruth = {"boxes": boxes, "labels": np.arange(1, num_objects + 1), "relations": np.array([[*pairs[-1], 1]])}
    rel_scores = np.zeros((101, 2), dtype=np.float32)
    rel_scores[:, 1] = np.linspace(1.0, 0.5, 101, dtype=np.float32)
    prediction = {"rel_pair_idxs": pairs, "rel_scores": rel_scores}
    evaluator = SGGEvaluator("predcls", num_predicates=2, recall_ks=(100, 200))
    evaluator.add(groundtruth, prediction)
    results = evaluator.summarize()
    assert results["ng-R@200"] == 0.0 and results["R@100"] == 0.0 and results["R@200"] == 1.0


def test_head_body_tail_means_follow_the_training_counts():
    """Counts (index 0 ignored) 50, 40, 30, 20 rank p1 > p2 > p3 > p4: tail = ceil(4/3) = 2 (p3, p4),
    body = ceil(2/2) = 1 (p2), head = p1. Per-predicate recall@4 is [1, 0, 1, 0]."""
    results = evaluate("predcls", [image_one(), image_two()], predicate_counts=[0, 50, 40, 30, 20])
    assert_values(results, {"mR_head@4": 1.0, "mR_body@4": 0.0, "mR_tail@4": 0.5})
    results = evaluate("predcls", [image_one(), image_two()])
    assert math.isnan(results["mR_tail@4"])


def test_nothing_evaluated_gives_nan_recall_and_zero_mean_recall():
    """SGB: np.mean of an empty list is NaN; mR sums 0.0 for every predicate without images."""
    results = evaluate("predcls", skipped_images())
    assert math.isnan(results["R@1"]) and math.isnan(results["A@1"]) and math.isnan(results["F@1"])
    assert results["mR@1"] == 0.0 and results["num_images"] == 0
