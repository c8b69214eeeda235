"""Region proposal network on torchvision's RegionProposalNetwork, with SGB's FPN proposal selection.

Differences from torchvision's defaults, to follow SGB (docs/reference.md#detector-architecture):
* anchors are laid out with the configured strides (ANCHOR_STRIDE), not strides inferred from the padded
  image size (which give e.g. 60 instead of 64 for P6 when the padded size is not a multiple of 64);
* the shared head's 3x3 conv has its own width (RPN_MID_CHANNEL);
* per level: top PRE_NMS_TOP_N by objectness, NMS, then at most POST_NMS_TOP_N; then per image (or per
  batch in training with FPN_POST_NMS_PER_BATCH) the top FPN_POST_NMS_TOP_N over all levels;
* boxes smaller than MIN_SIZE are removed.
Anchors, the box coder, clipping, NMS and size rules follow the detector's BoxConvention (conventions.py):
torchvision's continuous one (docs/reference.md#deliberate-deviations)
or SGB's inclusive one, which adds SGB's anchors and straddle rule.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers

from .conventions import TORCHVISION_CONVENTION, BoxConvention
from .ops import keep_top_per_group


class SingleConvRPNHead(nn.Module):
    """SGB's SingleConvRPNHead: 3x3 conv (in -> mid) + ReLU, then 1x1 objectness (A) and deltas (4A).

    forward(features: list of (B, in_channels, H_l, W_l)) -> (objectness [(B, A, H_l, W_l)],
    deltas [(B, 4A, H_l, W_l)]), both float32 even under autocast so that proposals keep full coordinate
    precision. Weights N(0, 0.01), biases 0.
    """

    def __init__(self, in_channels: int, mid_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, mid_channels, kernel_size=3, stride=1, padding=1)
        self.cls_logits = nn.Conv2d(mid_channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(mid_channels, num_anchors * 4, kernel_size=1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        objectness, deltas = [], []
        for feature in features:
            hidden = torch.relu(self.conv(feature))
            objectness.append(self.cls_logits(hidden).float())
            deltas.append(self.bbox_pred(hidden).float())
        return objectness, deltas


def inclusive_cell_anchors(stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """SGB's cell anchors of one level (``generate_anchors``): (len(ratios) * len(sizes), 4) float32
    inclusive xyxy, ratio-major.

    From the stride x stride window (0, 0, s-1, s-1): per ratio r = h/w, width = round(sqrt(s^2 / r)) and
    height = round(width * r) (halves to even), then both scaled by size / s; every anchor is centred on
    ((s-1)/2, (s-1)/2) with corners centre -/+ (side - 1)/2. Example: stride 4, size 32, ratio 0.2323 ->
    (-30, -6, 33, 9), a 64x16 anchor.
    """
    centre = 0.5 * (stride - 1)
    anchors = []
    for ratio in aspect_ratios:
        width = np.round(np.sqrt(stride * stride / ratio))
        height = np.round(width * ratio)
        for size in sizes:
            scale = size / stride
            half_w, half_h = 0.5 * (width * scale - 1), 0.5 * (height * scale - 1)
            anchors.append([centre - half_w, centre - half_h, centre + half_w, centre + half_h])
    return torch.from_numpy(np.array(anchors, dtype=np.float64)).float()


class FixedStrideAnchorGenerator(AnchorGenerator):
    """torchvision's AnchorGenerator with one configured stride per feature level.

    sizes: one tuple of sizes per level, e.g. ((32,), (64,), ...); aspect_ratios: h/w per level;
    strides: one int per level; inclusive: SGB's cell anchors (``inclusive_cell_anchors``, centred at
    ((s-1)/2, (s-1)/2) of each cell) instead of torchvision's (centred at the cell's corner, w = size/sqrt(r),
    h = size*sqrt(r)). forward(images, feature_maps) -> per image (sum_l H_l W_l A, 4) xyxy, cell-major
    then anchor (anchor a of cell (i, j) = cell anchor a + (j s, i s, j s, i s)) in both cases.
    """

    def __init__(self, sizes: Sequence[Sequence[int]], aspect_ratios: Sequence[Sequence[float]],
                 strides: Sequence[int], inclusive: bool = False) -> None:
        super().__init__(tuple(tuple(s) for s in sizes), tuple(tuple(r) for r in aspect_ratios))
        if len(strides) != len(sizes):
            raise ValueError(f"MODEL.RPN.ANCHOR_STRIDE has {len(strides)} entries but ANCHOR_SIZES has "
                             f"{len(sizes)}; they need one per feature level")
        self.strides = tuple(int(stride) for stride in strides)
        if inclusive:
            self.cell_anchors = self.inclusive_cell_anchors()

    def inclusive_cell_anchors(self) -> list[Tensor]:
        """SGB's cell anchors of every level for this generator's strides, sizes and ratios: [(A, 4)]."""
        return [inclusive_cell_anchors(stride, sizes, ratios)
                for stride, sizes, ratios in zip(self.strides, self.sizes, self.aspect_ratios)]

    def forward(self, image_list: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:
        if len(feature_maps) != len(self.strides):
            raise ValueError(f"{len(feature_maps)} feature maps but {len(self.strides)} anchor strides")
        grid_sizes = [list(feature_map.shape[-2:]) for feature_map in feature_maps]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        strides = [[torch.tensor(stride, dtype=torch.int64, device=device)] * 2 for stride in self.strides]
        self.set_cell_anchors(dtype, device)
        anchors = torch.cat(self.grid_anchors(grid_sizes, strides))
        return [anchors for _ in image_list.image_sizes]


class FPNRegionProposalNetwork(RegionProposalNetwork):
    """RegionProposalNetwork whose proposal selection follows SGB's RPNPostProcessor on FPN levels.

    post_nms_top_n_per_level: {"training": POST_NMS_TOP_N_TRAIN, "testing": POST_NMS_TOP_N_TEST};
    the inherited ``post_nms_top_n`` dict holds FPN_POST_NMS_TOP_N_TRAIN / _TEST. convention: the box
    operations (coder, IoU, clipping, NMS, size rule); straddle_thresh: with the inclusive convention, anchors
    reaching beyond the image by more than it are ignored in training (SGB's STRADDLE_THRESH; < 0: never).
    forward(images, features, targets=None) -> (proposals [(P_i, 4)] sorted by decreasing objectness,
    losses {"loss_objectness", "loss_rpn_box_reg"} in training).
    """

    def __init__(self, *args, post_nms_top_n_per_level: dict[str, int], fpn_post_nms_per_batch: bool,
                 min_size: float, convention: BoxConvention = TORCHVISION_CONVENTION,
                 straddle_thresh: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._post_nms_top_n_per_level = post_nms_top_n_per_level
        self.fpn_post_nms_per_batch = fpn_post_nms_per_batch
        self.min_size = float(min_size)
        self.convention = convention
        self.box_coder = convention.make_box_coder((1.0, 1.0, 1.0, 1.0))
        self.box_similarity = convention.box_iou
        self.straddle_thresh = straddle_thresh

    def post_nms_top_n_per_level(self) -> int:
        return self._post_nms_top_n_per_level["training" if self.training else "testing"]

    def filter_proposals(self, proposals: Tensor, objectness: Tensor, image_shapes: list[tuple[int, int]],
                         num_anchors_per_level: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        """proposals (B, A_total, 4), objectness (B * A_total, 1) logits -> per image boxes and scores."""
        num_images = proposals.shape[0]
        device = proposals.device
        objectness = objectness.detach().reshape(num_images, -1)
        levels = torch.cat([torch.full((count,), level, dtype=torch.int64, device=device)
                            for level, count in enumerate(num_anchors_per_level)])
        top_n_idx = self._get_top_n_idx(objectness, num_anchors_per_level)
        batch_idx = torch.arange(num_images, device=device)[:, None]
        scores_all = torch.sigmoid(objectness[batch_idx, top_n_idx])
        levels_all = levels[top_n_idx]
        proposals_all = proposals[batch_idx, top_n_idx]

        final_boxes, final_scores = [], []
        for boxes, scores, level, image_shape in zip(proposals_all, scores_all, levels_all, image_shapes):
            boxes = self.convention.clip(boxes, image_shape)
            keep = self.convention.remove_small_boxes(boxes, self.min_size)
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = self.convention.batched_nms(boxes, scores, level, self.nms_thresh)
            keep = keep_top_per_group(keep, level[keep], self.post_nms_top_n_per_level())
            final_boxes.append(boxes[keep])
            final_scores.append(scores[keep])
        if self.training and self.fpn_post_nms_per_batch:
            return self._top_over_batch(final_boxes, final_scores)
        top_n = self.post_nms_top_n()
        return [boxes[:top_n] for boxes in final_boxes], [scores[:top_n] for scores in final_scores]

    def _top_over_batch(self, boxes: list[Tensor], scores: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """SGB's FPN_POST_NMS_PER_BATCH: the FPN_POST_NMS_TOP_N best proposals over the whole batch."""
        all_scores = torch.cat(scores)
        selected = torch.zeros_like(all_scores, dtype=torch.bool)
        selected[all_scores.topk(min(self.post_nms_top_n(), all_scores.numel())).indices] = True
        kept_boxes, kept_scores = [], []
        for image_boxes, image_scores, image_selected in zip(boxes, scores, selected.split([len(s) for s in scores])):
            kept_boxes.append(image_boxes[image_selected])
            kept_scores.append(image_scores[image_selected])
        return kept_boxes, kept_scores

    def visible_anchors(self, anchors: Tensor, image_size: tuple[int, int]) -> Tensor:
        """SGB's anchor visibility: (A_total, 4) anchors, image (H, W) -> (A_total,) bool, True for anchors
        with x1, y1 >= -STRADDLE_THRESH and x2 < W + STRADDLE_THRESH, y2 < H + STRADDLE_THRESH."""
        height, width = image_size
        thresh = self.straddle_thresh
        return ((anchors[:, 0] >= -thresh) & (anchors[:, 1] >= -thresh)
                & (anchors[:, 2] < width + thresh) & (anchors[:, 3] < height + thresh))

    def forward(self, images: ImageList, features: dict[str, Tensor],
                targets: list[dict[str, Tensor]] | None = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        """torchvision's RPN forward, plus SGB's straddle rule (labels -1 for invisible anchors) in training
        with the inclusive convention."""
        feature_list = list(features.values())
        objectness, pred_bbox_deltas = self.head(feature_list)
        anchors = self.anchor_generator(images, feature_list)
        num_anchors_per_level = [o[0].numel() for o in objectness]
        objectness, pred_bbox_deltas = concat_box_prediction_layers(objectness, pred_bbox_deltas)
        proposals = self.box_coder.decode(pred_bbox_deltas.detach(), anchors).view(len(anchors), -1, 4)
        boxes, _ = self.filter_proposals(proposals, objectness, images.image_sizes, num_anchors_per_level)
        if not self.training:
            return boxes, {}
        if targets is None:
            raise ValueError("the RPN in training mode needs targets")
        labels, matched_gt_boxes = self.assign_targets_to_anchors(anchors, targets)
        if self.convention.inclusive and self.straddle_thresh >= 0:
            labels = [torch.where(self.visible_anchors(image_anchors, image_size), image_labels, -1.0)
                      for image_labels, image_anchors, image_size in zip(labels, anchors, images.image_sizes)]
        regression_targets = self.box_coder.encode(matched_gt_boxes, anchors)
        loss_objectness, loss_rpn_box_reg = self.compute_loss(objectness, pred_bbox_deltas, labels, regression_targets)
        return boxes, {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}
