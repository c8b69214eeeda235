"""One call that evaluates a split's predictions: like SGB's ``do_vg_evaluation``
(docs/reference.md#sgb-evaluation-protocol), or like
PySGG's ``oi_evaluation`` for Open Images (docs/reference.md#oi-evaluation-protocol);
a dataset family's protocol (``protocols.EvaluationProtocol``) picks which."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ._arrays import to_numpy
from .detection import compute_detection_map
from .oi import OIEvaluator
from .oi_report import format_oi_report
from .report import format_sgb_report
from .sgg import SGGEvaluator

__all__ = ["evaluate_predictions", "evaluate_oi_predictions", "detection_inputs"]


def evaluate_predictions(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                         mode: str, predicate_names: Sequence[str], class_names: Sequence[str] | None = None,
                         image_ids: Sequence[int] | None = None, zeroshot_triplets: Any = None,
                         predicate_counts: Any = None, iou_threshold: float = 0.5,
                         recall_ks: Sequence[int] = (20, 50, 100), with_detection: bool = True) -> dict:
    """Detector mAP and scene-graph metrics of one split, plus SGB's text report.

    groundtruths[i]: {"boxes" (n, 4) original-frame xyxy, "labels" (n,), "relations" (m, 3)} (SGB's
        ``get_groundtruth(i, evaluation=True)`` with "relation_tuple" as "relations").
    predictions[i]: full or compact predictions of the same image, in the original frame.
    image_ids: dataset indices (aggregation order), default 0..N-1.
    Returns {"sgg": SGGEvaluator.summarize() dict, "detection": compute_detection_map dict or None,
    "report": the text block}.
    """
    evaluator = SGGEvaluator(mode, num_predicates=len(predicate_names), predicate_names=predicate_names,
                             zeroshot_triplets=zeroshot_triplets, iou_threshold=iou_threshold,
                             recall_ks=recall_ks, predicate_counts=predicate_counts)
    results, detection = _evaluate_split(evaluator, groundtruths, predictions, mode, class_names, image_ids,
                                         with_detection, "evaluate_predictions")
    report = format_sgb_report(results, mode, predicate_names,
                               detection_map=detection["mAP"] if detection is not None else None)
    return {"sgg": results, "detection": detection, "report": report}


def evaluate_oi_predictions(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                            mode: str, predicate_names: Sequence[str], class_names: Sequence[str] | None = None,
                            image_ids: Sequence[int] | None = None, iou_threshold: float = 0.5,
                            with_detection: bool = True) -> dict:
    """Detector mAP and PySGG's Open Images V6 relation metrics of one split, plus PySGG's text report.

    groundtruths[i]: {"boxes" (n, 4) original-frame xyxy, "labels" (n,), "relations" (m, 3)}
        (``get_groundtruth(i, evaluation=True)`` with "relation_tuple" as "relations": all relations kept).
    predictions[i]: full predictions or the OI compact form (:func:`compact_oi_prediction`) of the same
        image, in the original frame. image_ids: dataset indices, default 0..N-1.
    Returns {"protocol": "oi", "oi": OIEvaluator.summarize() dict, "detection": compute_detection_map dict
    or None, "report": the text block}.
    """
    evaluator = OIEvaluator(num_predicates=len(predicate_names), predicate_names=predicate_names,
                            iou_threshold=iou_threshold, mode=mode)
    results, detection = _evaluate_split(evaluator, groundtruths, predictions, mode, class_names, image_ids,
                                         with_detection, "evaluate_oi_predictions")
    report = format_oi_report(results, predicate_names,
                              detection_map=detection["mAP"] if detection is not None else None)
    return {"protocol": "oi", "oi": results, "detection": detection, "report": report}


def _evaluate_split(evaluator: SGGEvaluator | OIEvaluator, groundtruths: Sequence[Mapping[str, Any]],
                    predictions: Sequence[Mapping[str, Any]], mode: str, class_names: Sequence[str] | None,
                    image_ids: Sequence[int] | None, with_detection: bool, caller: str) -> tuple[dict, dict | None]:
    """Feed every image to ``evaluator``; (its summary, the detector mAP dict or None)."""
    if len(groundtruths) != len(predictions):
        raise ValueError(f"{caller}: {len(groundtruths)} groundtruths but {len(predictions)} predictions")
    image_ids = list(range(len(predictions))) if image_ids is None else [int(i) for i in image_ids]
    for image_id, groundtruth, prediction in zip(image_ids, groundtruths, predictions):
        evaluator.add(groundtruth, prediction, image_id=image_id)
    detection = None
    if with_detection:
        detection = compute_detection_map(groundtruths, detection_inputs(groundtruths, predictions, mode),
                                          num_classes=len(class_names) if class_names is not None else None,
                                          class_names=class_names)
    return evaluator.summarize(), detection


def detection_inputs(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                     mode: str) -> list[dict]:
    """The detections SGB scores for mAP: in PredCls the GT labels with score 1 on the predicted boxes
    (the GT boxes when the prediction stores none); otherwise the predicted boxes, labels and scores."""
    detections = []
    for groundtruth, prediction in zip(groundtruths, predictions):
        if mode == "predcls":
            labels = to_numpy(groundtruth["labels"])
            has_boxes = "boxes" in prediction and len(prediction["boxes"]) == len(labels)
            detections.append({"boxes": prediction["boxes"] if has_boxes else groundtruth["boxes"],
                               "labels": labels, "scores": np.ones(len(labels))})
        else:
            detections.append({key: prediction[key] for key in ("boxes", "labels", "scores")})
    return detections
