"""Detector mAP exactly as SGB's ``vg_eval.py`` computes it with pycocotools (docs/reference.md#detection-map), one image at a time.

SGB builds a faux COCO ground truth with the +1 pixel box convention: bbox = [x1, y1, x2 - x1 + 1,
y2 - y1 + 1], area = (x2 - x1 + 1)(y2 - y1 + 1), annotation ids 0, 1, ... and image ids 0..N-1, one
category per foreground class; detections are converted to xywh with the same +1 in float32 (SGB's
``BoxList.convert``) and passed to pycocotools' ``COCOeval`` ("bbox"). The reported "mAP" is
``COCOeval.stats[1]``, AP at IoU 0.50, not AP@[.5:.95].

:class:`DetectionAccumulator` computes the same numbers without pycocotools' per-detection dictionaries and
per-(image, category, area) records, which grow to tens of GB on VG's SGDet test split (80 detections on
each of 26k images): ``add`` matches one image's detections at once (pycocotools' ``evaluateImg`` rules,
vectorised over the IoU thresholds and area ranges) and keeps, per detection, its score, its rank and
whether it is a true positive, a false positive or ignored in each setting; ``summarize`` is
pycocotools' ``accumulate`` and ``summarize``. Same float64 arithmetic, same stable sorts, so the 12 stats
are pycocotools' to the bit (tests/test_eval_detection.py compares them on random inputs).

Quirk kept from SGB: pycocotools records a detection's match by the matched GT annotation's id and
treats id 0 as "unmatched", so the very first GT box of the split never counts as a true positive.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ._arrays import check_length, get_array

__all__ = ["DetectionAccumulator", "compute_detection_map"]

# pycocotools' default ``Params`` for "bbox".
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = np.array([[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]])
AREA_NAMES = ("all", "small", "medium", "large")

_FALSE_POSITIVE, _TRUE_POSITIVE, _IGNORED = 0, 1, 2


class DetectionAccumulator:
    """COCO box AP (pycocotools' ``COCOeval`` "bbox" numbers) of detections fed one image at a time.

    Images are numbered 0, 1, ... in the order of ``add`` (pycocotools' image ids) and GT boxes get the
    annotation ids 0, 1, ... in that order. Memory: per detection kept (the 100 best per image and class)
    its class, score, image, rank and 40 outcome bytes (61 bytes); per GT box its class and area flags.
    """

    def __init__(self) -> None:
        self.num_images = 0
        self._num_gt_boxes = 0
        self._max_label = 0
        self._gt_labels: list[np.ndarray] = []
        self._gt_inside: list[np.ndarray] = []       # (n, A) bool: area within each range
        self._labels: list[np.ndarray] = []
        self._images: list[np.ndarray] = []
        self._ranks: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._outcomes: list[np.ndarray] = []        # (d, A, T) uint8

    def add(self, groundtruth: Mapping[str, Any], prediction: Mapping[str, Any]) -> None:
        """Add one image.

        groundtruth: {"boxes": (n, 4) xyxy, "labels": (n,) int in 1..C}; prediction: {"boxes": (k, 4) xyxy,
        "labels": (k,) int, "scores": (k,) float}; numpy or torch. Raises ValueError naming the image.
        """
        image = self.num_images
        gt_where, pred_where = f"groundtruth of image {image}", f"prediction of image {image}"
        gt_boxes = get_array(groundtruth, "boxes", gt_where, 2, 4).astype(np.float32).astype(np.float64)
        gt_labels = get_array(groundtruth, "labels", gt_where, 1, integer=True)
        check_length(gt_labels, len(gt_boxes), "labels", "boxes", gt_where)
        boxes = get_array(prediction, "boxes", pred_where, 2, 4).astype(np.float32)
        labels = get_array(prediction, "labels", pred_where, 1, integer=True)
        scores = get_array(prediction, "scores", pred_where, 1)
        check_length(labels, len(boxes), "labels", "boxes", pred_where)
        check_length(scores, len(boxes), "scores", "boxes", pred_where)

        gt_xywh = np.concatenate([gt_boxes[:, :2], gt_boxes[:, 2:] - gt_boxes[:, :2] + 1], axis=1)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2] + np.float32(1)], axis=1).astype(np.float64)
        gt_inside = _inside_area_ranges(gt_xywh[:, 3] * gt_xywh[:, 2])
        kept, ranks = _best_per_class(labels, scores.astype(np.float64))
        id_zero = np.zeros(len(gt_labels), dtype=bool)
        id_zero[:1] = self._num_gt_boxes == 0
        outcomes = _match(gt_xywh, gt_labels, gt_inside, id_zero, xywh[kept], labels[kept], ranks)

        self._gt_labels.append(gt_labels)
        self._gt_inside.append(gt_inside)
        self._labels.append(labels[kept])
        self._images.append(np.full(len(kept), image, dtype=np.int32))
        self._ranks.append(ranks.astype(np.int8))       # < MAX_DETECTIONS[-1]
        self._scores.append(scores.astype(np.float64)[kept])
        self._outcomes.append(outcomes)
        self._num_gt_boxes += len(gt_labels)
        self._max_label = max(self._max_label, int(gt_labels.max(initial=0)), int(labels.max(initial=0)))
        self.num_images += 1

    def summarize(self, num_classes: int | None = None, class_names: Sequence[str] | None = None,
                  verbose: bool = False) -> dict:
        """{"mAP": AP@0.5 (``COCOeval.stats[1]``), "coco_stats": the 12 ``COCOeval.stats`` floats}.

        num_classes: including background (151 for VG150); categories are 1..num_classes-1, other labels are
        not evaluated. None infers it from the largest label seen. class_names: checked to cover them.
        verbose: print pycocotools' 12 summary lines. A stat with no ground truth to measure is -1.
        """
        if num_classes is None:
            num_classes = self._max_label + 1
        if class_names is not None and len(class_names) < num_classes:
            raise ValueError(f"compute_detection_map: class_names has {len(class_names)} names, "
                             f"num_classes is {num_classes}")
        precision, recall = self._precision_and_recall(num_classes)
        stats = _coco_stats(precision, recall, verbose)
        return {"mAP": stats[1], "coco_stats": stats}

    def _precision_and_recall(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """pycocotools' ``accumulate``: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where a class
        has no GT box in the area range."""
        num_thresholds, num_areas = len(IOU_THRESHOLDS), len(AREA_RANGES)
        num_categories = max(num_classes - 1, 0)
        shape = (num_thresholds, len(RECALL_THRESHOLDS), num_categories, num_areas, len(MAX_DETECTIONS))
        precision, recall = -np.ones(shape), -np.ones((num_thresholds, num_categories, num_areas, len(MAX_DETECTIONS)))
        gt_labels = _concatenate(self._gt_labels, np.zeros(0, dtype=np.int64))
        gt_inside = _concatenate(self._gt_inside, np.zeros((0, num_areas), dtype=bool))
        in_range = (gt_labels >= 1) & (gt_labels < num_classes)
        gt_counts = np.zeros((num_categories + 1, num_areas), dtype=np.int64)
        np.add.at(gt_counts, gt_labels[in_range], gt_inside[in_range])

        labels, images, ranks = (_concatenate(parts, np.zeros(0, dtype=np.int64))
                                 for parts in (self._labels, self._images, self._ranks))
        scores = _concatenate(self._scores, np.zeros(0))
        outcomes = _concatenate(self._outcomes, np.zeros((0, num_areas, num_thresholds), dtype=np.uint8))
        order = np.lexsort((ranks, images, labels))          # per class, images in order, each by rank
        bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
        for category in range(1, num_classes):
            members = order[bounds[category]:bounds[category + 1]]
            for area in range(num_areas):
                num_gt = int(gt_counts[category, area])
                if num_gt == 0:
                    continue
                for max_index, max_detections in enumerate(MAX_DETECTIONS):
                    chosen = members[ranks[members] < max_detections]
                    by_score = chosen[np.argsort(-scores[chosen], kind="mergesort")]
                    settings = outcomes[by_score, area, :].T                    # (T, n)
                    true_positives = np.cumsum(settings == _TRUE_POSITIVE, axis=1).astype(dtype=float)
                    false_positives = np.cumsum(settings == _FALSE_POSITIVE, axis=1).astype(dtype=float)
                    recalls = true_positives / num_gt
                    precisions = true_positives / (false_positives + true_positives + np.spacing(1))
                    # pycocotools makes precision non-increasing from the right, then reads it at the
                    # first rank reaching each recall threshold (0 where none does)
                    precisions = np.maximum.accumulate(precisions[:, ::-1], axis=1)[:, ::-1]
                    num_detections = len(by_score)
                    for threshold in range(num_thresholds):
                        recall[threshold, category - 1, area, max_index] = \
                            recalls[threshold, -1] if num_detections else 0
                        positions = np.searchsorted(recalls[threshold], RECALL_THRESHOLDS, side="left")
                        reached = positions < num_detections
                        interpolated = np.zeros(len(RECALL_THRESHOLDS))
                        interpolated[reached] = precisions[threshold, positions[reached]]
                        precision[threshold, :, category - 1, area, max_index] = interpolated
        return precision, recall


def compute_detection_map(groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                          num_classes: int | None = None, class_names: Sequence[str] | None = None,
                          verbose: bool = False) -> dict:
    """COCO-style box AP of per-image detections against per-image ground truth (pycocotools' numbers).

    groundtruths[i]: {"boxes": (n, 4) xyxy, "labels": (n,) int in 1..C}.
    predictions[i]: {"boxes": (k, 4) xyxy, "labels": (k,) int, "scores": (k,) float}; numpy or torch.
    num_classes: number of classes including background (151 for VG150); categories are 1..num_classes-1.
        None infers it from the largest label seen (categories without GT never enter the COCO means).
    class_names: optional names, index 0 = background.
    verbose: print pycocotools' summary table.

    Returns {"mAP": AP@0.5 (float), "coco_stats": the 12 ``COCOeval.stats`` floats}. A stat with no
    ground truth to measure is -1, as in pycocotools.
    """
    if len(groundtruths) != len(predictions):
        raise ValueError(f"compute_detection_map: {len(groundtruths)} groundtruths but {len(predictions)} predictions")
    accumulator = DetectionAccumulator()
    for groundtruth, prediction in zip(groundtruths, predictions):
        accumulator.add(groundtruth, prediction)
    return accumulator.summarize(num_classes, class_names, verbose)


def _concatenate(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    """The per-image ``parts`` as one array (``empty`` when none); ``parts`` then holds only that array, so
    that the per-image arrays are freed."""
    whole = np.concatenate(parts) if parts else empty
    parts[:] = [whole]
    return whole


def _inside_area_ranges(areas: np.ndarray) -> np.ndarray:
    """(n,) areas -> (n, A) bool: within each of pycocotools' area ranges, bounds included."""
    return (areas[:, None] >= AREA_RANGES[:, 0]) & (areas[:, None] <= AREA_RANGES[:, 1])


def _best_per_class(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The detections pycocotools evaluates: per class, the MAX_DETECTIONS[-1] best by score (stable on
    ties). -> (indices (d,) grouped by class, each group by score; ranks (d,) within the class)."""
    order = np.argsort(-scores, kind="mergesort")
    order = order[np.argsort(labels[order], kind="stable")]
    ranks = np.arange(len(order)) - np.searchsorted(labels[order], labels[order], side="left")
    kept = ranks < MAX_DETECTIONS[-1]
    return order[kept], ranks[kept]


def _box_iou(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` of xywh boxes (non-crowd), float64 in its operation order. (d, 4), (g, 4) -> (d, g)."""
    d, g = boxes[:, None, :], gt_boxes[None, :, :]
    width = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    height = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    intersection = width * height
    union = d[..., 2] * d[..., 3] + g[..., 2] * g[..., 3] - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((width > 0) & (height > 0), intersection / union, 0.0)


def _match(gt_xywh: np.ndarray, gt_labels: np.ndarray, gt_inside: np.ndarray, gt_id_zero: np.ndarray,
           xywh: np.ndarray, labels: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """pycocotools' ``evaluateImg`` for every class, area range and IoU threshold of one image.

    gt_*: (g, ...) GT boxes (xywh), labels, (g, A) area flags, whether each has annotation id 0; xywh, labels,
    ranks: (d, ...) the detections kept, ranks by score within their class. Each detection takes, in score
    order within its class, the unmatched GT box of its class with the highest IoU >= the threshold (the
    last one on ties), preferring boxes inside the area range. Returns (d, A, T) uint8: _TRUE_POSITIVE,
    _FALSE_POSITIVE or _IGNORED (matched to a GT box outside the range, or unmatched and itself outside).
    """
    num_areas, num_thresholds = len(AREA_RANGES), len(IOU_THRESHOLDS)
    matched_id = np.zeros((num_areas, num_thresholds, len(labels)), dtype=bool)   # matched, GT id != 0
    ignored = np.zeros((num_areas, num_thresholds, len(labels)), dtype=bool)
    same_class = labels[:, None] == gt_labels[None, :]
    with_candidates = same_class.any(axis=1)
    if with_candidates.any():
        ious = np.where(same_class, _box_iou(xywh, gt_xywh), -1.0)
        outside = ~gt_inside.T[:, None, None, :]                                      # (A, 1, 1, g)
        taken = np.zeros((num_areas, num_thresholds, len(gt_labels)), dtype=bool)
        for rank in range(int(ranks[with_candidates].max()) + 1):
            active = np.flatnonzero(with_candidates & (ranks == rank))                # one per class
            if not len(active):
                continue
            overlaps = ious[active][None, None]                                        # (1, 1, n, g)
            eligible = (overlaps >= IOU_THRESHOLDS[None, :, None, None]) & ~taken[:, :, None, :]
            inside_choice = _last_best(np.where(eligible & ~outside, overlaps, -1.0))
            outside_choice = _last_best(np.where(eligible & outside, overlaps, -1.0))
            choice = np.where(inside_choice >= 0, inside_choice, outside_choice)       # (A, T, n)
            area, threshold, detection = np.nonzero(choice >= 0)
            gt = choice[area, threshold, detection]
            taken[area, threshold, gt] = True
            matched_id[area, threshold, active[detection]] = ~gt_id_zero[gt]
            ignored[area, threshold, active[detection]] = ~gt_inside[gt, area]
    detection_outside = ~_inside_area_ranges(xywh[:, 2] * xywh[:, 3]).T[:, None, :]     # (A, 1, d)
    ignored |= ~matched_id & detection_outside
    outcomes = np.where(ignored, _IGNORED, np.where(matched_id, _TRUE_POSITIVE, _FALSE_POSITIVE))
    return outcomes.transpose(2, 0, 1).astype(np.uint8)


def _last_best(values: np.ndarray) -> np.ndarray:
    """Index of the last maximum along the last axis, -1 where every value is negative. (..., g) -> (...)."""
    if values.shape[-1] == 0:
        return np.full(values.shape[:-1], -1)
    last = values.shape[-1] - 1 - np.argmax(values[..., ::-1], axis=-1)
    return np.where(values.max(axis=-1) >= 0, last, -1)


def _coco_stats(precision: np.ndarray, recall: np.ndarray, verbose: bool) -> list[float]:
    """pycocotools' ``summarize`` for "bbox": the 12 stats (AP@[.5:.95], AP@.5, AP@.75, AP small/medium/
    large, AR@1/10/100, AR small/medium/large), each the mean over the entries > -1 (-1 when none)."""
    settings = [(1, None, "all", 100), (1, .5, "all", 100), (1, .75, "all", 100), (1, None, "small", 100),
                (1, None, "medium", 100), (1, None, "large", 100), (0, None, "all", 1), (0, None, "all", 10),
                (0, None, "all", 100), (0, None, "small", 100), (0, None, "medium", 100), (0, None, "large", 100)]
    stats = []
    for average_precision, iou_threshold, area_name, max_detections in settings:
        area_index = [AREA_NAMES.index(area_name)]
        max_index = [MAX_DETECTIONS.index(max_detections)]
        values = precision if average_precision else recall
        if iou_threshold is not None:
            values = values[np.where(iou_threshold == IOU_THRESHOLDS)[0]]
        values = values[:, :, :, area_index, max_index] if average_precision else values[:, :, area_index, max_index]
        mean = float(np.mean(values[values > -1])) if len(values[values > -1]) else -1.0
        stats.append(mean)
        if verbose:
            iou_text = (f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}" if iou_threshold is None
                        else f"{iou_threshold:0.2f}")
            title = "Average Precision" if average_precision else "Average Recall"
            kind = "(AP)" if average_precision else "(AR)"
            print(f" {title:<18} {kind} @[ IoU={iou_text:<9} | area={area_name:>6s} | maxDets={max_detections:>3d} ] "
                  f"= {mean:0.3f}")
    return stats
