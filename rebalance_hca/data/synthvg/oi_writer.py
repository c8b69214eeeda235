"""Writing scene graphs in PySGG's processed Open Images V6 layout (docs/reference.md#open-images-v6):

    <folder> = <data root>/openimages/open_image_v6/
        images/<img_fn>.jpg
        annotations/vrd-{train,val,test}-anno.json, annotations/categories_dict.json

Records hold 0-based ``det_labels`` and predicates (the loader adds 1), integer pixel boxes, ``img_size``
width first. Byte-for-byte reproducible for equal input.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .writers import write_json

OI_FOLDER = os.path.join("openimages", "open_image_v6")
OI_IMAGE_FOLDER_NAME = "images"
OI_ANNOTATION_FOLDER_NAME = "annotations"
CATEGORIES_FILE_NAME = "categories_dict.json"
OI_SPLITS = ("train", "val", "test")


def annotation_file_name(split: str) -> str:
    return f"vrd-{split}-anno.json"


def image_file_stem(image_id: int) -> str:
    """An Open Images-like ``img_fn``: 16 hex digits."""
    return f"{image_id:016x}"


@dataclass
class OISplitArrays:
    """One split as flat arrays. I images, N boxes, R relations.

    image_ids, widths, heights: (I,) int64; box_counts, rel_counts: (I,) int64; boxes: (N, 4) int64 pixel xyxy;
    labels: (N,) int64 classes 1..C-1; relations: (R, 3) int64 [subject, object (indices within the image),
    predicate 1..P-1].
    """

    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    box_counts: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    rel_counts: np.ndarray
    relations: np.ndarray


def oi_records(arrays: OISplitArrays) -> list[dict]:
    """The ``vrd-<split>-anno.json`` list: one record per image, labels and predicates made 0-based."""
    box_offsets = np.concatenate([[0], np.cumsum(arrays.box_counts)])
    rel_offsets = np.concatenate([[0], np.cumsum(arrays.rel_counts)])
    boxes = arrays.boxes.astype(np.int64).tolist()
    labels = (arrays.labels - 1).tolist()
    relations = (arrays.relations - np.array([0, 0, 1])).tolist()
    return [{"img_fn": image_file_stem(int(image_id)), "img_size": [int(width), int(height)],
             "bbox": boxes[box_offsets[i]:box_offsets[i + 1]], "det_labels": labels[box_offsets[i]:box_offsets[i + 1]],
             "rel": relations[rel_offsets[i]:rel_offsets[i + 1]]}
            for i, (image_id, width, height) in enumerate(zip(arrays.image_ids, arrays.widths, arrays.heights))]


def write_oi_annotation_files(folder: str, splits: dict[str, OISplitArrays], object_names: list[str],
                              predicate_names: list[str]) -> None:
    """``annotations/`` under ``folder``: the three record files and ``categories_dict.json`` (names in id
    order 1.., without background)."""
    annotations = os.path.join(folder, OI_ANNOTATION_FOLDER_NAME)
    os.makedirs(annotations, exist_ok=True)
    write_json(os.path.join(annotations, CATEGORIES_FILE_NAME), {"obj": object_names, "rel": predicate_names})
    for split in OI_SPLITS:
        write_json(os.path.join(annotations, annotation_file_name(split)), oi_records(splits[split]))
