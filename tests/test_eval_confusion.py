"""Predicate confusion matrix over GT pairs (docs/reference.md#confusion-matrix)."""
from __future__ import annotations

import numpy as np
import pytest

from rebalance_hca.evaluation import PredicateConfusionMatrix, compact_prediction, predicate_confusion_matrix

BOXES = np.zeros((3, 4), dtype=np.float32)


def image() -> tuple[dict, dict]:
    """GT (0,1,p1), (0,1,p2) (one pair, two predicates) and (1,2,p3). Predicted pairs, any rank:
    (2,0) argmax p1 (no GT pair), (0,1) argmax p2, (1,2) argmax p3 (its background score is ignored)."""
    groundtruth = {"boxes": BOXES, "labels": np.array([1, 2, 3]),
                   "relations": np.array([[0, 1, 1], [0, 1, 2], [1, 2, 3]])}
    prediction = {"rel_pair_idxs": np.array([[2, 0], [0, 1], [1, 2]]),
                  "rel_scores": np.array([[0, .9, .1, 0], [0, .2, .7, .1], [.99, 0, .1, .6]], dtype=np.float32)}
    return groundtruth, prediction


def test_counts_gt_predicate_against_top1_foreground_prediction(tmp_path):
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[1, 2] = 2   # GT p1 on pair (0,1), predicted p2 (both images)
    expected[2, 2] = 2   # GT p2 on pair (0,1)
    expected[3, 3] = 2   # GT p3 on pair (1,2)
    matrix = predicate_confusion_matrix([image()[0]] * 2, [image()[1]] * 2, num_predicates=4)
    assert matrix.dtype == np.float32 and np.array_equal(matrix, expected)

    first, second = PredicateConfusionMatrix(4), PredicateConfusionMatrix(4)
    first.add(*image())
    second.add(*image())
    first.merge(second)
    path = tmp_path / "conf_mat_freq_train.npy"
    first.save(path)
    assert np.array_equal(np.load(path), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["conf_mat_freq_train.npy"]


def test_compact_predictions_give_the_same_counts():
    groundtruth, prediction = image()
    compact = compact_prediction(prediction, groundtruth, "predcls", 4, max_k=1)
    assert np.array_equal(predicate_confusion_matrix([groundtruth], [compact], 4),
                          predicate_confusion_matrix([groundtruth], [prediction], 4))


def test_sgdet_is_refused():
    with pytest.raises(ValueError, match="predcls' or 'sgcls'"):
        PredicateConfusionMatrix(4, mode="sgdet")
