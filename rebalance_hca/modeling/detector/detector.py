"""The detector module: backbone + FPN, RPN and RoI heads on an already prepared ImageList.

Unlike torchvision's GeneralizedRCNN there is no transform inside: the data loader resizes, normalises
(BGR255 - PIXEL_MEAN) / PIXEL_STD and pads the images, and boxes stay in that resized frame.

Interface used by the relation head (shapes per batch of B images; C = NUM_CLASSES, D = MLP_HEAD_DIM):
* ``extract_features(images)`` -> OrderedDict "0".."3" = P2..P5 (B, F, H/4..H/32, W/4..W/32) and
  "pool" = P6 (B, F, H/64, W/64), F = BACKBONE_OUT_CHANNELS.
* ``box_outputs(features, boxes, image_sizes)`` -> BoxHeadOutput: features (N, D), class_logits (N, C),
  box_regression (N, 4C) for given boxes (PredCls / SGCls).
* ``detect(images, features, targets=None, add_gt_boxes=False)`` -> [Detections] (SGDet): up to
  DETECTIONS_PER_IMG per image with boxes, labels, scores, class_logits (N, C), boxes_per_cls (N, C, 4),
  proposal_indices and, with targets, gt_labels.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.image_list import ImageList

from .roi_heads import BoxHeadOutput, DetectorRoIHeads
from .rpn import FPNRegionProposalNetwork
from .sgdet_postprocess import Detections


class SceneGraphDetector(nn.Module):
    """Faster R-CNN (optionally Mask R-CNN) on torchvision components.

    forward(images, targets=None): in training returns the loss dict {"loss_objectness", "loss_rpn_box_reg",
    "loss_classifier", "loss_box_reg"[, "loss_mask"]}; in eval returns [Detections] per image.
    targets: per image {"boxes": (G, 4) float xyxy in the input frame, "labels": (G,) int64[, "masks"]}.
    After ``freeze_detector`` the module stays in eval behaviour whatever ``train()`` asks.
    """

    def __init__(self, backbone: BackboneWithFPN, rpn: FPNRegionProposalNetwork, roi_heads: DetectorRoIHeads) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.frozen = False

    @property
    def num_classes(self) -> int:
        return self.roi_heads.box_predictor.cls_score.out_features

    @property
    def box_convention(self) -> str:
        """MODEL.BOX_CONVENTION this detector was built with: "torchvision" or "sgb" (docs/detector.md)."""
        return self.roi_heads.convention.name

    @property
    def add_gt_boxes_in_train(self) -> bool:
        """ADD_GTBOX_TO_PROPOSAL_IN_TRAIN: whether training-time proposals get the GT boxes appended."""
        return self.roi_heads.add_gt_boxes_in_train

    def train(self, mode: bool = True) -> "SceneGraphDetector":
        return super().train(mode and not self.frozen)

    def extract_features(self, images: ImageList) -> "OrderedDict[str, Tensor]":
        """images.tensors (B, 3, H, W) -> FPN features (see the module docstring)."""
        return self.backbone(images.tensors)

    def box_features(self, features: dict[str, Tensor], boxes: list[Tensor],
                     image_sizes: list[tuple[int, int]]) -> Tensor:
        """Box-head features (sum N_i, MLP_HEAD_DIM) of boxes [(N_i, 4)] xyxy in the input frame."""
        return self.roi_heads.box_features(features, boxes, image_sizes)

    def box_outputs(self, features: dict[str, Tensor], boxes: list[Tensor],
                    image_sizes: list[tuple[int, int]]) -> BoxHeadOutput:
        """Features (N, D), class logits (N, C) and class-specific deltas (N, 4C) of boxes [(N_i, 4)]."""
        return self.roi_heads.box_outputs(features, boxes, image_sizes)

    def propose(self, images: ImageList, features: dict[str, Tensor],
                targets: list[dict[str, Tensor]] | None = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        """RPN proposals [(P_i, 4)] (sorted by objectness) and, in training, the RPN losses."""
        return self.rpn(images, features, targets)

    @torch.no_grad()
    def detect(self, images: ImageList, features: dict[str, Tensor] | None = None,
               targets: list[dict[str, Tensor]] | None = None, add_gt_boxes: bool = False) -> list[Detections]:
        """SGDet detections per image (docs/reference.md#object-proposals), without gradients.

        features: the output of ``extract_features`` (computed when None). targets: when given, every
        detection gets ``gt_labels`` from its source proposal (label of the GT with the highest IoU if
        IoU >= FG_IOU_THRESHOLD, else 0, matched before box regression as in SGB). add_gt_boxes: append the
        GT boxes to the proposals first (SGDet relation training with ADD_GTBOX_TO_PROPOSAL_IN_TRAIN).
        """
        if self.training:
            raise RuntimeError("detect() needs eval behaviour: call freeze_detector(detector) or detector.eval()")
        if add_gt_boxes and targets is None:
            raise ValueError("detect(add_gt_boxes=True) needs targets with the GT boxes")
        if features is None:
            features = self.extract_features(images)
        proposals, _ = self.rpn(images, features)
        if add_gt_boxes:
            proposals = [torch.cat([p, t["boxes"].to(p.dtype)]) for p, t in zip(proposals, targets)]
        detections, _ = self.roi_heads(features, proposals, images.image_sizes)
        if targets is not None:
            for image_detections, image_proposals, target in zip(detections, proposals, targets):
                matched = self.match_proposal_labels(image_proposals, target)
                image_detections.gt_labels = matched[image_detections.proposal_indices]
        return detections

    def match_proposal_labels(self, proposals: Tensor, target: dict[str, Tensor]) -> Tensor:
        """proposals (P, 4), target boxes (G, 4) / labels (G,) -> (P,) int64 label of the best-IoU GT when
        that IoU >= FG_IOU_THRESHOLD, else 0 (SGB's assign_label_to_proposals; IoU of the box convention)."""
        gt_boxes, gt_labels = target["boxes"].to(proposals.dtype), target["labels"]
        if gt_boxes.numel() == 0:
            return torch.zeros(len(proposals), dtype=torch.int64, device=proposals.device)
        best_iou, best_gt = self.roi_heads.box_similarity(gt_boxes, proposals).max(dim=0)
        matched = gt_labels[best_gt].to(torch.int64)
        return torch.where(best_iou >= self.roi_heads.proposal_matcher.high_threshold, matched,
                           torch.zeros_like(matched))

    def forward(self, images: ImageList, targets: list[dict[str, Tensor]] | None = None):
        if self.training and targets is None:
            raise ValueError("SceneGraphDetector in training mode needs targets")
        features = self.extract_features(images)
        proposals, rpn_losses = self.propose(images, features, targets)
        detections, head_losses = self.roi_heads(features, proposals, images.image_sizes, targets)
        if self.training:
            return {**rpn_losses, **head_losses}
        return detections
