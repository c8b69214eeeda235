"""The whole scene-graph model: a frozen detector that proposes objects, and the relation head.

forward(images, targets):
    training -> {"loss_rel", "loss_refine_obj", and the predictor's extra losses};
    eval -> one prediction dict per image, in the input frame
    ({"boxes", "labels", "scores", "rel_pair_idxs", "rel_scores", "rel_labels", "triplet_scores"}, see
    ``relation_head.postprocess``).
targets: the loader's per-image dicts ("boxes" (N, 4) in the input frame, "labels" (N,), "relation" (N, N)).
They are needed in training, and at test time in PredCls / SGCls, whose objects are the GT boxes.

Objects per mode (docs/reference.md#object-proposals):
PredCls the GT boxes and labels; SGCls the GT boxes with the detector's class
logits on them; SGDet the detector's detections (in training with the GT boxes added to the proposals when
ADD_GTBOX_TO_PROPOSAL_IN_TRAIN, and each detection labelled with its matched GT label).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList

from ..utils.state_dict import replace_substate
from .detector import SceneGraphDetector
from .relation_head.object_labels import check_mode
from .relation_head.relation_head import ImageObjects, RelationHead


class SceneGraphModel(nn.Module):
    """detector: a frozen SceneGraphDetector (``freeze_detector``); relation_head: a RelationHead;
    mode: "predcls" | "sgcls" | "sgdet"."""

    def __init__(self, detector: SceneGraphDetector, relation_head: RelationHead, mode: str) -> None:
        super().__init__()
        if not detector.frozen:
            raise ValueError("SceneGraphModel needs a frozen detector (freeze_detector)")
        self.detector = detector
        self.relation_head = relation_head
        self.mode = check_mode(mode)

    @property
    def box_convention(self) -> str:
        """The detector's MODEL.BOX_CONVENTION ("torchvision" | "sgb"), recorded in checkpoints."""
        return self.detector.box_convention

    @property
    def requires_training(self) -> bool:
        """False when the relation predictor is tested as built, without trained weights."""
        return self.relation_head.predictor.requires_training

    def complete_stage2_state(self, stage1_state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A stage-1 model's state dict completed for this (stage-2) model by its relation predictor
        (``RelationPredictor.complete_stage2_state``), e.g. the clean classifier copied from the general one."""
        return replace_substate(stage1_state, "relation_head.", self.relation_head.complete_stage2_state)

    def forward(self, images: ImageList, targets: list[dict[str, Tensor]] | None = None):
        if targets is None and (self.training or self.mode != "sgdet"):
            raise ValueError(f"SceneGraphModel needs targets in {'training' if self.training else self.mode}")
        with torch.no_grad():
            features = self.detector.extract_features(images)
            objects = self.propose_objects(images, features, targets)
        return self.relation_head(features, objects, images.image_sizes, targets)

    def propose_objects(self, images: ImageList, features: dict[str, Tensor],
                        targets: list[dict[str, Tensor]] | None) -> list[ImageObjects]:
        """The objects the relation head relates, per image (see the module docstring)."""
        if self.mode == "sgdet":
            training = self.training
            detections = self.detector.detect(images, features, targets if training else None,
                                              add_gt_boxes=training and self.detector.add_gt_boxes_in_train)
            return [ImageObjects(d.boxes, d.gt_labels, d.class_logits, d.boxes_per_cls) for d in detections]
        boxes = [target["boxes"] for target in targets]
        if self.mode == "predcls":
            return [ImageObjects(b, target["labels"]) for b, target in zip(boxes, targets)]
        logits = self.detector.box_outputs(features, boxes, images.image_sizes).class_logits
        return [ImageObjects(b, target["labels"], image_logits)
                for b, target, image_logits in zip(boxes, targets, logits.split([len(b) for b in boxes]))]
