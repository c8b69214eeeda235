"""Detector inference over a test loader, gathered across ranks, and its mAP@0.5 (docs/reference.md#detection-map).

Predictions are rescaled from the loader's resized frame back to the original image size
(``dataset.get_img_info``) and scored against ``dataset.get_groundtruth(i, evaluation=True)`` with
``rebalance_hca.evaluation.compute_detection_map`` (SGB's faux-COCO evaluation, "mAP" = AP at IoU 0.5).
"""
from __future__ import annotations

import json
import logging
import os

import torch
from torch import nn
from tqdm import tqdm

from ..evaluation import compute_detection_map
from ..modeling.weights import unwrap_model
from ..structures.boxes import scale_xyxy
from ..utils.atomic import atomic_write
from ..utils.comm import all_gather, broadcast_object, is_main_process
from .batch_invariance import predict_batch

logger = logging.getLogger(__name__)


def rescale_boxes(boxes: torch.Tensor, from_size: tuple[int, int], to_width: int, to_height: int) -> torch.Tensor:
    """boxes (N, 4) xyxy in an image of ``from_size`` (h, w) -> the same boxes in a (to_width, to_height) image."""
    from_height, from_width = from_size
    return scale_xyxy(boxes, to_width / from_width, to_height / from_height)


@torch.no_grad()
def run_detector_inference(model: nn.Module, data_loader, device: torch.device,
                           amp_dtype: torch.dtype | None = None,
                           batch_invariant: bool = True) -> dict[int, dict[str, torch.Tensor]]:
    """Detections of every image of ``data_loader.dataset``, keyed by dataset index, on every rank.

    Each value: {"boxes": (N, 4) float32 xyxy in the ORIGINAL image frame, "labels": (N,) int64,
    "scores": (N,) float32}, on the CPU. The model is put in eval mode. batch_invariant
    (TEST.BATCH_INVARIANT): the detector sees one image at a time (``predict_batch``).
    """
    detector = unwrap_model(model)
    detector.eval()
    dataset = data_loader.dataset
    size_divisible = data_loader.collate_fn.size_divisible
    predictions: dict[int, dict[str, torch.Tensor]] = {}
    for images, _, indices in tqdm(data_loader, desc="detector inference", disable=not is_main_process()):
        images = images.to(device)
        with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            detections = predict_batch(detector, images, None, batch_invariant, size_divisible)
        for index, image_detections, size in zip(indices, detections, images.image_sizes):
            info = dataset.get_img_info(index)
            predictions[int(index)] = {
                "boxes": rescale_boxes(image_detections.boxes.float().cpu(), size, info["width"], info["height"]),
                "labels": image_detections.labels.cpu(),
                "scores": image_detections.scores.float().cpu(),
            }
    merged: dict[int, dict[str, torch.Tensor]] = {}
    for part in all_gather(predictions):
        merged.update(part)
    return merged


def evaluate_detections(dataset, predictions: dict[int, dict[str, torch.Tensor]]) -> dict:
    """{"mAP": AP@0.5, "coco_stats": [...]} of ``predictions`` (from run_detector_inference) on ``dataset``."""
    missing = sorted(set(range(len(dataset))) - set(predictions))
    if missing:
        raise ValueError(f"predictions lack {len(missing)} image(s) of the dataset, e.g. indices {missing[:5]}")
    order = range(len(dataset))
    groundtruths = []
    for index in order:
        groundtruth = dataset.get_groundtruth(index, evaluation=True)
        groundtruths.append({"boxes": groundtruth["boxes"], "labels": groundtruth["labels"]})
    return compute_detection_map(groundtruths, [predictions[index] for index in order],
                                 num_classes=len(dataset.ind_to_classes), class_names=dataset.ind_to_classes)


def inference_and_map(model: nn.Module, data_loader, device: torch.device, amp_dtype: torch.dtype | None = None,
                      output_folder: str = "", batch_invariant: bool = True) -> float:
    """Run inference (``run_detector_inference``), compute the mAP on rank 0 (written to
    ``output_folder/detection_map.json`` when given) and return mAP@0.5 on every rank."""
    predictions = run_detector_inference(model, data_loader, device, amp_dtype, batch_invariant)
    result = None
    if is_main_process():
        result = evaluate_detections(data_loader.dataset, predictions)
        logger.info("Detection mAP@0.5: %.4f (COCO AP@[.5:.95] %.4f) on %d images", result["mAP"],
                    result["coco_stats"][0], len(predictions))
        if output_folder:
            with atomic_write(os.path.join(output_folder, "detection_map.json"), binary=False) as stream:
                json.dump(result, stream, indent=2)
    return broadcast_object(result)["mAP"]
