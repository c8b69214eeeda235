"""Detector mAP as SGB computes it (docs/reference.md#detection-map): values worked out by hand, and pycocotools' own numbers on
random inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from coco_reference import pycocotools_detection_stats
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


def random_split(seed: int, num_images: int, num_classes: int) -> tuple[list[dict], list[dict]]:
    """Detections and GT built to hit pycocotools' corner cases: score and IoU ties (duplicated boxes, scores
    on a 0.1 grid, a detection equal to the first GT box of the split and its duplicate), boxes on the
    small/medium/large area bounds, more than 100 detections of one class in an image, labels 0 and
    >= num_classes, images without GT or without detections."""
    rng = np.random.default_rng(seed)
    groundtruths, predictions = [], []
    for image in range(num_images):
        num_gt = (int(rng.integers(0, 8)) if image % 7 else 0) if image != 1 else 5
        corner = rng.integers(0, 200, (num_gt, 2)).astype(np.float32)
        side = rng.choice([30, 31, 32, 60, 94, 95, 96, 150], (num_gt, 2)).astype(np.float32)
        gt_boxes = np.concatenate([corner, corner + side], 1)
        if num_gt > 2:
            gt_boxes[1] = gt_boxes[0]                                          # duplicate GT box
        gt_labels = rng.integers(0, num_classes + 1, num_gt)
        if image == 1:      # the split's first GT box (annotation id 0) and its duplicate, both of class 1
            gt_labels[:2] = 1
        many = image == 3
        num_detections = 130 if many else (int(rng.integers(1 if image == 1 else 0, 25)) if image % 5 else 0)
        source = rng.integers(0, max(num_gt, 1), num_detections)
        jitter = rng.choice([0.0, 0.0, 1.0, 3.0, 8.0, 20.0], (num_detections, 4)).astype(np.float32)
        boxes = (gt_boxes[source] + jitter if num_gt else rng.uniform(0, 200, (num_detections, 4)).astype(np.float32))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
        labels = np.where(rng.random(num_detections) < 0.7, gt_labels[source] if num_gt else 1,
                          rng.integers(0, num_classes + 1, num_detections))
        if many:
            labels[:] = 1
        scores = np.round(rng.random(num_detections), 1).astype(np.float32)
        if image == 1:      # an exact detection of both: which of the tied GT boxes it takes decides its fate
            boxes[0], labels[0], scores[0] = gt_boxes[0], 1, 1.0
        groundtruths.append({"boxes": gt_boxes, "labels": gt_labels})
        predictions.append({"boxes": boxes, "labels": labels, "scores": scores})
    return groundtruths, predictions


@pytest.mark.parametrize("seed", range(12))
def test_stats_equal_pycocotools_to_the_bit(seed):
    groundtruths, predictions = random_split(seed, num_images=25, num_classes=6)
    num_classes = None if seed % 3 == 0 else 6
    ours = compute_detection_map(groundtruths, predictions, num_classes=num_classes)
    assert ours["coco_stats"] == pycocotools_detection_stats(groundtruths, predictions, num_classes)
    assert ours["mAP"] == ours["coco_stats"][1]


def test_empty_inputs_equal_pycocotools():
    nothing = {"boxes": np.zeros((0, 4), dtype=np.float32), "labels": np.zeros(0, dtype=np.int64),
               "scores": np.zeros(0, dtype=np.float32)}
    for groundtruths, predictions in (([], []), ([nothing], [nothing])):
        assert (compute_detection_map(groundtruths, predictions, num_classes=4)["coco_stats"]
                == pycocotools_detection_stats(groundtruths, predictions, 4))
