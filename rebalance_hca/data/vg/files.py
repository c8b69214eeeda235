"""Reading and validating the three VG150 annotation files (docs/reference.md#vg150-data).

Everything is read once per file version into flat numpy arrays (one row per object / relation / image);
the splits (``index``) and samples (``dataset``) are views onto these arrays, never per-image copies.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import h5py
import numpy as np

from ...structures.boxes import cxcywh_to_xyxy_truncated
from ..files import DataFormatError, file_fingerprint, require_file

BOX_SCALE = 1024
# The files of a VG150 dataset, relative to the data root (SGB's catalog entry).
VG_FILES = {
    "img_dir": "vg/VG_100K",
    "roidb_file": "vg/VG-SGG-with-attri.h5",
    "dict_file": "vg/VG-SGG-dicts-with-attri.json",
    "image_file": "vg/image_data.json",
}
# VG images whose files are corrupted; SGB drops them from image_data.json before aligning with the h5.
CORRUPTED_IMAGE_IDS = frozenset({1592, 1722, 4616, 4617})
REQUIRED_H5_DATASETS = (
    "split", "img_to_first_box", "img_to_last_box", "img_to_first_rel", "img_to_last_rel",
    "labels", "boxes_1024", "relationships", "predicates", "attributes",
)
REQUIRED_DICT_KEYS = ("label_to_idx", "predicate_to_idx", "attribute_to_idx")


@dataclass(frozen=True)
class VGVocabulary:
    """Index → name lists with ``__background__`` at 0, and the dictionary's predicate counts."""

    ind_to_classes: list[str]
    ind_to_predicates: list[str]
    ind_to_attributes: list[str]
    predicate_count: dict[str, int]


@dataclass(frozen=True)
class VGAnnotations:
    """The whole h5 as flat arrays. N objects, R relations, I images (h5 rows).

    boxes_1024: (N, 4) int32 xyxy, decoded with SGB's truncation; labels: (N,) int64; relationships: (R, 2)
    int64 global object rows; predicates: (R,) int64; split, first_box, last_box, first_rel, last_rel: (I,)
    int64. Attributes are read separately (``load_attributes``): splits and statistics never need them.
    """

    roidb_file: str
    split: np.ndarray
    first_box: np.ndarray
    last_box: np.ndarray
    first_rel: np.ndarray
    last_rel: np.ndarray
    labels: np.ndarray
    boxes_1024: np.ndarray
    relationships: np.ndarray
    predicates: np.ndarray


def load_vocabulary(dict_file: str) -> VGVocabulary:
    """Parse ``VG-SGG-dicts-with-attri.json`` and add ``__background__`` at index 0
    (docs/reference.md#vg150-dictionaries)."""
    return _load_vocabulary_cached(*file_fingerprint(_checked(dict_file, "VG dicts json (dict_file)")))


@lru_cache(maxsize=4)
def _load_vocabulary_cached(dict_file: str, _size: int, _mtime: int) -> VGVocabulary:
    try:
        with open(dict_file, encoding="utf-8") as handle:
            info = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{dict_file}: not valid JSON ({error})") from None
    missing = [key for key in REQUIRED_DICT_KEYS if key not in info]
    if missing:
        raise DataFormatError(f"{dict_file}: missing key(s) {missing}")

    def ordered_names(key: str) -> list[str]:
        mapping = dict(info[key])
        mapping["__background__"] = 0
        ids = sorted(mapping.values())
        if ids != list(range(len(ids))):
            raise DataFormatError(f"{dict_file}: {key} ids must be 1..{len(ids) - 1} without gaps")
        return sorted(mapping, key=lambda name: mapping[name])

    return VGVocabulary(
        ind_to_classes=ordered_names("label_to_idx"),
        ind_to_predicates=ordered_names("predicate_to_idx"),
        ind_to_attributes=ordered_names("attribute_to_idx"),
        predicate_count={name: int(count) for name, count in info.get("predicate_count", {}).items()},
    )


def load_annotations(roidb_file: str) -> VGAnnotations:
    """Read and check ``VG-SGG-with-attri.h5`` (docs/reference.md#vg150-h5-file);
    cached per file version in this process."""
    return _load_annotations_cached(*file_fingerprint(_checked(roidb_file, "VG h5 (roidb_file)")))


@lru_cache(maxsize=2)
def _load_annotations_cached(roidb_file: str, _size: int, _mtime: int) -> VGAnnotations:
    try:
        handle = h5py.File(roidb_file, "r")
    except OSError as error:
        raise DataFormatError(f"{roidb_file}: cannot be read as HDF5 ({error})") from None
    with handle:
        missing = [name for name in REQUIRED_H5_DATASETS if name not in handle]
        if missing:
            raise DataFormatError(f"{roidb_file}: missing dataset(s) {missing}")
        per_image = {name: handle[name][:].astype(np.int64) for name in REQUIRED_H5_DATASETS[:5]}
        labels = handle["labels"][:, 0].astype(np.int64)
        raw_boxes = handle["boxes_1024"][:]
        relationships = handle["relationships"][:].astype(np.int64)
        predicates = handle["predicates"][:, 0].astype(np.int64)

    num_images = per_image["split"].shape[0]
    for name, values in per_image.items():
        if values.shape != (num_images,):
            raise DataFormatError(f"{roidb_file}: {name} has shape {values.shape}, expected ({num_images},)")
    num_boxes, num_rels = labels.shape[0], predicates.shape[0]
    for name, array, rows in (("boxes_1024", raw_boxes, num_boxes), ("relationships", relationships, num_rels)):
        if array.shape[0] != rows:
            raise DataFormatError(f"{roidb_file}: {name} has {array.shape[0]} rows, expected {rows}")
    if raw_boxes.ndim != 2 or raw_boxes.shape[1] != 4 or relationships.shape[1:] != (2,):
        raise DataFormatError(f"{roidb_file}: boxes_1024 must be (N, 4) and relationships (R, 2)")
    _check_ranges(roidb_file, "box", per_image["img_to_first_box"], per_image["img_to_last_box"], num_boxes)
    _check_ranges(roidb_file, "rel", per_image["img_to_first_rel"], per_image["img_to_last_rel"], num_rels)
    if num_boxes and ((raw_boxes[:, :2] < 0).any() or (raw_boxes[:, 2:] <= 0).any()):
        bad = int(np.flatnonzero((raw_boxes[:, :2] < 0).any(1) | (raw_boxes[:, 2:] <= 0).any(1))[0])
        raise DataFormatError(
            f"{roidb_file}: boxes_1024 row {bad} = {raw_boxes[bad].tolist()} needs cx, cy >= 0 and w, h > 0"
        )
    if num_rels and (relationships.min() < 0 or relationships.max() >= num_boxes):
        raise DataFormatError(f"{roidb_file}: relationships reference object rows outside [0, {num_boxes})")
    return VGAnnotations(
        roidb_file=roidb_file,
        split=per_image["split"],
        first_box=per_image["img_to_first_box"],
        last_box=per_image["img_to_last_box"],
        first_rel=per_image["img_to_first_rel"],
        last_rel=per_image["img_to_last_rel"],
        labels=labels,
        boxes_1024=cxcywh_to_xyxy_truncated(raw_boxes),
        relationships=relationships,
        predicates=predicates,
    )


def _check_ranges(path: str, kind: str, first: np.ndarray, last: np.ndarray, num_rows: int) -> None:
    has_rows = first >= 0
    bad = has_rows & ((last < first) | (last >= num_rows))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: image row {row} has img_to_first_{kind}={first[row]}, img_to_last_{kind}={last[row]}, "
            f"outside the {num_rows} {kind} rows"
        )


def load_attributes(roidb_file: str) -> np.ndarray:
    """The h5's ``attributes`` as (N, 10) int32 (half the memory of the file's int64); cached per file version."""
    return _load_attributes_cached(*file_fingerprint(_checked(roidb_file, "VG h5 (roidb_file)")))


@lru_cache(maxsize=2)
def _load_attributes_cached(roidb_file: str, _size: int, _mtime: int) -> np.ndarray:
    with h5py.File(roidb_file, "r") as handle:
        attributes = handle["attributes"]
        if attributes.ndim != 2 or attributes.shape[0] != handle["labels"].shape[0]:
            raise DataFormatError(f"{roidb_file}: attributes has shape {attributes.shape}, expected (N, 10) "
                                  f"with one row per object")
        return attributes.astype(np.int32)[:]


@dataclass(frozen=True)
class VGImageInfo:
    """image_data.json aligned with the h5 rows: (I,) int64 arrays."""

    image_file: str
    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray


def load_image_info(image_file: str, num_h5_images: int) -> VGImageInfo:
    """Parse ``image_data.json``, drop the four corrupted VG images and align with the h5 rows
    (docs/reference.md#vg150-image-list)."""
    return _load_image_info_cached(*file_fingerprint(_checked(image_file, "image_data.json (image_file)")),
                                   num_h5_images)


@lru_cache(maxsize=4)
def _load_image_info_cached(image_file: str, _size: int, _mtime: int, num_h5_images: int) -> VGImageInfo:
    try:
        with open(image_file, encoding="utf-8") as handle:
            entries = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{image_file}: not valid JSON ({error})") from None
    try:
        table = np.array([(e["image_id"], e["width"], e["height"]) for e in entries], dtype=np.int64)
    except (KeyError, TypeError) as error:
        raise DataFormatError(f"{image_file}: every entry needs image_id, width and height ({error!r})") from None
    table = table.reshape(-1, 3)
    table = table[~np.isin(table[:, 0], list(CORRUPTED_IMAGE_IDS))]
    if table.shape[0] != num_h5_images:
        raise DataFormatError(
            f"{image_file}: {table.shape[0]} images after dropping the corrupted ids "
            f"{sorted(CORRUPTED_IMAGE_IDS)}, but the h5 has {num_h5_images} image rows"
        )
    if (table[:, 1:] <= 0).any():
        row = int(np.flatnonzero((table[:, 1:] <= 0).any(1))[0])
        raise DataFormatError(f"{image_file}: image_id {table[row, 0]} has a non-positive width or height")
    return VGImageInfo(image_file=image_file, image_ids=table[:, 0], widths=table[:, 1], heights=table[:, 2])


def _checked(path: str, what: str) -> str:
    require_file(path, what)
    return path
