"""Box conventions inside the detector (MODEL.BOX_CONVENTION): torchvision's continuous one or SGB's "+1" one.

``"torchvision"`` (the default): width = x2 - x1, torchvision's box coder, clipping to [0, W] x [0, H], IoU
and NMS without +1, RoI level from the plain area, degenerate boxes (< 1e-3 px) removed.
``"sgb"``: maskrcnn_benchmark's inclusive convention (width = x2 - x1 + 1) everywhere, so that a detector
with SGB's weights gives SGB's outputs (docs/reference.md#sgb-box-conventions): the +1 box coder, clipping to
[0, W-1] x [0, H-1], IoU / NMS with +1 areas, the FPN level from the +1 area (RoIAlign, ``aligned=False``,
gets the inclusive numbers unchanged), minimum sizes on +1 widths, and the RPN's straddle rule in training.
The anchors of each convention are built by ``FixedStrideAnchorGenerator`` (``inclusive=True`` for SGB).

The +1 IoU and NMS are torchvision's on boxes shifted by (0, 0, 1, 1): (x1, y1, x2 + 1, y2 + 1) is the
continuous box that the inclusive box (x1, y1, x2, y2) covers, and its IoU is the +1 IoU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import boxes as box_ops

BOX_CONVENTIONS = ("torchvision", "sgb")
"""Values of MODEL.BOX_CONVENTION ("" in the config means: decided by the detector's checkpoint)."""

_TORCHVISION_MIN_BOX_SIZE = 1e-3  # torchvision's own floor: zero-area boxes would give infinite regression targets
_INCLUSIVE_SHIFT = (0.0, 0.0, 1.0, 1.0)
_FPN_CANONICAL_SCALE, _FPN_CANONICAL_LEVEL, _FPN_LEVEL_EPS = 224, 4, 1e-6


def continuous_from_inclusive(boxes: Tensor) -> Tensor:
    """(..., 4) inclusive xyxy -> (..., 4) the continuous box covering the same pixels: x2 + 1, y2 + 1."""
    return boxes + boxes.new_tensor(_INCLUSIVE_SHIFT)


class InclusiveBoxCoder(BoxCoder):
    """SGB's BoxCoder: torchvision's (dx, dy, dw, dh) parametrisation on +1 widths, x2 = ctr + w/2 - 1.

    Same constructor (weights, bbox_xform_clip) and list interface (encode / decode) as torchvision's.
    """

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """reference_boxes (N, 4) targets, proposals (N, 4) -> (N, 4) weighted deltas (SGB's op order)."""
        wx, wy, ww, wh = self.weights
        ex_widths = proposals[:, 2] - proposals[:, 0] + 1
        ex_heights = proposals[:, 3] - proposals[:, 1] + 1
        ex_ctr_x = proposals[:, 0] + 0.5 * ex_widths
        ex_ctr_y = proposals[:, 1] + 0.5 * ex_heights
        gt_widths = reference_boxes[:, 2] - reference_boxes[:, 0] + 1
        gt_heights = reference_boxes[:, 3] - reference_boxes[:, 1] + 1
        gt_ctr_x = reference_boxes[:, 0] + 0.5 * gt_widths
        gt_ctr_y = reference_boxes[:, 1] + 0.5 * gt_heights
        return torch.stack((wx * (gt_ctr_x - ex_ctr_x) / ex_widths, wy * (gt_ctr_y - ex_ctr_y) / ex_heights,
                            ww * torch.log(gt_widths / ex_widths), wh * torch.log(gt_heights / ex_heights)), dim=1)

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """rel_codes (N, 4K) deltas, boxes (N, 4) -> (N, 4K) inclusive boxes (SGB's op order)."""
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2] - boxes[:, 0] + 1
        heights = boxes[:, 3] - boxes[:, 1] + 1
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx, dy = rel_codes[:, 0::4] / wx, rel_codes[:, 1::4] / wy
        dw = torch.clamp(rel_codes[:, 2::4] / ww, max=self.bbox_xform_clip)
        dh = torch.clamp(rel_codes[:, 3::4] / wh, max=self.bbox_xform_clip)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        pred_boxes = torch.zeros_like(rel_codes)
        pred_boxes[:, 0::4] = pred_ctr_x - 0.5 * pred_w
        pred_boxes[:, 1::4] = pred_ctr_y - 0.5 * pred_h
        pred_boxes[:, 2::4] = pred_ctr_x + 0.5 * pred_w - 1
        pred_boxes[:, 3::4] = pred_ctr_y + 0.5 * pred_h - 1
        return pred_boxes


def box_iou_inclusive(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Pairwise IoU with +1 areas (SGB's ``boxlist_iou``). (N, 4), (M, 4) inclusive xyxy -> (N, M)."""
    return box_ops.box_iou(continuous_from_inclusive(boxes_a), continuous_from_inclusive(boxes_b))


def batched_nms_inclusive(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """SGB's NMS per group (+1 IoU, suppress IoU > threshold). boxes (N, 4), scores (N,), idxs (N,) ->
    kept indices sorted by decreasing score, like torchvision's ``batched_nms``."""
    return box_ops.batched_nms(continuous_from_inclusive(boxes), scores, idxs, iou_threshold)


def clip_boxes_inclusive(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip (..., 4) inclusive boxes to [0, W-1] x [0, H-1]; size = (H, W)."""
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width - 1)
    y = boxes[..., 1::2].clamp(min=0, max=height - 1)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small_boxes_inclusive(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the (N, 4) inclusive boxes whose +1 width and height are both >= min_size (SGB)."""
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    return torch.nonzero((widths >= min_size) & (heights >= min_size)).squeeze(1)


def remove_small_boxes_continuous(boxes: Tensor, min_size: float) -> Tensor:
    """torchvision's rule with its 1e-3 px floor: indices of the (N, 4) boxes at least that wide and high."""
    return box_ops.remove_small_boxes(boxes, max(float(min_size), _TORCHVISION_MIN_BOX_SIZE))


class InclusiveLevelMapper:
    """SGB's FPN LevelMapper: level k = floor(4 + log2(sqrt((w+1)(h+1)) / 224 + 1e-6)), clamped to
    [k_min, k_max]. Called with boxes [(N_i, 4)] inclusive xyxy; returns (sum N_i,) int64 k - k_min."""

    def __init__(self, k_min: int, k_max: int) -> None:
        self.k_min = k_min
        self.k_max = k_max

    def __call__(self, boxes: list[Tensor]) -> Tensor:
        boxes = torch.cat(boxes)
        scale = torch.sqrt((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1))
        levels = torch.floor(_FPN_CANONICAL_LEVEL + torch.log2(scale / _FPN_CANONICAL_SCALE + _FPN_LEVEL_EPS))
        return torch.clamp(levels, min=self.k_min, max=self.k_max).to(torch.int64) - self.k_min


@dataclass(frozen=True)
class BoxConvention:
    """The box operations of one convention, as the RPN, RoI heads and SGDet post-processing use them.

    box_coder: BoxCoder class (constructed with the coder weights); box_iou: (N, 4), (M, 4) -> (N, M);
    batched_nms(boxes, scores, idxs, threshold) -> keep; clip(boxes (..., 4), (H, W)) -> boxes;
    remove_small_boxes(boxes (N, 4), min_size) -> keep; inclusive: SGB's anchors, FPN levels and, in RPN
    training, straddle rule (anchors leaving the image by more than STRADDLE_THRESH are ignored).
    """

    name: str
    box_coder: type[BoxCoder]
    box_iou: Callable[[Tensor, Tensor], Tensor]
    batched_nms: Callable[[Tensor, Tensor, Tensor, float], Tensor]
    clip: Callable[[Tensor, tuple[int, int]], Tensor]
    remove_small_boxes: Callable[[Tensor, float], Tensor]
    inclusive: bool

    def make_box_coder(self, weights: tuple[float, float, float, float]) -> BoxCoder:
        """A box coder of this convention with the given (wx, wy, ww, wh) and torchvision's log(1000/16) clip."""
        return self.box_coder(weights, bbox_xform_clip=math.log(1000.0 / 16))


TORCHVISION_CONVENTION = BoxConvention("torchvision", BoxCoder, box_ops.box_iou, box_ops.batched_nms,
                                       box_ops.clip_boxes_to_image, remove_small_boxes_continuous, inclusive=False)
SGB_CONVENTION = BoxConvention("sgb", InclusiveBoxCoder, box_iou_inclusive, batched_nms_inclusive,
                               clip_boxes_inclusive, remove_small_boxes_inclusive, inclusive=True)


def box_convention(name: str) -> BoxConvention:
    """The BoxConvention called ``name`` ("torchvision" | "sgb"); ValueError naming MODEL.BOX_CONVENTION else."""
    conventions = {convention.name: convention for convention in (TORCHVISION_CONVENTION, SGB_CONVENTION)}
    if name not in conventions:
        raise ValueError(f"MODEL.BOX_CONVENTION {name!r} is unknown; valid values: {', '.join(BOX_CONVENTIONS)} "
                         "(or \"\" to take it from the detector checkpoint)")
    return conventions[name]
