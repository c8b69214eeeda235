"""TorchScript export of the relation model given detections (tools/export_model.py; why not more: docs/demo.md).

The exported module runs the detector's backbone + FPN and the whole relation head (box and union features,
context, predictor, post-processing) on one image whose objects are given: boxes and, in PredCls, their
labels, in SGCls the detector's class logits on them. It is traced for one input size and one number of
objects (``ExportShape``); a call with other shapes is refused with an error, never answered wrongly.

Not exported: the detector's proposals and detections (RPN and RoI heads: a data-dependent number of boxes
after NMS) and SGDet's test-time label decoding (a sequential per-class NMS computed in numpy between the
object and the edge context, docs/reference.md#test-time-post-processing).
TorchScript's tracer records tensor operations only; both would be
frozen as constants of the example.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList

from ..modeling import SceneGraphModel
from ..modeling.relation_head.relation_head import ImageObjects

OUTPUT_NAMES = ("boxes", "labels", "scores", "rel_pair_idxs", "rel_scores", "rel_labels", "triplet_scores")
EXPORTABLE_MODES = ("predcls", "sgcls")


@dataclass(frozen=True)
class ExportShape:
    """What the exported module is traced for. height, width: the image after the test transform's resize
    (the size the boxes live in); padded_height, padded_width: after padding to SIZE_DIVISIBILITY;
    num_objects: N, the number of given boxes (>= 2); num_classes: C, the object classes with background."""

    height: int
    width: int
    padded_height: int
    padded_width: int
    num_objects: int
    num_classes: int


class RelationModelGivenDetections(nn.Module):
    """forward(image (1, 3, Hp, Wp) normalised and padded, boxes (N, 4) xyxy in the (H, W) frame,
    object_input: labels (N,) int64 in PredCls, detector class logits (N, C) in SGCls)
    -> the tuple ``OUTPUT_NAMES`` of the relation head's prediction: boxes (N, 4), labels (N,), scores (N,),
    rel_pair_idxs (R, 2), rel_scores (R, P), rel_labels (R,), triplet_scores (R,), R = N (N - 1), ranked."""

    def __init__(self, model: SceneGraphModel, shape: ExportShape) -> None:
        super().__init__()
        if model.mode not in EXPORTABLE_MODES:
            raise ValueError(f"only {' and '.join(EXPORTABLE_MODES)} models can be exported (this one is "
                             f"{model.mode}): SGDet's label decoding is a numpy per-class NMS that a trace cannot "
                             "record; export the same weights with MODEL.ROI_RELATION_HEAD.USE_GT_BOX True "
                             "(SGCls, labels by foreground argmax) and give it the detector's boxes")
        self.backbone = model.detector.backbone
        self.relation_head = model.relation_head
        self.mode = model.mode
        self.image_size = (shape.height, shape.width)

    def forward(self, image: Tensor, boxes: Tensor, object_input: Tensor) -> tuple[Tensor, ...]:
        features = self.backbone(image)
        if self.mode == "predcls":
            objects = ImageObjects(boxes, labels=object_input)
        else:
            objects = ImageObjects(boxes, labels=None, detector_logits=object_input)
        prediction = self.relation_head(features, [objects], [self.image_size])[0]
        return tuple(prediction[name] for name in OUTPUT_NAMES)


class _ShapeGuard(nn.Module):
    """The traced module behind a check of the input shapes it was traced for (TorchScript-scripted)."""

    def __init__(self, traced: torch.jit.ScriptModule, shape: ExportShape, object_input_dims: int) -> None:
        super().__init__()
        self.traced = traced
        self.padded_height = shape.padded_height
        self.padded_width = shape.padded_width
        self.num_objects = shape.num_objects
        self.num_classes = shape.num_classes
        self.object_input_dims = object_input_dims

    def forward(self, image: Tensor, boxes: Tensor, object_input: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor,
                                                                                    Tensor, Tensor, Tensor]:
        if image.dim() != 4 or image.size(0) != 1 or image.size(2) != self.padded_height \
                or image.size(3) != self.padded_width:
            raise RuntimeError(f"image must be (1, 3, {self.padded_height}, {self.padded_width}), the shape this "
                               f"module was exported for")
        if boxes.dim() != 2 or boxes.size(0) != self.num_objects or boxes.size(1) != 4:
            raise RuntimeError(f"boxes must be ({self.num_objects}, 4), the shape this module was exported for")
        if object_input.size(0) != self.num_objects or object_input.dim() != self.object_input_dims \
                or (self.object_input_dims == 2 and object_input.size(1) != self.num_classes):
            raise RuntimeError("object_input must be labels (N,) in PredCls or detector logits (N, C) in SGCls, "
                               "N and C as exported")
        return self.traced(image, boxes, object_input)


def export_relation_model(model: SceneGraphModel, shape: ExportShape, example: tuple[Tensor, Tensor, Tensor]
                          ) -> torch.jit.ScriptModule:
    """The TorchScript module of ``RelationModelGivenDetections`` traced on ``example`` (image, boxes,
    object_input) of ``shape``, behind a shape check. ``model`` is put in eval mode, on the CPU."""
    if shape.num_objects < 2:
        raise ValueError(f"the number of objects to export for must be >= 2, got {shape.num_objects}")
    wrapper = RelationModelGivenDetections(model.cpu().eval(), shape).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns wherever a Python number is read from a shape: the shape check makes them safe.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    return torch.jit.script(_ShapeGuard(traced, shape, example[2].dim()))


def pytorch_outputs(model: SceneGraphModel, shape: ExportShape, image: Tensor, boxes: Tensor,
                    object_input: Tensor) -> tuple[Tensor, ...]:
    """The same prediction from the PyTorch model itself (``SceneGraphModel.forward``), for the check."""
    images = ImageList(image, [(shape.height, shape.width)])
    if model.mode == "predcls":
        target = {"boxes": boxes, "labels": object_input}
        with torch.no_grad():
            prediction = model.eval()(images, [target])[0]
    else:
        with torch.no_grad():
            features = model.detector.extract_features(images)
            objects = [ImageObjects(boxes, labels=None, detector_logits=object_input)]
            prediction = model.relation_head.eval()(features, objects, images.image_sizes)[0]
    return tuple(prediction[name] for name in OUTPUT_NAMES)


def sample_inputs(shape: ExportShape, mode: str, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded example inputs: a normalised random image (1, 3, Hp, Wp) zero-padded outside (H, W), N boxes
    of at least 8 pixels inside (H, W), and labels 1..C-1 (PredCls) or logits (N, C) (SGCls)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.zeros(1, 3, shape.padded_height, shape.padded_width)
    image[:, :, :shape.height, :shape.width] = torch.randn(1, 3, shape.height, shape.width, generator=generator)
    size = torch.tensor([shape.width, shape.height], dtype=torch.float32)
    corner = torch.rand(shape.num_objects, 2, generator=generator) * (size - 9)
    extent = 8 + torch.rand(shape.num_objects, 2, generator=generator) * (size / 2)
    boxes = torch.cat([corner, torch.minimum(corner + extent, size - 1)], dim=1)
    if mode == "predcls":
        return image, boxes, torch.randint(1, shape.num_classes, (shape.num_objects,), generator=generator)
    return image, boxes, torch.randn(shape.num_objects, shape.num_classes, generator=generator)


def max_differences(reference: tuple[Tensor, ...], exported: tuple[Tensor, ...]) -> dict[str, float]:
    """Per output name, the largest absolute difference (inf when the shapes differ)."""
    differences = {}
    for name, expected, got in zip(OUTPUT_NAMES, reference, exported):
        if expected.shape != got.shape:
            differences[name] = float("inf")
        else:
            differences[name] = float((expected.double() - got.double()).abs().max()) if expected.numel() else 0.0
    return differences
