"""Detector mAP as SGB computes it (docs/reference.md#detection-map), values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rebalance_hca.evaluation import compute_detection_map


def test_first_gt_box_never_counts_sgb_quirk(capsys):
    """GT: image 0 has A (class 1, annotation id 0) and B (class 2, id 1); image 1 has C (class 1, id 2).
    Exact detections A' .9, C' .8 (class 1) and B' .7 (class 2). pycocotools stores a match as the GT id
    and reads id 0 as "no match", so A' is a false positive (SGB numbers its annotations from 0).
    Class 1: precision/recall after A', C' = (0, 0), (.5, .5) -> interpolated precision .5 for the 51
    recall thresholds 0, .01, ..., .50 and 0 above -> AP = 51 * .5 / 101. Class 2: AP 1."""
    box_a, box_b, box_c = [0, 0, 9, 9], [20, 20, 39, 29], [5, 5, 14, 24]
    groundtruths = [{"boxes": np.array([box_a, box_b], dtype=np.float32), "labels": np.array([1, 2])},
                    {"boxes": np.array([box_c], dtype=np.float32), "labels": np.array([1])}]
    predictions = [{"boxes": torch.tensor([box_a, box_b], dtype=torch.float32), "labels": torch.tensor([1, 2]),
                    "scores": torch.tensor([.9, .7])},
                   {"boxes": torch.tensor([box_c], dtype=torch.float32), "labels": torch.tensor([1]),
                    "scores": torch.tensor([.8])}]
    result = compute_detection_map(groundtruths, predictions, num_classes=151)
    assert result["mAP"] == pytest.approx((51 * 0.5 / 101 + 1.0) / 2, abs=1e-12)
    assert len(result["coco_stats"]) == 12
    assert capsys.readouterr().out == ""


def test_plus_one_boxes_and_ap_at_050():
    """A first GT of class 9 (id 0) absorbs the quirk and has no detection (AP 0). Class 1: GT [0,0,9,9] is
    [0,0,10,10] in COCO xywh (+1); the detection [0,0,9,4] is [0,0,10,5]: IoU 50/100 = .5 >= .5, so
    AP@.5 = 1 but AP@.55.. = 0. mAP (stats[1]) = (0 + 1)/2; AP@[.5:.95] (stats[0]) = (0 + 1/10)/2."""
    groundtruths = [{"boxes": np.array([[50, 50, 60, 60], [0, 0, 9, 9]]), "labels": np.array([9, 1])}]
    predictions = [{"boxes": np.array([[0, 0, 9, 4]]), "labels": np.array([1]), "scores": np.array([.5])}]
    result = compute_detection_map(groundtruths, predictions)
    assert result["mAP"] == pytest.approx(0.5, abs=1e-12)
    assert result["coco_stats"][0] == pytest.approx(0.05, abs=1e-12)


def test_no_detection_at_all_gives_zero_and_verbose_prints(capsys):
    groundtruths = [{"boxes": np.array([[50, 50, 60, 60], [0, 0, 9, 9]]), "labels": np.array([1, 1])}]
    predictions = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0, dtype=np.int64), "scores": np.zeros(0)}]
    assert compute_detection_map(groundtruths, predictions)["mAP"] == 0.0
    compute_detection_map(groundtruths, predictions, verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_mismatched_lists_are_refused():
    with pytest.raises(ValueError, match="1 groundtruths but 0 predictions"):
        compute_detection_map([{"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}], [])
