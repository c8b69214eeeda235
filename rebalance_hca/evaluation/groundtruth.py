"""Checked per-image ground truth for relation evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ._arrays import check_range, check_length, get_array

# SGB identifies an ordered (subject, object) index pair by subject * 1024 + object (``prepare_gtpair``).
# For images with fewer than 1024 objects this is plain pair equality; it is kept so that A@K and the
# confusion matrix select the same pairs as SGB on any input.
PAIR_KEY_BASE = 1024
# Object classes and predicates lie in [0, CLASS_ID_LIMIT), so that a (subject class, object class,
# predicate) triplet packs into one int64 key.
CLASS_ID_LIMIT = 1 << 20


def pair_keys(pairs: np.ndarray) -> np.ndarray:
    """SGB's pair identifiers. pairs: (n, 2) int [subject, object] -> (n,) int64."""
    return pairs[:, 0] * PAIR_KEY_BASE + pairs[:, 1]


def pairs_in_groundtruth(pairs: np.ndarray, relations: np.ndarray) -> np.ndarray:
    """Whether each predicted pair equals some GT relation's (subject, object), by SGB's pair key.

    pairs: (p, 2) int; relations: (m, 3) int -> (p,) bool.
    """
    return (pair_keys(pairs)[:, None] == pair_keys(relations)[None, :]).any(axis=1)


def triplet_keys(subject_classes: np.ndarray, object_classes: np.ndarray, predicates: np.ndarray) -> np.ndarray:
    """One int64 per (subject class, object class, predicate); all three (n,) in [0, CLASS_ID_LIMIT)."""
    return (subject_classes.astype(np.int64) * CLASS_ID_LIMIT + object_classes) * CLASS_ID_LIMIT + predicates


@dataclass(frozen=True)
class GroundTruthImage:
    """One image's evaluation ground truth.

    boxes: (n, 4) float32 xyxy in the original image frame (SGB's BoxList holds float32).
    labels: (n,) int64 object classes.
    relations: (m, 3) int64 [subject_index, object_index, predicate], predicates in 1..num_predicates-1,
        duplicates and several predicates per pair allowed (SGB does not de-duplicate test GT).
    """

    boxes: np.ndarray
    labels: np.ndarray
    relations: np.ndarray


def prepare_groundtruth(groundtruth: Mapping[str, Any], num_predicates: int, where: str) -> GroundTruthImage:
    """Validate one image's ground truth {"boxes", "labels", "relations"} (numpy or torch).

    Raises ValueError naming ``where`` (e.g. "groundtruth of image 7") and the field on bad shapes,
    non-integer labels or indices, labels outside [0, CLASS_ID_LIMIT), object indices outside [0, n) or
    predicates outside [1, num_predicates).
    """
    boxes = get_array(groundtruth, "boxes", where, 2, 4).astype(np.float32, copy=False)
    labels = get_array(groundtruth, "labels", where, 1, integer=True)
    check_length(labels, len(boxes), "labels", "boxes", where)
    relations = get_array(groundtruth, "relations", where, 2, 3, integer=True)
    check_range(labels, 0, CLASS_ID_LIMIT, "labels", where)
    check_range(relations[:, :2], 0, len(boxes), "relations", where)
    check_range(relations[:, 2], 1, num_predicates, "relations", where)
    return GroundTruthImage(boxes=boxes, labels=labels, relations=relations)
