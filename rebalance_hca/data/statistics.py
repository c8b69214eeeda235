"""Frequency-bias statistics (docs/reference.md#frequency-statistics, #oi-frequency-statistics):
fg_matrix, bg_matrix and pred_dist, counted vectorized over a family's train split (``count_statistics``;
which split and which boxes is the family's choice: ``vg/statistics.py``, ``oi/statistics.py``), and cached
on disk keyed to the source files (``cached_statistics``).

``pred_dist`` is stored as log-probabilities for both datasets, the form ``FrequencyBias`` takes. PySGG's and
RB's Open Images code stores the probabilities without the log (PySGG's own FrequencyBias takes the log; RB's,
SGB's, does not, so RB initialises its Open Images bias with probabilities + 1e-3,
docs/reference.md#rb-on-open-images)."""
from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..structures.boxes import coordinates_positive_intersection
from ..utils.atomic import write_cache
from .files import file_fingerprint
from .split_index import SplitIndex

logger = logging.getLogger(__name__)
CACHE_FORMAT_VERSION = 1
# Upper bound on ordered box pairs materialised at once while counting bg_matrix (memory bound).
PAIRS_PER_CHUNK = 500_000


@dataclass(frozen=True)
class FrequencyStatistics:
    """C object classes and P predicates, background included.

    fg_matrix: (C, C, P) int64 — relation counts per (subject class, object class, predicate), with
        fg_matrix[:, :, 0] = bg_matrix (as SGB returns it).
    bg_matrix: (C, C) int64 — overlapping-pair counts + 1.
    pred_dist: (C, C, P) float32 — log(fg / fg.sum(-1) + 1e-3), the FrequencyBias initialisation.
    """

    fg_matrix: np.ndarray
    bg_matrix: np.ndarray
    pred_dist: np.ndarray


def count_statistics(labels: np.ndarray, boxes: np.ndarray, index: SplitIndex, num_classes: int,
                     num_predicates: int) -> FrequencyStatistics:
    """Count fg/bg over the images of ``index`` exactly as SGB's ``get_VG_statistics(must_overlap=True)``.

    labels: (N_all,) int64 and boxes: (N_all, 4) xyxy, the flat object arrays ``index.box_start`` points into
    (VG150: the 1024 frame; Open Images: original pixels).
    """
    relations = index.relations
    image_of_rel = np.repeat(np.arange(len(index.image_rows)), np.diff(index.rel_offsets))
    first_row = index.box_start[image_of_rel]
    subject_class = labels[first_row + relations[:, 0]]
    object_class = labels[first_row + relations[:, 1]]
    fg_flat = (subject_class * num_classes + object_class) * num_predicates + relations[:, 2]
    fg_matrix = np.bincount(fg_flat, minlength=num_classes * num_classes * num_predicates)
    fg_matrix = fg_matrix.reshape(num_classes, num_classes, num_predicates).astype(np.int64, copy=False)

    bg_matrix = _count_background_pairs(labels, boxes, index.box_start, index.box_count, num_classes)
    bg_matrix = bg_matrix.reshape(num_classes, num_classes) + 1
    fg_matrix[:, :, 0] = bg_matrix
    return FrequencyStatistics(fg_matrix, bg_matrix, log_frequencies(fg_matrix))


def log_frequencies(fg_matrix: np.ndarray) -> np.ndarray:
    """pred_dist = log(fg / fg.sum(-1) + 1e-3) as float32, computed in float64 (SGB's order of operations).
    Only the nonzero counts are divided (their row sums are positive); every zero count gives the same
    log(0 + 1e-3), computed once by the same ufuncs. fg_matrix: (C, C, P) int64 -> (C, C, P) float32."""
    totals = fg_matrix.sum(2)
    counted = np.flatnonzero(fg_matrix)
    zero_count = np.log(np.zeros(1) + 1e-3).astype(np.float32)[0]
    pred_dist = np.full(fg_matrix.shape, zero_count, dtype=np.float32)
    frequencies = np.divide(fg_matrix.reshape(-1)[counted], totals.reshape(-1)[counted // fg_matrix.shape[2]])
    pred_dist.reshape(-1)[counted] = np.log(frequencies + 1e-3).astype(np.float32)
    return pred_dist


def _count_background_pairs(labels: np.ndarray, boxes: np.ndarray, box_start: np.ndarray, box_count: np.ndarray,
                            num_classes: int) -> np.ndarray:
    """bg counts: per image, ordered pairs of distinct boxes with positive intersection (no +1); all distinct
    pairs for an image with none. Images with the same box count n are handled together, as (k, n(n-1)/2)
    blocks of their unordered pairs (the intersection is symmetric), at most ~PAIRS_PER_CHUNK ordered pairs per
    block; the counted (first, second) label pairs are added up, then each pair is counted in both orders
    (the matrix plus its transpose). -> (C * C,) int64."""
    unordered = np.zeros(num_classes * num_classes, dtype=np.int64)
    boxes = _exact_float32(boxes)
    for count in np.flatnonzero(np.bincount(box_count, minlength=2)[2:]) + 2:
        images = np.flatnonzero(box_count == count)
        first_box, second_box = np.triu_indices(count, 1)
        images_per_block = max(1, PAIRS_PER_CHUNK // int(count) ** 2)
        for first in range(0, len(images), images_per_block):
            rows = box_start[images[first:first + images_per_block], None] + np.arange(count)  # (k, n)
            coordinates = np.moveaxis(boxes[rows], 2, 0)  # (4, k, n): x1, y1, x2, y2
            overlapping = coordinates_positive_intersection([plane[:, first_box] for plane in coordinates],
                                                            [plane[:, second_box] for plane in coordinates])
            counted = overlapping | ~overlapping.any(axis=1, keepdims=True)  # (k, n(n-1)/2)
            image_labels = labels[rows]
            label_pairs = image_labels[:, first_box] * num_classes + image_labels[:, second_box]
            unordered += np.bincount(label_pairs[counted], minlength=num_classes * num_classes)
    unordered = unordered.reshape(num_classes, num_classes)
    return (unordered + unordered.T).reshape(-1)


def _exact_float32(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) ``boxes`` as float32 (half the memory traffic) when every coordinate is an integer of magnitude
    below 2**24, exact in float32: the intersection test then gives the same booleans, since a difference of
    two such values keeps its sign (and is 0 only when they are equal) under rounding, and a positive width
    (>= 1) times a height keeps the height's sign without overflow or underflow. Other boxes are returned as
    they are."""
    if boxes.dtype.kind != "f" or not len(boxes) or np.abs(boxes).max() >= 2 ** 24 or \
            not np.array_equal(boxes, np.round(boxes)):
        return boxes
    return boxes.astype(np.float32)


def statistics_fingerprint(source_files: dict[str, str], **settings) -> str:
    """What a family's statistics depend on: the identities of its source files (name -> path) and the
    settings that select the train split (e.g. VG150's val carve-out); the cache key."""
    return json.dumps({"version": CACHE_FORMAT_VERSION, **{name: file_fingerprint(path) for name, path in
                                                           source_files.items()}, **settings}, sort_keys=True)


def cached_statistics(cache_file: str | None, fingerprint: str,
                      compute: Callable[[], FrequencyStatistics]) -> FrequencyStatistics:
    """The statistics cached in ``cache_file`` under ``fingerprint`` (``statistics_fingerprint``), else
    ``compute()``, then cached: rewritten atomically (skipped, with one warning, where its folder is
    read-only); an unreadable or stale cache is recomputed, never trusted."""
    if cache_file:
        cached = _read_cache(cache_file, fingerprint)
        if cached is not None:
            return cached
    statistics = compute()
    if cache_file:
        _write_cache(cache_file, fingerprint, statistics)
    return statistics


def _read_cache(cache_file: str, fingerprint: str) -> FrequencyStatistics | None:
    if not os.path.isfile(cache_file):
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as stored:
            if str(stored["fingerprint"]) != fingerprint:
                logger.info("statistics cache %s is stale; recomputing", cache_file)
                return None
            return FrequencyStatistics(stored["fg_matrix"], stored["bg_matrix"], stored["pred_dist"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        logger.warning("statistics cache %s is unreadable (%s); recomputing", cache_file, error)
        return None


def _write_cache(cache_file: str, fingerprint: str, statistics: FrequencyStatistics) -> None:
    write_cache(cache_file, lambda stream: np.savez(
        stream, fingerprint=np.array(fingerprint), fg_matrix=statistics.fg_matrix,
        bg_matrix=statistics.bg_matrix, pred_dist=statistics.pred_dist))
