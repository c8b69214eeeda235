"""Split selection and relation filters of SGB's ``load_graphs``, vectorized
(docs/reference.md#vg150-split-selection, #rebalanced-split).

A split is a ``SplitIndex`` (``rebalance_hca.data.split_index``): the chosen h5 image rows plus CSR offsets
into the flat object arrays and a flat array of the relations that survive the filters, in h5 order.
Nothing loops over images in Python.
"""
from __future__ import annotations

import numpy as np

from ...structures.boxes import paired_iou_legacy
from ..files import DataFormatError
from ..split_index import RebalanceSpec, SplitIndex, filtered_split, rebalance_keep
from .files import VGAnnotations

SPLIT_CODES = {"train": 0, "val": 0, "test": 2}


def select_split(
    ann: VGAnnotations,
    split: str,
    filter_empty_rels: bool = True,
    filter_non_overlap: bool = False,
    num_im: int = -1,
    num_val_im: int = 5000,
    rebalance: RebalanceSpec | None = None,
) -> SplitIndex:
    """Reproduce ``load_graphs``: split code, box/rel presence, val carve-out, overlap filter, rebalancing."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
    if filter_non_overlap and split != "train":
        raise ValueError("filter_non_overlap applies to the train split only (SGB asserts this)")
    if rebalance is not None and split != "train":
        raise ValueError("stage-2 rebalancing applies to the train split only")

    mask = (ann.split == SPLIT_CODES[split]) & (ann.first_box >= 0)
    if filter_empty_rels:
        mask &= ann.first_rel >= 0
    image_rows = np.flatnonzero(mask)
    if num_im > -1:
        image_rows = image_rows[:num_im]
    if num_val_im > 0:
        if split == "val":
            image_rows = image_rows[:num_val_im]
        elif split == "train":
            image_rows = image_rows[num_val_im:]

    box_start = ann.first_box[image_rows]
    box_count = ann.last_box[image_rows] - box_start + 1
    rel_image, rel_rows = _relation_rows(ann, image_rows)
    relations = np.column_stack([
        ann.relationships[rel_rows] - box_start[rel_image][:, None],
        ann.predicates[rel_rows],
    ])
    _check_local_indices(ann, image_rows, rel_image, rel_rows, relations, box_count)

    keep = np.ones(len(rel_rows), dtype=bool)
    if filter_non_overlap:
        keep &= _relations_overlap(ann, rel_rows)
    if rebalance is not None:
        keep &= rebalance_keep(relations[:, 2], keep, rebalance)
    index = filtered_split(image_rows, box_start, box_count, rel_image, relations, keep,
                           drop_images_without_relations=filter_non_overlap or rebalance is not None)
    if len(index.image_rows) == 0:
        raise DataFormatError(
            f"{ann.roidb_file}: the {split!r} split is empty after filtering "
            f"(filter_empty_rels={filter_empty_rels}, filter_non_overlap={filter_non_overlap}, "
            f"num_val_im={num_val_im}, rebalance={'on' if rebalance else 'off'})"
        )
    return index


def _relation_rows(ann: VGAnnotations, image_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat relation rows of the given images in h5 order: (position of the image, h5 relation row)."""
    first = ann.first_rel[image_rows]
    counts = np.where(first >= 0, ann.last_rel[image_rows] - first + 1, 0)
    rel_image = np.repeat(np.arange(len(image_rows)), counts)
    starts = np.repeat(first - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return rel_image, starts + np.arange(counts.sum())


def _check_local_indices(ann, image_rows, rel_image, rel_rows, relations, box_count) -> None:
    bad = (relations[:, :2] < 0).any(1) | (relations[:, :2] >= box_count[rel_image][:, None]).any(1)
    if bad.any():
        first_bad = int(np.flatnonzero(bad)[0])
        image_row = int(image_rows[rel_image[first_bad]])
        raise DataFormatError(
            f"{ann.roidb_file}: relationship row {int(rel_rows[first_bad])} of image row {image_row} "
            f"references objects {ann.relationships[rel_rows[first_bad]].tolist()} outside that image's "
            f"object rows [{ann.first_box[image_row]}, {ann.last_box[image_row]}]"
        )


def _relations_overlap(ann: VGAnnotations, rel_rows: np.ndarray) -> np.ndarray:
    """Whether subject and object boxes have IoU > 0 in the 1024 frame with the +1 convention. -> (R,) bool."""
    subject_boxes = ann.boxes_1024[ann.relationships[rel_rows, 0]]
    object_boxes = ann.boxes_1024[ann.relationships[rel_rows, 1]]
    return paired_iou_legacy(subject_boxes, object_boxes) > 0.0
