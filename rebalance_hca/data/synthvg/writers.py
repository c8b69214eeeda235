"""Writing VG150-format files (docs/reference.md#vg150-data) byte-for-byte reproducibly, into a staged folder.

The dataset folder is built in a temporary folder beside the target and renamed into place only when
complete, so an interrupted run never leaves half a dataset.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterator

import h5py
import numpy as np

from ..vg.files import BOX_SCALE
from .vocabulary import ATTRIBUTES, OBJECT_CLASSES, PREDICATES, name_to_id
from .word_vectors import GLOVE_FILE_NAME, glove_text

H5_FILE_NAME = "VG-SGG-with-attri.h5"
DICTS_FILE_NAME = "VG-SGG-dicts-with-attri.json"
IMAGE_DATA_FILE_NAME = "image_data.json"
IMAGE_FOLDER_NAME = "VG_100K"
MARKER_FILE_NAME = "SYNTHVG.json"
MAX_ATTRIBUTES = 10


@dataclass
class VGArrays:
    """Everything the h5 holds, plus per-image sizes and ids. I images, N objects, R relations.

    split, first_box, last_box, first_rel, last_rel: (I,) int (-1: none; last inclusive); labels: (N,) class
    ids; boxes_1024_xyxy: (N, 4) integer boxes in the frame where the image's longer side is 1024 (x2 > x1);
    attributes: (N, 10) 0-padded ids; relationships: (R, 2) global object rows; predicates: (R,);
    image_ids, widths, heights: (I,).
    """

    split: np.ndarray
    first_box: np.ndarray
    last_box: np.ndarray
    first_rel: np.ndarray
    last_rel: np.ndarray
    labels: np.ndarray
    boxes_1024_xyxy: np.ndarray
    attributes: np.ndarray
    relationships: np.ndarray
    predicates: np.ndarray
    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray


def pixel_boxes_to_frame(boxes_xyxy: np.ndarray, longer_side: np.ndarray, scale: int) -> np.ndarray:
    """Pixel xyxy boxes -> integer xyxy boxes in the frame where the image's longer side is ``scale``.

    boxes_xyxy: (N, 4); longer_side: (N,) the longer side of each box's image. -> (N, 4) int64, x2 > x1.
    """
    factor = (scale / np.asarray(longer_side, np.float64))[:, None]
    frame = np.rint(np.asarray(boxes_xyxy, np.float64) * factor).astype(np.int64)
    frame[:, 2:] = np.maximum(frame[:, 2:], frame[:, :2] + 1)
    return frame


def xyxy_to_vg_cxcywh(frame_boxes: np.ndarray) -> np.ndarray:
    """Integer xyxy -> VG's int32 (cx, cy, w, h), chosen so that SGB's truncating decode
    (x1 = int(cx - w / 2), x2 = x1 + w) returns the same xyxy. (N, 4) -> (N, 4) int32."""
    size = frame_boxes[:, 2:] - frame_boxes[:, :2]
    centre = frame_boxes[:, :2] + (size + 1) // 2
    return np.concatenate([centre, size], axis=1).astype(np.int32)


def write_h5(path: str, arrays: VGArrays) -> None:
    """VG-SGG-with-attri.h5 with every dataset of SGB's file; no timestamps, so equal input gives equal bytes."""
    boxes_1024 = xyxy_to_vg_cxcywh(arrays.boxes_1024_xyxy)
    boxes_512 = xyxy_to_vg_cxcywh(pixel_boxes_to_frame(arrays.boxes_1024_xyxy,
                                                       np.full(arrays.labels.size, BOX_SCALE), 512))
    datasets = {
        "split": arrays.split.astype(np.int32),
        "img_to_first_box": arrays.first_box.astype(np.int32),
        "img_to_last_box": arrays.last_box.astype(np.int32),
        "img_to_first_rel": arrays.first_rel.astype(np.int32),
        "img_to_last_rel": arrays.last_rel.astype(np.int32),
        "labels": arrays.labels.astype(np.int64).reshape(-1, 1),
        "boxes_1024": boxes_1024,
        "boxes_512": boxes_512,
        "active_object_mask": np.ones((arrays.labels.size, 1), dtype=bool),
        "relationships": arrays.relationships.astype(np.int32).reshape(-1, 2),
        "predicates": arrays.predicates.astype(np.int64).reshape(-1, 1),
        "attributes": arrays.attributes.astype(np.int64).reshape(-1, MAX_ATTRIBUTES),
    }
    with h5py.File(path, "w", libver="earliest", track_order=False) as handle:
        for name, data in datasets.items():
            handle.create_dataset(name, data=data, track_times=False)


def vocabulary_dicts(arrays: VGArrays) -> dict:
    """The dicts json (docs/reference.md#vg150-dictionaries):
    name<->id maps (alphabetical ids) and counts over the generated data."""
    content = {}
    for key, plural, names, values in (
        ("label", "object", OBJECT_CLASSES, arrays.labels),
        ("predicate", "predicate", PREDICATES, arrays.predicates),
        ("attribute", "attribute", ATTRIBUTES, arrays.attributes[arrays.attributes > 0]),
    ):
        ids = name_to_id(names)
        counts = np.bincount(np.asarray(values, np.int64).ravel(), minlength=len(names) + 1)
        content[f"{key}_to_idx"] = ids
        content[f"idx_to_{key}"] = {str(index): name for name, index in ids.items()}
        content[f"{plural}_count"] = {name: int(counts[index]) for name, index in ids.items()}
    return content


def image_data_entries(arrays: VGArrays, corrupted_sizes: dict[int, tuple[int, int]]) -> list[dict]:
    """image_data.json: one entry per h5 row, plus VG's corrupted ids (given with their (width, height)),
    in ascending id order."""
    entries = {int(image_id): (int(width), int(height))
               for image_id, width, height in zip(arrays.image_ids, arrays.widths, arrays.heights)}
    entries.update(corrupted_sizes)
    return [{"coco_id": None, "flickr_id": None, "height": height, "image_id": image_id,
             "url": f"synthvg://{IMAGE_FOLDER_NAME}/{image_id}.jpg", "width": width}
            for image_id, (width, height) in sorted(entries.items())]


def write_json(path: str, content) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, sort_keys=True, separators=(",", ":"))


def write_annotation_files(folder: str, arrays: VGArrays, corrupted_sizes: dict[int, tuple[int, int]],
                           generation_info: dict) -> None:
    """The h5, the dicts json, image_data.json, the GloVe file and the SynthVG marker into ``folder``."""
    write_h5(os.path.join(folder, H5_FILE_NAME), arrays)
    write_json(os.path.join(folder, DICTS_FILE_NAME), vocabulary_dicts(arrays))
    write_json(os.path.join(folder, IMAGE_DATA_FILE_NAME), image_data_entries(arrays, corrupted_sizes))
    with open(os.path.join(folder, GLOVE_FILE_NAME), "w", encoding="utf-8") as handle:
        handle.write(glove_text())
    with open(os.path.join(folder, MARKER_FILE_NAME), "w", encoding="utf-8") as handle:
        json.dump(generation_info, handle, sort_keys=True, indent=1)


def check_target(target: str, overwrite: bool) -> None:
    """Refuse an existing target unless ``overwrite``, and never replace a folder SynthVG did not write."""
    if not os.path.lexists(target):
        return
    if not overwrite:
        raise FileExistsError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")
    if not os.path.isfile(os.path.join(target, MARKER_FILE_NAME)):
        raise FileExistsError(
            f"{target} exists and is not a SynthVG dataset (no {MARKER_FILE_NAME}); refusing to replace it, "
            "even with --overwrite. Move it away or choose another --output-dir."
        )


@contextlib.contextmanager
def staged_folder(target: str, overwrite: bool) -> Iterator[str]:
    """Yield an empty folder beside ``target``; on success it replaces ``target`` by renames, on error it is
    deleted and ``target`` is left as it was."""
    target = os.path.abspath(target)
    check_target(target, overwrite)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        yield staging
        check_target(target, overwrite)
        if os.path.lexists(target):
            retired = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old-")
            os.rename(target, os.path.join(retired, name))
            os.rename(staging, target)
            shutil.rmtree(retired)
        else:
            os.rename(staging, target)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
