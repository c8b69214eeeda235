"""Relation-head box geometry on hand-worked examples (docs/reference.md#union-features steps 1 and 3,
docs/reference.md#box-encoding)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rebalance_hca.modeling.relation_head.box_geometry import (box_iou_legacy, encode_box_info,
                                                               rectangle_masks, union_boxes)
from rebalance_hca.structures import boxes as numpy_boxes


def test_encode_box_info_hand_values():
    # Image H = 40, W = 20. Box A (0, 0, 9, 19): w = 10, h = 20, cx = 5, cy = 10.
    # Box B (10, 20, 19, 39): w = 10, h = 20, cx = 15, cy = 30.
    boxes = torch.tensor([[0.0, 0.0, 9.0, 19.0], [10.0, 20.0, 19.0, 39.0]], dtype=torch.float64)
    expected = torch.tensor([
        # w/W  h/H   cx/W  cy/H  x1/W y1/H x2/W  y2/H   wh/(WH) = 200/800
        [0.5, 0.5, 0.25, 0.25, 0.0, 0.0, 0.45, 0.475, 0.25],
        [0.5, 0.5, 0.75, 0.75, 0.5, 0.5, 0.95, 0.975, 0.25],
    ], dtype=torch.float64)
    torch.testing.assert_close(encode_box_info(boxes, (40, 20)), expected)


def test_encode_box_info_float32_and_empty():
    boxes = torch.tensor([[1.0, 2.0, 4.0, 5.0]])  # w = h = 4, cx = 3, cy = 4 in a 10 x 8 (H x W) image
    expected = torch.tensor([[0.5, 0.4, 3 / 8, 0.4, 1 / 8, 0.2, 0.5, 0.5, 16 / 80]])
    encoded = encode_box_info(boxes, (10, 8))
    assert encoded.dtype == torch.float32
    torch.testing.assert_close(encoded, expected)
    assert encode_box_info(torch.zeros(0, 4), (10, 8)).shape == (0, 9)


def test_encode_box_info_rejects_empty_image():
    with pytest.raises(ValueError, match="image_size"):
        encode_box_info(torch.zeros(1, 4), (0, 10))


def test_union_boxes():
    subjects = torch.tensor([[0.0, 0.0, 10.0, 10.0], [3.0, 4.0, 5.0, 6.0]])
    objects = torch.tensor([[5.0, -2.0, 8.0, 20.0], [1.0, 7.0, 2.0, 9.0]])
    expected = torch.tensor([[0.0, -2.0, 10.0, 20.0], [1.0, 4.0, 5.0, 9.0]])
    assert torch.equal(union_boxes(subjects, objects), expected)


def _grid(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[float(cell) for cell in row] for row in rows])


def test_rectangle_masks_small_grid():
    # Image 10 x 10, rect_size 5: scale 0.5. Subject (2, 3, 5, 4) -> (1, 1.5, 2.5, 2):
    # x from floor(1) = 1 to ceil(2.5) = 3, y from floor(1.5) = 1 to ceil(2) = 2.
    # Object (0, 8.4, 1, 9) -> (0, 4.2, 0.5, 4.5): x 0..1, y 4..5 (5 is off the grid).
    subjects = torch.tensor([[2.0, 3.0, 5.0, 4.0]])
    objects = torch.tensor([[0.0, 8.4, 1.0, 9.0]])
    masks = rectangle_masks(subjects, objects, (10, 10), rect_size=5)
    assert masks.shape == (1, 2, 5, 5)
    assert torch.equal(masks[0, 0], _grid(["00000",
                                           "01110",
                                           "01110",
                                           "00000",
                                           "00000"]))
    assert torch.equal(masks[0, 1], _grid(["00000",
                                           "00000",
                                           "00000",
                                           "00000",
                                           "11000"]))


def test_rectangle_masks_scale_each_axis_by_the_whole_image():
    # Image H = 54, W = 27, rect_size 27: x scale 1, y scale 0.5 (not relative to the union box).
    # Subject (2.5, 4, 6.2, 9) -> x 2..7, y 2..ceil(4.5) = 5. Object (20, 40, 30, 60) -> x 20..26, y 20..26.
    subjects = torch.tensor([[2.5, 4.0, 6.2, 9.0]], dtype=torch.float64)
    objects = torch.tensor([[20.0, 40.0, 30.0, 60.0]], dtype=torch.float64)
    masks = rectangle_masks(subjects, objects, (54, 27))
    expected = torch.zeros(1, 2, 27, 27, dtype=torch.float64)
    expected[0, 0, 2:6, 2:8] = 1.0
    expected[0, 1, 20:27, 20:27] = 1.0
    assert masks.dtype == torch.float64
    assert torch.equal(masks, expected)


def test_rectangle_masks_several_pairs_integer_boxes_and_no_pair():
    subjects = torch.tensor([[0, 0, 26, 26], [0, 0, 0, 0]])
    objects = torch.tensor([[0, 0, 0, 0], [26, 26, 26, 26]])
    masks = rectangle_masks(subjects, objects, (27, 27))
    assert masks.dtype == torch.float32
    assert masks.shape == (2, 2, 27, 27)
    assert masks[0, 0].sum() == 27 * 27
    assert masks[0, 1].sum() == 1 and masks[0, 1, 0, 0] == 1
    assert torch.equal(masks[1, 0], masks[0, 1])
    assert masks[1, 1].sum() == 1 and masks[1, 1, 26, 26] == 1
    assert rectangle_masks(torch.zeros(0, 4), torch.zeros(0, 4), (27, 27)).shape == (0, 2, 27, 27)


def test_box_iou_legacy_hand_values():
    # (0, 0, 9, 9) and (5, 0, 14, 9): areas 100, intersection 5 x 10 = 50, IoU 50 / 150.
    # (0, 0, 9, 9) and (0, 0, 9, 19): intersection 100, union 200, IoU exactly 0.5.
    # (0, 0, 9, 9) and (10, 0, 19, 9): touching, intersection 0.
    boxes_a = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    boxes_b = torch.tensor([[5.0, 0.0, 14.0, 9.0], [0.0, 0.0, 9.0, 19.0], [10.0, 0.0, 19.0, 9.0]])
    iou = box_iou_legacy(boxes_a, boxes_b)
    assert iou.shape == (1, 3)
    torch.testing.assert_close(iou, torch.tensor([[1 / 3, 0.5, 0.0]]))
    assert iou[0, 1].item() == 0.5


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_box_iou_legacy_equals_numpy(dtype):
    rng = np.random.default_rng(0)
    top_left = rng.uniform(0, 50, size=(40, 2))
    boxes = np.concatenate([top_left, top_left + rng.uniform(0, 30, size=(40, 2))], axis=1).astype(dtype)
    boxes_a, boxes_b = boxes[:15], boxes[15:]
    expected = numpy_boxes.box_iou_legacy(boxes_a, boxes_b, dtype=dtype)
    actual = box_iou_legacy(torch.from_numpy(boxes_a), torch.from_numpy(boxes_b)).numpy()
    assert actual.dtype == dtype
    assert (expected > 0).any() and (expected == 0).any()
    np.testing.assert_array_equal(actual, expected)
