"""Writing scene graphs in SHA-GCL's GQA-200 layout (docs/data.md#gqa-200):

    <folder> = <data root>/gqa/
        images/<image_id>.jpg
        GQA_200_ID_Info.json, GQA_200_Train.json, GQA_200_Test.json

Splits come as ``OISplitArrays`` (flat arrays per split, the same container as the Open Images writer's); a file
holds five parallel lists, classes and predicates 1-based as stored, integer pixel boxes xyxy, ``img_info``
with width, height and the image id. Byte-for-byte reproducible for equal input.
"""
from __future__ import annotations

import os

import numpy as np

from ..gqa.family import GQA_FILES
from .oi_writer import OISplitArrays
from .writers import write_json

BACKGROUND = "__background__"


def gqa_file_content(arrays: OISplitArrays) -> dict:
    """The five parallel lists of one GQA-200 annotation file, one entry per image of ``arrays``."""
    box_offsets = np.concatenate([[0], np.cumsum(arrays.box_counts)])
    rel_offsets = np.concatenate([[0], np.cumsum(arrays.rel_counts)])
    boxes, labels, relations = arrays.boxes.astype(np.int64).tolist(), arrays.labels.tolist(), \
        arrays.relations.tolist()
    ids = arrays.image_ids.tolist()
    return {
        "filenames_all": [f"{image_id}.jpg" for image_id in ids],
        "img_info_all": [{"image_id": str(image_id), "width": width, "height": height}
                         for image_id, width, height in zip(ids, arrays.widths.tolist(), arrays.heights.tolist())],
        "gt_boxes_all": [boxes[box_offsets[i]:box_offsets[i + 1]] for i in range(len(ids))],
        "gt_classes_all": [labels[box_offsets[i]:box_offsets[i + 1]] for i in range(len(ids))],
        "relationships_all": [relations[rel_offsets[i]:rel_offsets[i + 1]] for i in range(len(ids))],
    }


def write_gqa_annotation_files(folder: str, train: OISplitArrays, test: OISplitArrays, object_names: list[str],
                               predicate_names: list[str]) -> None:
    """The vocabulary (names in id order 1.., background prepended) and the train and test files under
    ``folder``; val is the loader's prefix of the test file."""
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, GQA_FILES["dict_file"]),
               {"ind_to_classes": [BACKGROUND, *object_names], "ind_to_predicates": [BACKGROUND, *predicate_names]})
    write_json(os.path.join(folder, GQA_FILES["train_file"]), gqa_file_content(train))
    write_json(os.path.join(folder, GQA_FILES["test_file"]), gqa_file_content(test))
