"""What every family's split is: a ``SplitIndex`` of images and surviving relations over flat object arrays,
built with ``filtered_split``, and stage-2 rebalancing (``RebalanceSpec``, ``rebalance_keep``).

Each family selects its split its own way (VG150: ``vg.index.select_split``; Open Images V6:
``oi.dataset.select_oi_split``) and hands the result to ``filtered_split``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RebalanceSpec:
    """Stage-2 rebalancing (docs/reference.md#rebalanced-split): the ``top_k`` most frequent predicates keep
    at most ``max_instances`` relation rows each, first come first served in file order. ``predicate_order``: predicate ids most
    frequent first, by the family's training counts (``TrainVocabulary.predicate_order``)."""

    predicate_order: tuple[int, ...]
    top_k: int = 15
    max_instances: int = 2000


@dataclass(frozen=True)
class SplitIndex:
    """The images of one split and their surviving relations. I images, R relations.

    image_rows: (I,) int64 rows of the images in the family's files (VG150: h5 rows; Open Images: records),
        ascending.
    box_start, box_count: (I,) int64 into the flat object arrays.
    rel_offsets: (I + 1,) int64 CSR offsets into ``relations``.
    relations: (R, 3) int64 [subject_local, object_local, predicate], file order within each image.
    """

    image_rows: np.ndarray
    box_start: np.ndarray
    box_count: np.ndarray
    rel_offsets: np.ndarray
    relations: np.ndarray


def records_relation_rows(rel_offsets: np.ndarray, image_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat relation rows of the chosen records, in order. rel_offsets: (I_all + 1,) CSR offsets of the
    file's relations per record; image_rows: (I,) chosen records. -> (rel_image (R,) position of each row's
    record in ``image_rows``, rel_rows (R,) rows into the file's relation array)."""
    rel_counts = rel_offsets[image_rows + 1] - rel_offsets[image_rows]
    rel_image = np.repeat(np.arange(len(image_rows)), rel_counts)
    starts = np.repeat(rel_offsets[image_rows] - np.concatenate([[0], np.cumsum(rel_counts)[:-1]]), rel_counts)
    return rel_image, (starts + np.arange(rel_counts.sum())).astype(np.int64)


def filtered_split(image_rows: np.ndarray, box_start: np.ndarray, box_count: np.ndarray, rel_image: np.ndarray,
                   relations: np.ndarray, keep: np.ndarray, drop_images_without_relations: bool) -> SplitIndex:
    """A ``SplitIndex`` of the relations with ``keep``; images left without any removed when asked.

    image_rows, box_start, box_count: (I,); rel_image: (R,) position of each relation's image (ascending);
    relations: (R, 3); keep: (R,) bool.
    """
    relations, rel_image = relations[keep], rel_image[keep]
    rel_per_image = np.bincount(rel_image, minlength=len(image_rows))
    if drop_images_without_relations:
        kept_images = rel_per_image > 0
        image_rows, box_start, box_count = image_rows[kept_images], box_start[kept_images], box_count[kept_images]
        rel_per_image = rel_per_image[kept_images]
    rel_offsets = np.concatenate([[0], np.cumsum(rel_per_image)]).astype(np.int64)
    return SplitIndex(image_rows, box_start, box_count, rel_offsets, relations.astype(np.int64))


def rebalance_keep(predicates: np.ndarray, candidates: np.ndarray, spec: RebalanceSpec) -> np.ndarray:
    """Keep a top-k predicate's row only while fewer than ``max_instances`` earlier rows of it were kept.

    predicates: (R,) in file order; candidates: (R,) bool, rows still present. -> (R,) bool.
    """
    capped = np.isin(predicates, spec.predicate_order[: spec.top_k]) & candidates
    keep = np.ones(len(predicates), dtype=bool)
    rows = np.flatnonzero(capped)
    order = np.argsort(predicates[rows], kind="stable")
    sorted_predicates = predicates[rows][order]
    group_start = np.flatnonzero(np.r_[True, sorted_predicates[1:] != sorted_predicates[:-1]])
    rank = np.arange(len(rows)) - np.repeat(group_start, np.diff(np.r_[group_start, len(rows)]))
    keep[rows[order]] = rank < spec.max_instances
    return keep
