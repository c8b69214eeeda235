"""A GQA-200 release full of edge cases, written in SHA-GCL's file format (docs/data.md#gqa-200), for the GQA
tests and for checks against SHA-GCL's own loader.

Train file: the hand-written records of ``EDGE_TRAIN`` (duplicates, several predicates per pair, a self-relation,
float, inverted, zero-area, negative and outside boxes, records without relations or boxes, a repeated file
name, edge-touching boxes, a one-box image). Test file: ``FILLER_TEST_RECORDS`` generated records (some empty,
some with degenerate boxes) so that the skipped record 5580 and the 5000-image val prefix are exercised; the
skipped record itself holds what every check would reject.
"""
from __future__ import annotations

import json
import os

import numpy as np

NUM_CLASSES = 201
NUM_PREDICATES = 101
IMAGE_SIZE = {"width": 64, "height": 48}
FILLER_TEST_RECORDS = 6500
SKIPPED_TEST_POSITION = 5579


def record(name: str, boxes: list, classes: list, relations: list, size: dict = IMAGE_SIZE) -> dict:
    return {"file": name, "info": dict(size, image_id=name[:-4]), "boxes": boxes, "classes": classes,
            "relations": relations}


EDGE_TRAIN = [
    # 0: integer boxes; the pair (0, 1) has predicates 5, 5, 7 (a repeat and a second predicate); a self-relation
    record("1.jpg", [[0, 0, 20, 20], [10, 10, 30, 30], [40, 5, 60, 40]], [3, 4, 3],
           [[0, 1, 5], [1, 2, 9], [0, 1, 5], [0, 1, 7], [2, 2, 1]]),
    # 1: float boxes; box 1 wholly right of the image, box 2 inverted, box 3 zero-area, box 4 negative corner
    record("n2.jpg", [[1.5, 2.5, 30.25, 40.0], [70, 10, 90, 20], [30, 30, 10, 10], [5, 5, 5, 25], [-4, -3, 10, 8]],
           [10, 11, 12, 13, 200], [[0, 1, 2], [1, 3, 3], [4, 0, 100], [2, 4, 4]]),
    # 2: boxes but no relation: dropped
    record("3.jpg", [[0, 0, 5, 5]], [1], []),
    # 3: neither boxes nor relations: dropped
    record("4.jpg", [], [], []),
    # 4: one box, a self-relation only (no background pair)
    record("5.jpg", [[2, 2, 9, 9]], [7], [[0, 0, 6]]),
    # 5: three boxes touching only at edges: no overlapping pair, so every ordered pair counts as background
    record("6.jpg", [[0, 0, 10, 10], [10, 0, 20, 10], [0, 10, 10, 20]], [8, 9, 8], [[0, 1, 2], [2, 0, 2]]),
    # 6: the file name of record 0 again, another size; kept twice
    record("1.jpg", [[0, 0, 30, 30], [5, 5, 25, 25]], [3, 3], [[1, 0, 8], [1, 0, 8]], {"width": 32, "height": 32}),
    # 7: two boxes outside the image that overlap each other (they count as background)
    record("8.jpg", [[100, 100, 120, 120], [110, 110, 130, 130]], [20, 21], [[0, 1, 11]]),
]


def filler_test_records(count: int = FILLER_TEST_RECORDS, seed: int = 0) -> list[dict]:
    """``count`` random records: 1..4 boxes (some degenerate), 1..4 relations (repeats likely); one in ten
    without boxes, one in ten without relations."""
    rng = np.random.default_rng(seed)
    records = []
    for position in range(count):
        num_boxes = int(rng.integers(1, 5)) if rng.random() > 0.1 else 0
        corners = rng.integers(-5, 60, (num_boxes, 2))
        sizes = rng.integers(-3, 30, (num_boxes, 2)) * (rng.random((num_boxes, 1)) < 0.9)
        boxes = np.concatenate([corners, corners + sizes], axis=1).tolist()
        classes = rng.integers(1, NUM_CLASSES, num_boxes).tolist()
        num_relations = int(rng.integers(1, 5)) if num_boxes and rng.random() > 0.1 else 0
        relations = np.column_stack([rng.integers(0, num_boxes, (num_relations, 2)),
                                     rng.integers(1, NUM_PREDICATES, num_relations)]).tolist() if num_boxes else []
        records.append(record(f"{1000 + position}.jpg", boxes, classes, relations))
    if count <= SKIPPED_TEST_POSITION:
        return records
    # SHA-GCL never reads this record: a relation to a missing box and no image size
    records[SKIPPED_TEST_POSITION] = {"file": "skipped.jpg", "info": {}, "boxes": [[0, 0, 5, 5]], "classes": [0],
                                      "relations": [[0, 7, 0]]}
    return records


def release_content(records: list[dict]) -> dict:
    """The five parallel lists of one annotation file."""
    return {"filenames_all": [r["file"] for r in records], "img_info_all": [r["info"] for r in records],
            "gt_boxes_all": [r["boxes"] for r in records], "gt_classes_all": [r["classes"] for r in records],
            "relationships_all": [r["relations"] for r in records]}


def vocabulary_content(num_classes: int = NUM_CLASSES, num_predicates: int = NUM_PREDICATES) -> dict:
    return {"ind_to_classes": ["__background__"] + [f"class {i}" for i in range(1, num_classes)],
            "ind_to_predicates": ["__background__"] + [f"predicate {i}" for i in range(1, num_predicates)]}


def write_gqa_release(data_root: str, train_records: list[dict] = EDGE_TRAIN,
                      test_records: list[dict] | None = None) -> str:
    """``<data_root>/gqa/`` with the three files and an empty ``images/``; returns that folder."""
    folder = os.path.join(data_root, "gqa")
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    contents = {"GQA_200_ID_Info.json": vocabulary_content(), "GQA_200_Train.json": release_content(train_records),
                "GQA_200_Test.json": release_content(filler_test_records() if test_records is None else test_records)}
    for name, content in contents.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
            json.dump(content, handle)
    return folder
