"""The RoI box head (and optional mask head) on torchvision's RoIHeads, with SGB's loss and post-processing.

Box head = SGB's FPN2MLPFeatureExtractor + FPNPredictor: MultiScaleRoIAlign 7x7 (sampling 2, legacy
alignment) over P2-P5 -> fc6 -> ReLU -> fc7 -> ReLU (MLP_HEAD_DIM) -> class logits (C) and class-specific
box deltas (4C). torchvision's sampling (Matcher, balanced sampler, BoxCoder) is reused as is; the box
regression loss is smooth-L1 with beta 1 as in SGB (torchvision uses 1/9); ground-truth boxes join the
sampled proposals only when ``add_gt_boxes_in_train`` (SGB's ADD_GTBOX_TO_PROPOSAL_IN_TRAIN).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import initLevelMapper

from .conventions import TORCHVISION_CONVENTION, BoxConvention, InclusiveLevelMapper
from .sgdet_postprocess import Detections, SGDetPostProcessor

BOX_LOSS_BETA = 1.0
"""SGB's smooth-L1 beta for the box head's regression loss (the RPN's stays torchvision's 1/9, as SGB's)."""


class BoxHeadOutput(NamedTuple):
    """Box-head outputs for N boxes: features (N, MLP_HEAD_DIM), class_logits (N, C), box_regression (N, 4C)."""

    features: Tensor
    class_logits: Tensor
    box_regression: Tensor


def build_fpn_roi_pooler(featmap_names: list[str], output_size: int, sampling_ratio: int,
                         scales: tuple[float, ...], inclusive: bool = False) -> MultiScaleRoIAlign:
    """MultiScaleRoIAlign (``aligned=False``) with its level scales fixed from the config (POOLER_SCALES)
    instead of inferred from the first batch; box -> level k = floor(4 + log2(sqrt(area)/224) + 1e-6)
    (torchvision), or with ``inclusive`` SGB's k = floor(4 + log2(sqrt((w+1)(h+1))/224 + 1e-6)); clamped to
    the levels. Boxes reach RoIAlign unchanged in both cases."""
    if len(scales) != len(featmap_names):
        raise ValueError(f"POOLER_SCALES has {len(scales)} entries but the FPN has {len(featmap_names)} RoI levels")
    levels = [-torch.log2(torch.tensor(scale)).item() for scale in scales]
    if any(abs(level - round(level)) > 1e-6 for level in levels) or \
            any(round(b) - round(a) != 1 for a, b in zip(levels, levels[1:])):
        raise ValueError(f"POOLER_SCALES must be decreasing powers of 1/2 (e.g. 0.25, 0.125, ...), got {scales}")
    pooler = MultiScaleRoIAlign(featmap_names=featmap_names, output_size=output_size, sampling_ratio=sampling_ratio)
    pooler.scales = [float(scale) for scale in scales]
    k_min, k_max = int(round(levels[0])), int(round(levels[-1]))
    pooler.map_levels = InclusiveLevelMapper(k_min, k_max) if inclusive else initLevelMapper(k_min, k_max)
    return pooler


def init_box_head_like_sgb(box_head: nn.Module, box_predictor: nn.Module) -> None:
    """SGB's initialisation: fc6/fc7 kaiming-uniform (a=1), class scores N(0, 0.01), box deltas
    N(0, 0.001), all biases 0 (torchvision's TwoMLPHead/FastRCNNPredictor use PyTorch's Linear default)."""
    for fc in (box_head.fc6, box_head.fc7):
        nn.init.kaiming_uniform_(fc.weight, a=1)
        nn.init.zeros_(fc.bias)
    nn.init.normal_(box_predictor.cls_score.weight, std=0.01)
    nn.init.normal_(box_predictor.bbox_pred.weight, std=0.001)
    nn.init.zeros_(box_predictor.cls_score.bias)
    nn.init.zeros_(box_predictor.bbox_pred.bias)


def fast_rcnn_loss(class_logits: Tensor, box_regression: Tensor, labels: list[Tensor],
                   regression_targets: list[Tensor]) -> tuple[Tensor, Tensor]:
    """SGB's FastRCNNLossComputation. class_logits (N, C), box_regression (N, 4C), labels [(n_i,)] with
    sum n_i = N, regression_targets [(n_i, 4)] -> (cross-entropy, smooth-L1 (beta 1) summed over the
    positives' true-class deltas / N)."""
    labels = torch.cat(labels)
    regression_targets = torch.cat(regression_targets)
    classification_loss = F.cross_entropy(class_logits, labels)
    positive = torch.nonzero(labels > 0).squeeze(1)
    deltas = box_regression.reshape(box_regression.shape[0], -1, 4)[positive, labels[positive]]
    box_loss = F.smooth_l1_loss(deltas, regression_targets[positive], beta=BOX_LOSS_BETA, reduction="sum")
    return classification_loss, box_loss / labels.numel()


class DetectorRoIHeads(RoIHeads):
    """torchvision RoIHeads with SGB's box loss, SGDet post-processing and a box-feature interface.

    convention: the box coder (weights BBOX_REG_WEIGHTS), proposal-GT IoU, clipping and NMS (the level rule
    is the pooler's). forward(features, proposals [(P_i, 4)], image_sizes, targets=None) -> (detections,
    losses): in training ([], {"loss_classifier", "loss_box_reg"[, "loss_mask"]}); in eval
    ([Detections per image], {}).
    """

    def __init__(self, box_roi_pool: MultiScaleRoIAlign, box_head: nn.Module, box_predictor: nn.Module, *,
                 fg_iou_thresh: float, bg_iou_thresh: float, batch_size_per_image: int, positive_fraction: float,
                 bbox_reg_weights: tuple[float, float, float, float], postprocessor_options: dict,
                 add_gt_boxes_in_train: bool, convention: BoxConvention = TORCHVISION_CONVENTION,
                 mask_roi_pool: MultiScaleRoIAlign | None = None, mask_head: nn.Module | None = None,
                 mask_predictor: nn.Module | None = None) -> None:
        super().__init__(
            box_roi_pool, box_head, box_predictor,
            fg_iou_thresh, bg_iou_thresh, batch_size_per_image, positive_fraction, bbox_reg_weights,
            score_thresh=postprocessor_options["score_thresh"], nms_thresh=postprocessor_options["nms_thresh"],
            detections_per_img=postprocessor_options["detections_per_img"],
            mask_roi_pool=mask_roi_pool, mask_head=mask_head, mask_predictor=mask_predictor,
        )
        self.add_gt_boxes_in_train = add_gt_boxes_in_train
        self.convention = convention
        self.box_coder = convention.make_box_coder(bbox_reg_weights)
        self.box_similarity = convention.box_iou
        self.postprocessor = SGDetPostProcessor(box_coder=self.box_coder, clip=convention.clip,
                                                batched_nms=convention.batched_nms, **postprocessor_options)

    def add_gt_proposals(self, proposals: list[Tensor], gt_boxes: list[Tensor]) -> list[Tensor]:
        """Append the GT boxes to the proposals only when ADD_GTBOX_TO_PROPOSAL_IN_TRAIN (SGB's RPN flag)."""
        if not self.add_gt_boxes_in_train:
            return proposals
        return super().add_gt_proposals(proposals, gt_boxes)

    def box_features(self, features: dict[str, Tensor], boxes: list[Tensor],
                     image_sizes: list[tuple[int, int]]) -> Tensor:
        """RoIAlign + fc6/fc7. features: the backbone's dict; boxes [(N_i, 4)] xyxy in the input frame;
        -> (sum N_i, MLP_HEAD_DIM)."""
        return self.box_head(self.box_roi_pool(features, boxes, image_sizes))

    def box_outputs(self, features: dict[str, Tensor], boxes: list[Tensor],
                    image_sizes: list[tuple[int, int]]) -> BoxHeadOutput:
        """Box features, class logits (sum N_i, C) and class-specific deltas (sum N_i, 4C) of given boxes."""
        box_features = self.box_features(features, boxes, image_sizes)
        class_logits, box_regression = self.box_predictor(box_features)
        return BoxHeadOutput(box_features, class_logits, box_regression)

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_sizes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None) -> tuple[list[Detections], dict[str, Tensor]]:
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
            outputs = self.box_outputs(features, proposals, image_sizes)
            loss_classifier, loss_box_reg = fast_rcnn_loss(outputs.class_logits, outputs.box_regression,
                                                           labels, regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            if self.has_mask():
                losses["loss_mask"] = self._mask_loss(features, proposals, image_sizes, targets, matched_idxs, labels)
            return [], losses
        outputs = self.box_outputs(features, proposals, image_sizes)
        detections = self.postprocessor(outputs.class_logits, outputs.box_regression, proposals, image_sizes)
        if self.has_mask():
            self.add_masks(features, detections, image_sizes)
        return detections, {}

    def _mask_loss(self, features: dict[str, Tensor], proposals: list[Tensor], image_sizes: list[tuple[int, int]],
                   targets: list[dict[str, Tensor]], matched_idxs: list[Tensor], labels: list[Tensor]) -> Tensor:
        """torchvision's Mask R-CNN loss on the positive sampled proposals; targets need "masks" (G, H, W)."""
        positives = [torch.nonzero(image_labels > 0).squeeze(1) for image_labels in labels]
        mask_proposals = [image_proposals[keep] for image_proposals, keep in zip(proposals, positives)]
        positive_matches = [image_matches[keep] for image_matches, keep in zip(matched_idxs, positives)]
        mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals, image_sizes)))
        return maskrcnn_loss(mask_logits, mask_proposals, [t["masks"] for t in targets],
                             [t["labels"] for t in targets], positive_matches)

    def add_masks(self, features: dict[str, Tensor], detections: list[Detections],
                   image_sizes: list[tuple[int, int]]) -> None:
        """Set each Detections' masks to (N, 1, M, M) probabilities of its label."""
        mask_features = self.mask_roi_pool(features, [d.boxes for d in detections], image_sizes)
        mask_logits = self.mask_predictor(self.mask_head(mask_features))
        for image_detections, probabilities in zip(detections, maskrcnn_inference(mask_logits,
                                                                                  [d.labels for d in detections])):
            image_detections.masks = probabilities
