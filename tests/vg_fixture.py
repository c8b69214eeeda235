"""Hand-written VG150-format fixtures: each test states its images and the output it expects."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import cv2
import h5py
import numpy as np
from PIL import Image

CLASSES = ["cup", "man", "table"]          # ids 1, 2, 3 (alphabetical, as VG's)
PREDICATES = ["has", "near", "on"]         # ids 1, 2, 3
ATTRIBUTES = ["red", "wooden"]
EXIF_ORIENTATION = 0x0112


@dataclass
class FixtureImage:
    """One image: boxes as (cx, cy, w, h) in the 1024 frame, relations as (subject, object, predicate)
    with image-local object indices."""

    split: int = 0
    width: int = 64
    height: int = 48
    boxes: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    relations: list = field(default_factory=list)
    write_image: bool = True
    exif_orientation: int | None = None    # e.g. 6: viewers rotate the stored pixels 90° clockwise


def write_fixture(root: str, images: list[FixtureImage], corrupted_entries: bool = False,
                  predicate_count: dict | None = None) -> dict:
    """Write the four VG inputs under ``root/vg``; returns the VGDataset path arguments."""
    vg = os.path.join(root, "vg")
    image_dir = os.path.join(vg, "VG_100K")
    os.makedirs(image_dir, exist_ok=True)
    split, first_box, last_box, first_rel, last_rel = [], [], [], [], []
    boxes, labels, relationships, predicates = [], [], [], []
    image_entries = []
    image_ids = [1600 + i for i in range(len(images))]
    for image_id, image in zip(image_ids, images):
        split.append(image.split)
        if image.boxes:
            first_box.append(len(boxes))
            last_box.append(len(boxes) + len(image.boxes) - 1)
        else:
            first_box.append(-1)
            last_box.append(-1)
        if image.relations:
            first_rel.append(len(relationships))
            last_rel.append(len(relationships) + len(image.relations) - 1)
        else:
            first_rel.append(-1)
            last_rel.append(-1)
        base = len(boxes)
        relationships.extend([(base + s, base + o) for s, o, _ in image.relations])
        predicates.extend([p for _, _, p in image.relations])
        boxes.extend(image.boxes)
        labels.extend(image.labels)
        image_entries.append({"width": image.width, "height": image.height, "image_id": image_id,
                              "url": "", "coco_id": None, "flickr_id": None})
        if image.write_image:
            _write_image(os.path.join(image_dir, f"{image_id}.jpg"), image)
    if corrupted_entries:
        image_entries.insert(1, {"width": 10, "height": 10, "image_id": 1592, "url": "", "coco_id": None,
                                 "flickr_id": None})
    roidb_file = os.path.join(vg, "VG-SGG-with-attri.h5")
    with h5py.File(roidb_file, "w") as handle:
        for name, values in (("split", split), ("img_to_first_box", first_box), ("img_to_last_box", last_box),
                             ("img_to_first_rel", first_rel), ("img_to_last_rel", last_rel)):
            handle.create_dataset(name, data=np.array(values, dtype=np.int32))
        box_array = np.array(boxes, dtype=np.int32).reshape(-1, 4)
        handle.create_dataset("labels", data=np.array(labels, dtype=np.int64).reshape(-1, 1))
        handle.create_dataset("boxes_1024", data=box_array)
        handle.create_dataset("boxes_512", data=box_array // 2)
        handle.create_dataset("active_object_mask", data=np.ones((len(boxes), 1), dtype=bool))
        handle.create_dataset("attributes", data=np.zeros((len(boxes), 10), dtype=np.int64))
        handle.create_dataset("relationships", data=np.array(relationships, dtype=np.int32).reshape(-1, 2))
        handle.create_dataset("predicates", data=np.array(predicates, dtype=np.int64).reshape(-1, 1))
    dict_file = os.path.join(vg, "VG-SGG-dicts-with-attri.json")
    vocabulary = {
        "label_to_idx": {name: i + 1 for i, name in enumerate(CLASSES)},
        "idx_to_label": {str(i + 1): name for i, name in enumerate(CLASSES)},
        "predicate_to_idx": {name: i + 1 for i, name in enumerate(PREDICATES)},
        "idx_to_predicate": {str(i + 1): name for i, name in enumerate(PREDICATES)},
        "attribute_to_idx": {name: i + 1 for i, name in enumerate(ATTRIBUTES)},
        "idx_to_attribute": {str(i + 1): name for i, name in enumerate(ATTRIBUTES)},
        "object_count": {name: 1 for name in CLASSES},
        "predicate_count": predicate_count or {"has": 5, "near": 3, "on": 9},
        "attribute_count": {name: 1 for name in ATTRIBUTES},
    }
    with open(dict_file, "w") as handle:
        json.dump(vocabulary, handle)
    image_file = os.path.join(vg, "image_data.json")
    with open(image_file, "w") as handle:
        json.dump(image_entries, handle)
    return {"img_dir": image_dir, "roidb_file": roidb_file, "dict_file": dict_file, "image_file": image_file}


def _write_image(path: str, image: FixtureImage) -> None:
    pixels = np.full((image.height, image.width, 3), 127, dtype=np.uint8)
    if image.exif_orientation is None:
        cv2.imwrite(path, pixels)
        return
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = image.exif_orientation
    Image.fromarray(pixels).save(path, exif=exif)


def box(x1: int, y1: int, x2: int, y2: int) -> tuple:
    """(cx, cy, w, h) whose SGB decoding gives back exactly (x1, y1, x2, y2) for even w and h."""
    width, height = x2 - x1, y2 - y1
    return (x1 + width // 2, y1 + height // 2, width, height)
