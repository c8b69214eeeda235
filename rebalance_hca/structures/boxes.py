"""Box arithmetic on numpy arrays, in xyxy unless the name says otherwise.

The ``_legacy`` functions use SGB's +1 pixel convention (width = x2 - x1 + 1), which evaluation and the
data filters must reproduce so that numbers equal SGB's. The detector uses torchvision's continuous
convention instead (docs/reference.md#deliberate-deviations).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def box_area_legacy(boxes: np.ndarray) -> np.ndarray:
    """Areas with the +1 convention. boxes: (N, 4) xyxy -> (N,) float64."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)


def box_iou_legacy(boxes_a: np.ndarray, boxes_b: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Pairwise IoU with the +1 convention (SGB ``boxlist_iou``). (N, 4), (M, 4) xyxy -> (N, M) in ``dtype``.

    ``dtype=np.float32`` reproduces SGB's float32 BoxList arithmetic (same operations in the same order),
    which relation evaluation needs for IoUs that fall exactly on the threshold.
    """
    boxes_a = np.asarray(boxes_a, dtype=dtype)
    boxes_b = np.asarray(boxes_b, dtype=dtype)
    return _iou_legacy_broadcast(boxes_a[:, None, :], boxes_b[None, :, :])


def paired_iou_legacy(boxes_a: np.ndarray, boxes_b: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Row-by-row IoU with the +1 convention: IoU(a[i], b[i]). (N, 4), (N, 4) xyxy -> (N,) in ``dtype``.

    ``dtype=np.float32`` reproduces SGB's float32 ``boxlist_iou`` values, as in :func:`box_iou_legacy`.
    """
    return _iou_legacy_broadcast(np.asarray(boxes_a, dtype=dtype), np.asarray(boxes_b, dtype=dtype))


def _iou_legacy_broadcast(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU (+1) of boxes that broadcast against each other: (..., 4), (..., 4) -> (...)."""
    top_left = np.maximum(boxes_a[..., :2], boxes_b[..., :2])
    bottom_right = np.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    wh = np.clip(bottom_right - top_left + 1.0, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (boxes_a[..., 2] - boxes_a[..., 0] + 1.0) * (boxes_a[..., 3] - boxes_a[..., 1] + 1.0)
    area_b = (boxes_b[..., 2] - boxes_b[..., 0] + 1.0) * (boxes_b[..., 3] - boxes_b[..., 1] + 1.0)
    return inter / (area_a + area_b - inter)


def union_boxes(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Row-by-row enclosing box (min x1, min y1, max x2, max y2). (N, 4), (N, 4) xyxy -> (N, 4), input dtype."""
    return np.concatenate([np.minimum(boxes_a[:, :2], boxes_b[:, :2]), np.maximum(boxes_a[:, 2:], boxes_b[:, 2:])],
                          axis=1)


def positive_intersection(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Whether each pair's intersection is strictly positive, without +1 (SGB ``bbox_overlaps`` > 0).

    (N, 4), (M, 4) xyxy -> (N, M) bool.
    """
    boxes_a = np.asarray(boxes_a, dtype=np.float64)
    boxes_b = np.asarray(boxes_b, dtype=np.float64)
    return paired_positive_intersection(boxes_a[:, None, :], boxes_b[None, :, :])


def paired_positive_intersection(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Row-by-row (broadcasting) strictly positive intersection, without +1. (..., 4), (..., 4) -> (...) bool."""
    return coordinates_positive_intersection(np.moveaxis(boxes_a, -1, 0), np.moveaxis(boxes_b, -1, 0))


def coordinates_positive_intersection(coordinates_a: Sequence[np.ndarray],
                                      coordinates_b: Sequence[np.ndarray]) -> np.ndarray:
    """``paired_positive_intersection`` of boxes given as their four coordinate arrays (x1, y1, x2, y2), each
    (...) (broadcasting): SGB's clipped width times clipped height > 0, computed as width > 0 and
    width * height > 0 (the same booleans, a product underflowing to 0 included). -> (...) bool."""
    x1_a, y1_a, x2_a, y2_a = coordinates_a
    x1_b, y1_b, x2_b, y2_b = coordinates_b
    width = np.minimum(x2_a, x2_b) - np.maximum(x1_a, x1_b)
    height = np.minimum(y2_a, y2_b) - np.maximum(y1_a, y1_b)
    return (width > 0) & (width * height > 0)


def paired_closed_intersection(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Row-by-row: the boxes overlap or touch (min x2 >= max x1 and min y2 >= max y1). On integer boxes this
    is ``paired_iou_legacy > 0`` (the +1 convention); unlike it, it does not depend on the frame's scale.
    (..., 4), (..., 4) -> (...) bool."""
    top_left = np.maximum(boxes_a[..., :2], boxes_b[..., :2])
    bottom_right = np.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    return (bottom_right >= top_left).all(axis=-1)


def cxcywh_to_xyxy_truncated(boxes: np.ndarray) -> np.ndarray:
    """SGB's in-place int32 decoding of VG ``boxes_1024``: x1 = trunc(cx - w/2), x2 = x1 + w.

    boxes: (N, 4) integer (cx, cy, w, h) -> (N, 4) int32 xyxy. The input is not modified.
    """
    boxes = np.asarray(boxes)
    top_left = (boxes[:, :2] - boxes[:, 2:] / 2).astype(np.int32)
    return np.concatenate([top_left, top_left + boxes[:, 2:].astype(np.int32)], axis=1)


def scale_xyxy(boxes: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """Multiply x coordinates by ``scale_x`` and y by ``scale_y`` (a resize). (N, 4) -> (N, 4), same dtype."""
    return boxes * boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
