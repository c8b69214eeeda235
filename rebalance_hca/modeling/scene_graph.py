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

from typing import Callable

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList

from ..utils.state_dict import replace_substate
from .detector import SceneGraphDetector
from .relation_head.object_labels import check_mode
from .relation_head.relation_head import FrozenImageOutputs, ImageObjects, RelationHead


ClassifierInputSource = Callable[[Tensor, dict[str, Tensor]], FrozenImageOutputs]
"""(image (3, h, w) unpadded, its target) -> what the frozen part gives the classifier head for that image
(``SceneGraphModel.frozen_classifier_inputs``), computed or read from a cache."""


class SceneGraphModel(nn.Module):
    """detector: a frozen SceneGraphDetector (``freeze_detector``); relation_head: a RelationHead;
    mode: "predcls" | "sgcls" | "sgdet".

    stage2_inputs: None, or (set by the engine for a pass whose frozen part is fixed: stage 2's training and
    validation, a test pass, the confusion-matrix pass) a ``ClassifierInputSource``; then a training forward
    samples the pairs, takes each image's classifier inputs from it and trains the classifier on them
    (``stage2_losses``), and an eval forward predicts each image from them (``frozen_predictions``:
    bit-identical to the eval forward of that image alone), instead of running the frozen part on the batch.
    """

    def __init__(self, detector: SceneGraphDetector, relation_head: RelationHead, mode: str) -> None:
        super().__init__()
        if not detector.frozen:
            raise ValueError("SceneGraphModel needs a frozen detector (freeze_detector)")
        self.detector = detector
        self.relation_head = relation_head
        self.mode = check_mode(mode)
        self.stage2_inputs: ClassifierInputSource | None = None

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

    @property
    def classifier_inputs_per_image(self) -> bool:
        """Whether stage 2 can take the classifier inputs image by image: GT boxes (PredCls / SGCls, whose
        sampler draws from ``pair_grid``) and a predictor that exposes them."""
        return self.mode != "sgdet" and self.relation_head.predictor.exposes_classifier_inputs

    @torch.no_grad()
    def frozen_classifier_inputs(self, image: ImageList, target: dict[str, Tensor]) -> FrozenImageOutputs:
        """What the frozen part gives the classifier head for one image (``RelationHead.frozen_classifier_inputs``:
        object logits, classifier inputs of every pair, N² rows) from ``image``, an ImageList holding that
        image alone, and its target (GT boxes and labels)."""
        if not self.classifier_inputs_per_image:
            raise ValueError(f"{type(self.relation_head.predictor).__name__} in {self.mode} has no per-image "
                             "classifier inputs")
        features = self.detector.extract_features(image)
        objects = self.propose_objects(image, features, [target])
        return self.relation_head.frozen_classifier_inputs(features, objects[0], image.image_sizes[0])

    def stage2_losses(self, images: ImageList, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Stage 2's losses with ``stage2_inputs``: pairs sampled as in a full forward (the same draws of the
        global RNG), each image's classifier inputs from the source, the classifier on the sampled rows."""
        pairs, labels = self.relation_head.sample_pairs([ImageObjects(t["boxes"], t["labels"]) for t in targets],
                                                        targets)
        inputs = [frozen.classifier_inputs for frozen in self._frozen_outputs(images, targets)]
        return self.relation_head.stage2_losses(inputs, pairs, labels, [len(target["boxes"]) for target in targets])

    def frozen_predictions(self, images: ImageList, targets: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """The eval outputs of the batch from ``stage2_inputs``, image by image
        (``RelationHead.predictions_from_frozen``): each image's as the eval forward of it alone gives them."""
        return [self.relation_head.predictions_from_frozen(frozen, ImageObjects(target["boxes"], target["labels"]))
                for frozen, target in zip(self._frozen_outputs(images, targets), targets)]

    def _frozen_outputs(self, images: ImageList, targets: list[dict[str, Tensor]]) -> list[FrozenImageOutputs]:
        """Each image's ``stage2_inputs`` (the image cropped to its size, unpadded)."""
        return [self.stage2_inputs(images.tensors[index, :, :height, :width], target)
                for index, ((height, width), target) in enumerate(zip(images.image_sizes, targets))]

    def forward(self, images: ImageList, targets: list[dict[str, Tensor]] | None = None):
        if targets is None and (self.training or self.mode != "sgdet"):
            raise ValueError(f"SceneGraphModel needs targets in {'training' if self.training else self.mode}")
        if self.stage2_inputs is not None:
            return self.stage2_losses(images, targets) if self.training else self.frozen_predictions(images, targets)
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
