"""Region proposal network on torchvision's RegionProposalNetwork, with SGB's FPN proposal selection.

Differences from torchvision's defaults, to follow SGB (SPEC §9.1):
* anchors are laid out with the configured strides (ANCHOR_STRIDE), not strides inferred from the padded
  image size (which give e.g. 60 instead of 64 for P6 when the padded size is not a multiple of 64);
* the shared head's 3x3 conv has its own width (RPN_MID_CHANNEL);
* per level: top PRE_NMS_TOP_N by objectness, NMS, then at most POST_NMS_TOP_N; then per image (or per
  batch in training with FPN_POST_NMS_PER_BATCH) the top FPN_POST_NMS_TOP_N over all levels;
* boxes smaller than MIN_SIZE are removed (degenerate, zero-area boxes always).
Anchor centres, the box coder and NMS keep torchvision's continuous-coordinate conventions (SPEC §0).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import boxes as box_ops

from .ops import keep_top_per_group

_DEGENERATE_BOX_SIZE = 1e-3  # torchvision's own floor: zero-area boxes would give infinite regression targets


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


class FixedStrideAnchorGenerator(AnchorGenerator):
    """torchvision's AnchorGenerator with one configured stride per feature level.

    sizes: one tuple of sizes per level, e.g. ((32,), (64,), ...); aspect_ratios: h/w per level;
    strides: one int per level. forward(images, feature_maps) -> per image (sum_l H_l W_l A, 4) xyxy.
    """

    def __init__(self, sizes: Sequence[Sequence[int]], aspect_ratios: Sequence[Sequence[float]],
                 strides: Sequence[int]) -> None:
        super().__init__(tuple(tuple(s) for s in sizes), tuple(tuple(r) for r in aspect_ratios))
        if len(strides) != len(sizes):
            raise ValueError(f"MODEL.RPN.ANCHOR_STRIDE has {len(strides)} entries but ANCHOR_SIZES has "
                             f"{len(sizes)}; they need one per feature level")
        self.strides = tuple(int(stride) for stride in strides)

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
    the inherited ``post_nms_top_n`` dict holds FPN_POST_NMS_TOP_N_TRAIN / _TEST.
    forward(images, features, targets=None) -> (proposals [(P_i, 4)] sorted by decreasing objectness,
    losses {"loss_objectness", "loss_rpn_box_reg"} in training).
    """

    def __init__(self, *args, post_nms_top_n_per_level: dict[str, int], fpn_post_nms_per_batch: bool,
                 min_size: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._post_nms_top_n_per_level = post_nms_top_n_per_level
        self.fpn_post_nms_per_batch = fpn_post_nms_per_batch
        self.min_size = max(float(min_size), _DEGENERATE_BOX_SIZE)

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
            boxes = box_ops.clip_boxes_to_image(boxes, image_shape)
            keep = box_ops.remove_small_boxes(boxes, self.min_size)
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = box_ops.batched_nms(boxes, scores, level, self.nms_thresh)
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
