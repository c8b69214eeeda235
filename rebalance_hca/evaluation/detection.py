"""Detector mAP exactly as SGB's ``vg_eval.py`` computes it (docs/reference.md#detection-map).

Boxes are float32, as in SGB's BoxList. A faux COCO ground truth is built with the +1 pixel box
convention: bbox = [x1, y1, x2 - x1 + 1, y2 - y1 + 1], area = (x2 - x1 + 1)(y2 - y1 + 1) (in Python
floats), annotation ids 0, 1, ... and image ids 0..N-1, one category per foreground class. Detections are
converted to xywh with the same +1 in float32 (SGB's ``BoxList.convert``) and passed to pycocotools as
an (D, 7) array [image_id, x, y, w, h, score, label]. The reported "mAP" is ``COCOeval.stats[1]``, AP at
IoU 0.50, not AP@[.5:.95].

Quirk kept from SGB: pycocotools records a detection's match by the matched GT annotation's id and
treats id 0 as "unmatched", so the very first GT box of the split never counts as a true positive.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ._arrays import check_length, get_array

__all__ = ["compute_detection_map"]


def compute_detection_map(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                          num_classes: int | None = None, class_names: Sequence[str] | None = None,
                          verbose: bool = False) -> dict:
    """COCO-style box AP of per-image detections against per-image ground truth.

    groundtruths[i]: {"boxes": (n, 4) xyxy, "labels": (n,) int in 1..C}.
    predictions[i]: {"boxes": (k, 4) xyxy, "labels": (k,) int, "scores": (k,) float}; numpy or torch.
    num_classes: number of classes including background (151 for VG150); categories are 1..num_classes-1.
        None infers it from the largest label seen (categories without GT never enter the COCO means).
    class_names: optional names, index 0 = background, used as COCO category names.
    verbose: let pycocotools print its progress and summary table (silenced otherwise).

    Returns {"mAP": AP@0.5 (float), "coco_stats": the 12 ``COCOeval.stats`` floats}. A stat with no
    ground truth to measure is -1, as in pycocotools.
    """
    if len(groundtruths) != len(predictions):
        raise ValueError(f"compute_detection_map: {len(groundtruths)} groundtruths but {len(predictions)} predictions")
    gt_annotations, detection_rows, max_label = _collect(groundtruths, predictions)
    if num_classes is None:
        num_classes = max_label + 1
    if class_names is not None and len(class_names) < num_classes:
        raise ValueError(f"compute_detection_map: class_names has {len(class_names)} names, "
                         f"num_classes is {num_classes}")
    categories = [{"supercategory": "object", "id": label,
                   "name": class_names[label] if class_names is not None else str(label)}
                  for label in range(1, num_classes)]
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        faux_coco = COCO()
        faux_coco.dataset = {"info": {"description": "VG detection evaluation with the COCO API"},
                             "images": [{"id": i} for i in range(len(groundtruths))],
                             "categories": categories, "annotations": gt_annotations}
        faux_coco.createIndex()
        results = _load_results(faux_coco, detection_rows)
        coco_eval = COCOeval(faux_coco, results, "bbox")
        coco_eval.params.imgIds = list(range(len(groundtruths)))
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    stats = [float(value) for value in coco_eval.stats]
    return {"mAP": stats[1], "coco_stats": stats}


def _collect(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]]
             ) -> tuple[list[dict], np.ndarray, int]:
    """COCO GT annotations, the (D, 7) detection array and the largest label seen."""
    annotations: list[dict] = []
    rows: list[np.ndarray] = []
    max_label = 0
    for image_id, (groundtruth, prediction) in enumerate(zip(groundtruths, predictions)):
        gt_where, pred_where = f"groundtruth of image {image_id}", f"prediction of image {image_id}"
        gt_boxes = get_array(groundtruth, "boxes", gt_where, 2, 4).astype(np.float32).astype(np.float64)
        gt_labels = get_array(groundtruth, "labels", gt_where, 1, integer=True)
        check_length(gt_labels, len(gt_boxes), "labels", "boxes", gt_where)
        widths = gt_boxes[:, 2] - gt_boxes[:, 0] + 1
        heights = gt_boxes[:, 3] - gt_boxes[:, 1] + 1
        for box, width, height, label in zip(gt_boxes.tolist(), widths.tolist(), heights.tolist(),
                                             gt_labels.tolist()):
            annotations.append({"area": height * width, "bbox": [box[0], box[1], width, height],
                                "category_id": label, "id": len(annotations), "image_id": image_id,
                                "iscrowd": 0})
        boxes = get_array(prediction, "boxes", pred_where, 2, 4).astype(np.float32)
        labels = get_array(prediction, "labels", pred_where, 1, integer=True)
        scores = get_array(prediction, "scores", pred_where, 1)
        check_length(labels, len(boxes), "labels", "boxes", pred_where)
        check_length(scores, len(boxes), "scores", "boxes", pred_where)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2] + np.float32(1)], axis=1)
        rows.append(np.column_stack((np.full(len(boxes), image_id, dtype=np.float64), xywh.astype(np.float64),
                                     scores.astype(np.float64), labels.astype(np.float64))))
        max_label = max(max_label, int(gt_labels.max(initial=0)), int(labels.max(initial=0)))
    detection_rows = np.concatenate(rows, axis=0) if rows else np.zeros((0, 7))
    return annotations, detection_rows, max_label


def _load_results(faux_coco: COCO, detection_rows: np.ndarray) -> COCO:
    """pycocotools' ``loadRes`` of the detection array; an empty result set when there is no detection."""
    if len(detection_rows):
        return faux_coco.loadRes(detection_rows)
    results = COCO()
    results.dataset = {"images": list(faux_coco.dataset["images"]),
                       "categories": list(faux_coco.dataset["categories"]), "annotations": []}
    results.createIndex()
    return results
