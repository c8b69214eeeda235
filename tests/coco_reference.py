"""Detector mAP through pycocotools itself, as SGB's ``vg_eval.py`` calls it: the reference that
``rebalance_hca.evaluation.compute_detection_map`` must reproduce to the bit (tests only)."""
from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def pycocotools_detection_stats(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                                num_classes: int | None = None) -> list[float]:
    """The 12 ``COCOeval.stats`` of SGB's faux COCO: GT bbox [x1, y1, x2-x1+1, y2-y1+1] in float32 boxes,
    area (x2-x1+1)(y2-y1+1), annotation ids 0, 1, ..., image ids 0..N-1; detections as an (D, 7) array
    [image, x, y, w, h, score, label] with the same +1 in float32. numpy inputs."""
    annotations, rows, max_label = [], [], 0
    for image_id, (groundtruth, prediction) in enumerate(zip(groundtruths, predictions)):
        gt_boxes = np.asarray(groundtruth["boxes"], dtype=np.float32).reshape(-1, 4).astype(np.float64)
        gt_labels = np.asarray(groundtruth["labels"], dtype=np.int64)
        widths, heights = gt_boxes[:, 2] - gt_boxes[:, 0] + 1, gt_boxes[:, 3] - gt_boxes[:, 1] + 1
        for box, width, height, label in zip(gt_boxes.tolist(), widths.tolist(), heights.tolist(),
                                             gt_labels.tolist()):
            annotations.append({"area": height * width, "bbox": [box[0], box[1], width, height],
                                "category_id": label, "id": len(annotations), "image_id": image_id, "iscrowd": 0})
        boxes = np.asarray(prediction["boxes"], dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(prediction["labels"], dtype=np.int64)
        scores = np.asarray(prediction["scores"])
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2] + np.float32(1)], axis=1)
        rows.append(np.column_stack((np.full(len(boxes), image_id, dtype=np.float64), xywh.astype(np.float64),
                                     scores.astype(np.float64), labels.astype(np.float64))))
        max_label = max(max_label, int(gt_labels.max(initial=0)), int(labels.max(initial=0)))
    detections = np.concatenate(rows) if rows else np.zeros((0, 7))
    num_classes = max_label + 1 if num_classes is None else num_classes
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = {"images": [{"id": i} for i in range(len(groundtruths))], "annotations": annotations,
                                "categories": [{"supercategory": "object", "id": label, "name": str(label)}
                                               for label in range(1, num_classes)]}
        ground_truth.createIndex()
        if len(detections):
            results = ground_truth.loadRes(detections)
        else:
            results = COCO()
            results.dataset = {"images": list(ground_truth.dataset["images"]),
                               "categories": list(ground_truth.dataset["categories"]), "annotations": []}
            results.createIndex()
        evaluation = COCOeval(ground_truth, results, "bbox")
        evaluation.params.imgIds = list(range(len(groundtruths)))
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(value) for value in evaluation.stats]
