"""Malformed per-image inputs raise ValueError naming the image and the field."""
from __future__ import annotations

import numpy as np
import pytest

from rebalance_hca.evaluation import PredicateConfusionMatrix, SGGEvaluator, compute_detection_map


def image() -> tuple[dict, dict]:
    boxes = np.array([[0, 0, 9, 9], [20, 20, 29, 29]], dtype=np.float32)
    groundtruth = {"boxes": boxes, "labels": np.array([1, 2]), "relations": np.array([[0, 1, 1]])}
    prediction = {"boxes": boxes, "labels": np.array([1, 2]), "scores": np.array([.9, .8], dtype=np.float32),
                  "rel_pair_idxs": np.array([[0, 1], [1, 0]]),
                  "rel_scores": np.full((2, 3), 1 / 3, dtype=np.float32)}
    return groundtruth, prediction


IMAGE = "groundtruth of image 4: "
PRED = "prediction of image 4: "
CASES = [
    ("groundtruth", "boxes", np.zeros((2, 3)), IMAGE + "field 'boxes' has shape"),
    ("groundtruth", "labels", np.array([1, 2, 3]), IMAGE + "field 'labels' has 3 rows but 'boxes' has 2"),
    ("groundtruth", "labels", np.array([1.5, 2.0]), IMAGE + "field 'labels' must hold integers"),
    ("groundtruth", "relations", np.array([[0, 2, 1]]), IMAGE + "field 'relations' has values outside \\[0, 2\\)"),
    ("groundtruth", "relations", np.array([[0, 1, 3]]), IMAGE + "field 'relations' has values outside \\[1, 3\\)"),
    ("groundtruth", "relations", np.array([[0, 1]]), IMAGE + "field 'relations' has shape \\(1, 2\\)"),
    ("prediction", "rel_scores", np.full((2, 4), .25), PRED + "field 'rel_scores' has 4 columns, "
                                                       "expected num_predicates=3"),
    ("prediction", "rel_scores", np.full((3, 3), .25), PRED + "field 'rel_scores' has 3 rows but "
                                                       "'rel_pair_idxs' has 2"),
    ("prediction", "rel_pair_idxs", np.array([[0, 1], [1, 2]]), PRED + "field 'rel_pair_idxs' has values outside "
                                                                "\\[0, 2\\)"),
    ("prediction", "rel_pair_idxs", np.array([[0, -1], [1, 0]]), PRED + "field 'rel_pair_idxs' has values"),
    ("prediction", "labels", np.array([1]), PRED + "field 'labels' has 1 rows but 'boxes' has 2"),
    ("prediction", "scores", np.array([.5, .5, .5]), PRED + "field 'scores' has 3 rows but 'boxes' has 2"),
    ("prediction", "rel_scores", np.array([[0, np.nan, 0], [0, 1, 0]]), PRED + "field 'rel_scores' has non-finite"),
]


@pytest.mark.parametrize("record, key, value, message", CASES)
@pytest.mark.parametrize("mode", ("sgcls", "sgdet"))
def test_bad_field_is_named(mode, record, key, value, message):
    groundtruth, prediction = image()
    (groundtruth if record == "groundtruth" else prediction)[key] = value
    evaluator = SGGEvaluator(mode, num_predicates=3)
    for index in range(4):
        evaluator.add(*image(), image_id=index)
    with pytest.raises(ValueError, match=message):
        evaluator.add(groundtruth, prediction, image_id=4)


def test_missing_field_is_named():
    groundtruth, prediction = image()
    del prediction["rel_scores"]
    with pytest.raises(ValueError, match="prediction of image 0: missing field 'rel_scores'"):
        SGGEvaluator("sgdet", num_predicates=3).add(groundtruth, prediction)


def test_predcls_checks_pairs_against_the_gt_objects():
    groundtruth, prediction = image()
    prediction = {"rel_pair_idxs": np.array([[0, 2]]), "rel_scores": np.full((1, 3), .5)}
    with pytest.raises(ValueError, match="prediction of image 0: field 'rel_pair_idxs' has values outside \\[0, 2\\)"):
        SGGEvaluator("predcls", num_predicates=3).add(groundtruth, prediction)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="mode must be one of"):
        SGGEvaluator("phrdet")
    with pytest.raises(ValueError, match="predicate_names has 2 names"):
        SGGEvaluator("sgdet", num_predicates=3, predicate_names=["a", "b"])
    with pytest.raises(ValueError, match="predicate_counts has shape"):
        SGGEvaluator("sgdet", num_predicates=3, predicate_counts=[1, 2])
    with pytest.raises(ValueError, match="zeroshot_triplets"):
        SGGEvaluator("sgdet", num_predicates=3, zeroshot_triplets=np.zeros((2, 2)))


def test_confusion_and_detection_name_the_image():
    groundtruth, prediction = image()
    prediction["rel_scores"] = np.full((2, 5), .2)
    with pytest.raises(ValueError, match="prediction of image 0: field 'rel_scores' has 5 columns"):
        PredicateConfusionMatrix(3).add(groundtruth, prediction)
    groundtruth, prediction = image()
    prediction["scores"] = np.array([.5])
    with pytest.raises(ValueError, match="prediction of image 1: field 'scores' has 1 rows but 'boxes' has 2"):
        compute_detection_map([image()[0], groundtruth], [image()[1], prediction])
