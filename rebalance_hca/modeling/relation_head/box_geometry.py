"""Box geometry of the relation head on torch tensors (xyxy boxes in the resized image frame).

* ``encode_box_info``: SGB's 9-d spatial encoding of a box (docs/reference.md#box-encoding).
* ``union_boxes``: the union box of each (subject, object) pair (docs/reference.md#union-features step 1).
* ``rectangle_masks``: the 2 x rect_size x rect_size binary box masks of each pair
(docs/reference.md#union-features step 3).
* ``box_iou_legacy``: pairwise IoU with SGB's +1 pixel convention (``boxlist_iou``), the torch twin of
  :func:`rebalance_hca.structures.boxes.box_iou_legacy`, used by the SGDet pair sampler.
* ``normalized_box_info``, ``pair_box_info``: the 8-d box and 32-d pair geometry of SGB's causal TDE
  predictor (docs/reference.md#causal-tde).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rebalance_hca.structures.boxes import scale_xyxy

RECT_SIZE = 27
"""SGB's mask side: 4 * POOLER_RESOLUTION - 1 = 4 * 7 - 1."""
GEOMETRY_SCALE_FLOOR = 100
"""The TDE geometry divides by max(W, H, 100) (SGB's ``get_box_info``)."""


def encode_box_info(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """SGB ``encode_box_info`` for the boxes of one image.

    boxes: (N, 4) float xyxy in the image of ``image_size`` = (height H, width W).
    Returns (N, 9) in the boxes' dtype: [w/W, h/H, cx/W, cy/H, x1/W, y1/H, x2/W, y2/H, w*h/(W*H)]
    with w = x2 - x1 + 1, h = y2 - y1 + 1, cx = x1 + w/2, cy = y1 + h/2.
    """
    height, width = image_size
    if height <= 0 or width <= 0:
        raise ValueError(f"encode_box_info: image_size (height, width) must be positive, got {image_size}")
    wh = boxes[:, 2:] - boxes[:, :2] + 1.0
    centre = boxes[:, :2] + 0.5 * wh
    w, h = wh.unbind(dim=1)
    cx, cy = centre.unbind(dim=1)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    return torch.stack([w / width, h / height, cx / width, cy / height,
                        x1 / width, y1 / height, x2 / width, y2 / height,
                        w * h / (width * height)], dim=1)


def union_boxes(subject_boxes: Tensor, object_boxes: Tensor) -> Tensor:
    """(R, 4), (R, 4) xyxy -> (R, 4) xyxy: (min x1, min y1, max x2, max y2) of each pair."""
    return torch.cat([torch.minimum(subject_boxes[:, :2], object_boxes[:, :2]),
                      torch.maximum(subject_boxes[:, 2:], object_boxes[:, 2:])], dim=1)


def rectangle_masks(subject_boxes: Tensor, object_boxes: Tensor, image_size: tuple[int, int],
                    rect_size: int = RECT_SIZE) -> Tensor:
    """Binary masks of each pair's boxes on a rect_size x rect_size grid covering the whole image.

    subject_boxes, object_boxes: (R, 4) xyxy in the image of ``image_size`` = (height H, width W).
    Each box is rescaled to the grid frame (x * rect_size/W, y * rect_size/H, as SGB's ``BoxList.resize``),
    not relative to the union box. Returns (R, 2, rect_size, rect_size), indexed [pair, box, y, x], in the
    boxes' floating dtype (float32 for integer boxes) on their device: channel 0 is the subject, channel 1
    the object; an entry is 1 where floor(x1) <= x <= ceil(x2) and floor(y1) <= y <= ceil(y2), else 0.
    """
    height, width = image_size
    dtype = subject_boxes.dtype if subject_boxes.is_floating_point() else torch.get_default_dtype()
    pair_boxes = torch.stack([subject_boxes, object_boxes], dim=1).to(dtype)  # (R, 2, 4)
    grid_boxes = scale_xyxy(pair_boxes, rect_size / width, rect_size / height)
    low = grid_boxes[..., :2].floor()
    high = grid_boxes[..., 2:].ceil()
    grid = torch.arange(rect_size, device=pair_boxes.device, dtype=dtype)
    inside_x = (grid >= low[..., 0, None]) & (grid <= high[..., 0, None])  # (R, 2, rect_size)
    inside_y = (grid >= low[..., 1, None]) & (grid <= high[..., 1, None])
    return (inside_y[..., :, None] & inside_x[..., None, :]).to(dtype)


def box_iou_legacy(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Pairwise IoU with SGB's +1 convention (``boxlist_iou``). (N, 4), (M, 4) xyxy -> (N, M).

    Same operations in the same order as the numpy ``structures.boxes.box_iou_legacy``, so float32 inputs
    give the same values as its ``dtype=np.float32`` form (IoUs that fall exactly on a threshold agree).
    """
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    wh = (bottom_right - top_left + 1.0).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (boxes_a[:, 2] - boxes_a[:, 0] + 1.0) * (boxes_a[:, 3] - boxes_a[:, 1] + 1.0)
    area_b = (boxes_b[:, 2] - boxes_b[:, 0] + 1.0) * (boxes_b[:, 3] - boxes_b[:, 1] + 1.0)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _corner_box_info(corners: Tensor) -> Tensor:
    """(M, 4) xyxy -> (M, 8) (x1, y1, x2, y2, cx, cy, w, h) with w = x2 - x1 + 1, cx = x1 + w/2 in the
    corners' own units (SGB's ``get_box_info`` without normalisation)."""
    wh = corners[:, 2:] - corners[:, :2] + 1.0
    return torch.cat([corners, corners[:, :2] + 0.5 * wh, wh], dim=1)


def normalized_box_info(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """The 8-d box code of the TDE geometry for one image: (x1, y1, x2, y2, cx, cy, w, h) with pixel
    w = x2 - x1 + 1, cx = x1 + w/2, all divided by max(W, H, 100). boxes (N, 4) xyxy in the image of
    ``image_size`` = (height H, width W) -> (N, 8)."""
    height, width = image_size
    return _corner_box_info(boxes) / float(max(width, height, GEOMETRY_SCALE_FLOOR))


def pair_box_info(subject_info: Tensor, object_info: Tensor) -> Tensor:
    """SGB's 32-d pair geometry (``get_box_pair_info``): subject and object 8-d codes (R, 8) of
    ``normalized_box_info`` -> (R, 32) [subject, object, union, intersection]. The union and intersection
    boxes are taken on the normalised corners and coded by ``_corner_box_info`` there, so their widths add
    1.0 in normalised units (SGB's quirk, kept); the intersection code is all zeros when x2 < x1 or y2 < y1
    (strictly: touching boxes keep their degenerate intersection)."""
    subject_corners, object_corners = subject_info[:, :4], object_info[:, :4]
    union = torch.cat([torch.minimum(subject_corners[:, :2], object_corners[:, :2]),
                       torch.maximum(subject_corners[:, 2:], object_corners[:, 2:])], dim=1)
    intersection = torch.cat([torch.maximum(subject_corners[:, :2], object_corners[:, :2]),
                              torch.minimum(subject_corners[:, 2:], object_corners[:, 2:])], dim=1)
    empty = (intersection[:, 2] < intersection[:, 0]) | (intersection[:, 3] < intersection[:, 1])
    intersection_info = _corner_box_info(intersection).masked_fill(empty[:, None], 0.0)
    return torch.cat([subject_info, object_info, _corner_box_info(union), intersection_info], dim=1)
