"""Object labels inside the relation head (docs/reference.md#object-context, #test-time-post-processing):
the label embedding that feeds a context,
the refined labels per mode, and the per-class NMS decoding of SGDet.

Modes: "predcls" (GT boxes and labels), "sgcls" (GT boxes, labels predicted), "sgdet" (detected boxes).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("predcls", "sgcls", "sgdet")
ONE_HOT_FILL = 1000.0
"""SGB's ``to_onehot`` logits: +1000 for the label, -1000 elsewhere (softmax gives exactly 1 and 0)."""


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def one_hot_logits(labels: Tensor, num_classes: int) -> Tensor:
    """labels (N,) int64 -> (N, num_classes) float logits of ±ONE_HOT_FILL."""
    logits = torch.full((labels.numel(), num_classes), -ONE_HOT_FILL, device=labels.device)
    logits[torch.arange(labels.numel(), device=labels.device), labels] = ONE_HOT_FILL
    return logits


def label_embedding(embedding: torch.nn.Embedding, labels: Tensor | None, detector_logits: Tensor | None) -> Tensor:
    """The textual input of an object: the embedding of its GT label (PredCls), else the embedding table
    weighted by softmax of the detector's logits, detached (SGCls / SGDet). -> (N, embed_dim)."""
    if labels is not None:
        return embedding(labels)
    if detector_logits is None:
        raise ValueError("label_embedding needs GT labels (predcls) or detector logits (sgcls, sgdet)")
    return F.softmax(detector_logits.detach().float(), dim=1) @ embedding.weight


def foreground_argmax(object_logits: Tensor) -> Tensor:
    """(N, C) -> (N,) int64 argmax over classes 1..C-1."""
    return object_logits[:, 1:].argmax(dim=1) + 1


def per_class_overlaps(boxes_per_cls: Tensor, threshold: float) -> np.ndarray:
    """Whether two boxes' class-c regressions overlap at IoU >= threshold (SGB's ``nms_overlaps``, +1 pixel
    convention). boxes_per_cls (N, C, 4) -> (N, N, C) bool numpy."""
    boxes = boxes_per_cls.detach().float().cpu()
    top_left = torch.maximum(boxes[:, None, :, :2], boxes[None, :, :, :2])
    bottom_right = torch.minimum(boxes[:, None, :, 2:], boxes[None, :, :, 2:])
    intersection = (bottom_right - top_left + 1.0).clamp(min=0).prod(dim=-1)
    area = (boxes[..., 2] - boxes[..., 0] + 1.0) * (boxes[..., 3] - boxes[..., 1] + 1.0)
    iou = intersection / (area[:, None, :] + area[None, :, :] - intersection)
    return (iou >= threshold).numpy()


def nms_decode_labels(object_logits: Tensor, boxes_per_cls: Tensor, threshold: float,
                      background_value: float = -1.0, first_assignment_wins: bool = False) -> Tensor:
    """SGB's greedy per-class NMS decoding of one image's refined labels (docs/reference.md#per-class-nms-decoding).

    object_logits (N, C), boxes_per_cls (N, C, 4) -> labels (N,) int64. N times: take the global argmax
    (box b, class c) of the class probabilities; give b label c; zero class c for every box whose class-c box
    overlaps b's at IoU >= threshold; set row b to -1.
    The context's routine sets the background column to -1 and always overwrites; the post-processor's
    (``obj_prediction_nms``, docs/reference.md#per-class-nms-decoding)
    sets it to 0 and keeps a box's first label: ``background_value`` and
    ``first_assignment_wins`` select the variant.
    """
    num_boxes = object_logits.shape[0]
    labels = np.zeros(num_boxes, dtype=np.int64)
    if num_boxes == 0:
        return torch.from_numpy(labels).to(object_logits.device)
    overlaps = per_class_overlaps(boxes_per_cls, threshold)
    probabilities = F.softmax(object_logits.detach().float(), dim=1).cpu().numpy()
    probabilities[:, 0] = background_value
    assigned = np.zeros(num_boxes, dtype=bool)
    for _ in range(num_boxes):
        box, cls = np.unravel_index(probabilities.argmax(), probabilities.shape)
        if not (first_assignment_wins and assigned[box]):
            labels[box] = cls
            assigned[box] = True
        probabilities[overlaps[box, :, cls], cls] = 0.0
        probabilities[box] = -1.0
    return torch.from_numpy(labels).to(object_logits.device)


def refine_object_labels(object_logits: Tensor, num_objects: list[int], mode: str, training: bool,
                         boxes_per_cls: Tensor | None, nms_threshold: float) -> Tensor:
    """The context's predicted labels in SGCls / SGDet (docs/reference.md#object-context):
    the foreground argmax, except at SGDet
    test time, where each image is decoded by per-class NMS. object_logits (ΣN, C) -> (ΣN,) int64."""
    if mode == "sgdet" and not training:
        if boxes_per_cls is None:
            raise ValueError("SGDet inference needs the detections' boxes_per_cls")
        return torch.cat([nms_decode_labels(logits, boxes, nms_threshold) for logits, boxes in
                          zip(object_logits.split(num_objects), boxes_per_cls.split(num_objects))])
    return foreground_argmax(object_logits)
