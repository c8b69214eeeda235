"""One call that evaluates a split's predictions: like SGB's ``do_vg_evaluation``
(docs/reference.md#sgb-evaluation-protocol), or like
PySGG's ``oi_evaluation`` for Open Images (docs/reference.md#oi-evaluation-protocol);
a dataset family's protocol (``protocols.EvaluationProtocol``) picks which."""
from __future__ import annotations

import itertools
from collections.abc import Sized
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ._arrays import to_numpy
from .detection import DetectionAccumulator
from .oi import OIEvaluator
from .oi_report import format_oi_report
from .report import format_sgb_report
from .sgg import SGGEvaluator

__all__ = ["evaluate_predictions", "evaluate_oi_predictions", "detection_input"]

_MISSING = object()


def evaluate_predictions(groundtruths: Iterable[Mapping[str, Any]], predictions: Iterable[Mapping[str, Any]],
                         mode: str, predicate_names: Sequence[str], class_names: Sequence[str] | None = None,
                         image_ids: Iterable[int] | None = None, zeroshot_triplets: Any = None,
                         predicate_counts: Any = None, iou_threshold: float = 0.5,
                         recall_ks: Sequence[int] = (20, 50, 100), with_detection: bool = True) -> dict:
    """Detector mAP and scene-graph metrics of one split, plus SGB's text report.

    groundtruths[i]: {"boxes" (n, 4) original-frame xyxy, "labels" (n,), "relations" (m, 3)} (SGB's
        ``get_groundtruth(i, evaluation=True)`` with "relation_tuple" as "relations").
    predictions[i]: full or compact predictions of the same image, in the original frame.
    image_ids: dataset indices (aggregation order), default 0..N-1.
    The three may be iterators (e.g. generators reading a predictions file): images are evaluated one at a
    time and not kept, so a split need not be held in memory.
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


def evaluate_oi_predictions(groundtruths: Iterable[Mapping[str, Any]], predictions: Iterable[Mapping[str, Any]],
                            mode: str, predicate_names: Sequence[str], class_names: Sequence[str] | None = None,
                            image_ids: Iterable[int] | None = None, iou_threshold: float = 0.5,
                            with_detection: bool = True) -> dict:
    """Detector mAP and PySGG's Open Images V6 relation metrics of one split, plus PySGG's text report.

    groundtruths[i]: {"boxes" (n, 4) original-frame xyxy, "labels" (n,), "relations" (m, 3)}
        (``get_groundtruth(i, evaluation=True)`` with "relation_tuple" as "relations": all relations kept).
    predictions[i]: full predictions or the OI compact form (:func:`compact_oi_prediction`) of the same
        image, in the original frame. image_ids: dataset indices, default 0..N-1. The three may be iterators,
        evaluated one image at a time (see :func:`evaluate_predictions`).
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


def _evaluate_split(evaluator: SGGEvaluator | OIEvaluator, groundtruths: Iterable[Mapping[str, Any]],
                    predictions: Iterable[Mapping[str, Any]], mode: str, class_names: Sequence[str] | None,
                    image_ids: Iterable[int] | None, with_detection: bool, caller: str) -> tuple[dict, dict | None]:
    """Feed every image to ``evaluator`` (and to the detector mAP), one at a time; (its summary, the
    detector mAP dict or None)."""
    detections = DetectionAccumulator() if with_detection else None
    for image_id, groundtruth, prediction in _paired(groundtruths, predictions, image_ids, caller):
        evaluator.add(groundtruth, prediction, image_id=image_id)
        if detections is not None:
            detections.add(groundtruth, detection_input(groundtruth, prediction, mode))
    detection = None
    if detections is not None:
        detection = detections.summarize(num_classes=len(class_names) if class_names is not None else None,
                                         class_names=class_names)
    return evaluator.summarize(), detection


def _paired(groundtruths: Iterable[Mapping[str, Any]], predictions: Iterable[Mapping[str, Any]],
            image_ids: Iterable[int] | None, caller: str) -> Iterator[tuple[int, Mapping[str, Any], Mapping[str, Any]]]:
    """(image id, groundtruth, prediction) per image; ValueError when the two inputs differ in length."""
    if isinstance(groundtruths, Sized) and isinstance(predictions, Sized) and len(groundtruths) != len(predictions):
        raise ValueError(f"{caller}: {len(groundtruths)} groundtruths but {len(predictions)} predictions")
    ids = itertools.count() if image_ids is None else iter(image_ids)
    for groundtruth, prediction in itertools.zip_longest(groundtruths, predictions, fillvalue=_MISSING):
        if groundtruth is _MISSING or prediction is _MISSING:
            raise ValueError(f"{caller}: the groundtruths and the predictions differ in number")
        yield int(next(ids)), groundtruth, prediction


def detection_input(groundtruth: Mapping[str, Any], prediction: Mapping[str, Any], mode: str) -> dict:
    """The detections SGB scores for mAP in one image: in PredCls the GT labels with score 1 on the predicted
    boxes (the GT boxes when the prediction stores none); otherwise the predicted boxes, labels and scores."""
    if mode == "predcls":
        labels = to_numpy(groundtruth["labels"])
        has_boxes = "boxes" in prediction and len(prediction["boxes"]) == len(labels)
        return {"boxes": prediction["boxes"] if has_boxes else groundtruth["boxes"], "labels": labels,
                "scores": np.ones(len(labels))}
    return {key: prediction[key] for key in ("boxes", "labels", "scores")}
