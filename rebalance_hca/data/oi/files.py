"""Reading and validating PySGG's processed Open Images V6 files
(docs/reference.md#oi-vocabularies, #oi-annotation-records).

``annotations/vrd-<split>-anno.json`` is a list of records ``{img_fn, img_size [w, h], bbox [[x1, y1, x2, y2],
...], det_labels [...] (0-based), rel [[s, o, p], ...] (p 0-based)}``; ``annotations/categories_dict.json``
holds the name lists ``obj`` and ``rel``. A file is read once per version into flat arrays
(``RecordAnnotations``: ``img_fn`` as image_files, ``img_size`` as widths and heights, ``bbox`` as boxes,
``det_labels`` + 1 as labels, ``rel`` with its predicate column + 1 as relations; CSR offsets per record), the
nested lists flattened in C (``json_columns``), never with a Python loop per box or relation.
Every problem raises ``DataFormatError`` naming the file, the record index and the field.
"""
from __future__ import annotations

import os
from functools import lru_cache, partial
from operator import itemgetter

import numpy as np

from ..files import DataFormatError, file_fingerprint, require_file
from ..json_columns import (RecordAnnotations, RecordVocabulary, column_error, first_relation_outside_boxes,
                            flatten_column, garbage_collection_paused, is_row, read_json)

RECORD_KEYS = ("img_fn", "img_size", "bbox", "det_labels", "rel")
BACKGROUND = "__background__"
# PySGG's layout: the folder under the data root, and the folders and files in it.
OI_FOLDER = os.path.join("openimages", "open_image_v6")
OI_IMAGE_FOLDER = "images"
OI_ANNOTATION_FOLDER = "annotations"
CATEGORIES_FILE_NAME = "categories_dict.json"
IMAGE_SUFFIX = ".jpg"


def annotation_file_name(split: str) -> str:
    """The annotation file of one split: ``vrd-<split>-anno.json``."""
    return f"vrd-{split}-anno.json"


def load_oi_vocabulary(dict_file: str) -> RecordVocabulary:
    """Parse ``categories_dict.json`` (lists ``obj`` and ``rel`` of names) and prepend ``__background__``."""
    require_file(dict_file, "Open Images categories_dict.json (dict_file)")
    return _load_vocabulary_cached(*file_fingerprint(dict_file))


@lru_cache(maxsize=4)
def _load_vocabulary_cached(dict_file: str, _size: int, _mtime: int) -> RecordVocabulary:
    content = read_json(dict_file)
    if not isinstance(content, dict):
        raise DataFormatError(f"{dict_file}: expected a JSON object with lists 'obj' and 'rel'")
    names = {}
    for key in ("obj", "rel"):
        values = content.get(key)
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise DataFormatError(f"{dict_file}: '{key}' must be a non-empty list of names")
        if len(set(values)) != len(values) or BACKGROUND in values:
            raise DataFormatError(f"{dict_file}: '{key}' names must be distinct and not {BACKGROUND!r}")
        names[key] = [BACKGROUND, *values]
    return RecordVocabulary(ind_to_classes=names["obj"], ind_to_predicates=names["rel"])


def load_oi_annotations(ann_file: str) -> RecordAnnotations:
    """Read and check one ``vrd-<split>-anno.json``; cached per file version in this process."""
    require_file(ann_file, "Open Images annotation file (ann_file)")
    return _load_annotations_cached(*file_fingerprint(ann_file))


@lru_cache(maxsize=3)
def _load_annotations_cached(ann_file: str, _size: int, _mtime: int) -> RecordAnnotations:
    with garbage_collection_paused():
        return _parse_annotations(ann_file, read_json(ann_file))


def _parse_annotations(ann_file: str, records) -> RecordAnnotations:
    if not isinstance(records, list):
        raise DataFormatError(f"{ann_file}: expected a JSON list of image records, got {type(records).__name__}")
    try:
        columns = dict(zip(RECORD_KEYS, zip(*map(_RECORD_FIELDS, records)))) if records else \
            {key: () for key in RECORD_KEYS}
    except (KeyError, TypeError):
        raise _record_error(ann_file, records) from None
    file_names = columns["img_fn"]
    if set(map(type, file_names)) - {str} or (file_names and min(map(len, file_names)) == 0):
        raise _record_error(ann_file, records)
    for key in RECORD_KEYS[1:]:
        if set(map(type, columns[key])) - {list}:
            raise _record_error(ann_file, records)
    sizes, size_offsets = flatten_column(ann_file, columns["img_size"], "img_size", 0, integer=True)
    if (np.diff(size_offsets) != 2).any() or (sizes <= 0).any():
        raise column_error(ann_file, columns["img_size"], "img_size",
                           partial(is_row, width=2, integer=True, positive=True),
                           "must hold 2 positive integers (width, height)")
    boxes, box_offsets = flatten_column(ann_file, columns["bbox"], "bbox", 4, integer=False)
    labels, label_offsets = flatten_column(ann_file, columns["det_labels"], "det_labels", 0, integer=True)
    relations, rel_offsets = flatten_column(ann_file, columns["rel"], "rel", 3, integer=True)
    sizes = sizes.reshape(-1, 2)
    _check_arrays(ann_file, boxes, box_offsets, labels, label_offsets, relations, rel_offsets)
    return RecordAnnotations(
        ann_file=ann_file, image_files=np.array(file_names, dtype=str), widths=sizes[:, 0], heights=sizes[:, 1],
        box_offsets=box_offsets, boxes=boxes, labels=labels + 1, rel_offsets=rel_offsets,
        relations=relations + np.array([0, 0, 1]),
    )


_RECORD_FIELDS = itemgetter(*RECORD_KEYS)


def _record_error(path: str, records: list) -> DataFormatError:
    """The first record that is not an object with the five keys, a non-empty ``img_fn`` and lists elsewhere."""
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            return DataFormatError(f"{path}: record {position} is a {type(record).__name__}, expected an object")
        missing = [key for key in RECORD_KEYS if key not in record]
        if missing:
            return DataFormatError(f"{path}: record {position} lacks field(s) {missing}")
        if not isinstance(record["img_fn"], str) or not record["img_fn"]:
            return DataFormatError(f"{path}: record {position} field 'img_fn' must be a non-empty string, "
                                   f"got {record['img_fn']!r}")
        for key in RECORD_KEYS[1:]:
            if not isinstance(record[key], list):
                return DataFormatError(f"{path}: record {position} field {key!r} must be a list, "
                                       f"got {type(record[key]).__name__}")
    raise AssertionError("_record_error found no bad record")


def _check_arrays(path, boxes, box_offsets, labels, label_offsets, relations, rel_offsets) -> None:
    """det_labels as long as bbox; relation box indices within the record's boxes; no negative label or
    predicate. Vocabulary bounds are the dataset's check (``check_vocabulary_fits``)."""
    label_mismatch = np.diff(label_offsets) != np.diff(box_offsets)
    if label_mismatch.any():
        position = int(np.flatnonzero(label_mismatch)[0])
        raise DataFormatError(f"{path}: record {position} field 'det_labels' has {np.diff(label_offsets)[position]} "
                              f"entries but 'bbox' has {np.diff(box_offsets)[position]}")
    record_of_box = np.repeat(np.arange(len(box_offsets) - 1), np.diff(box_offsets))
    if len(labels) and labels.min() < 0:
        position = int(record_of_box[np.flatnonzero(labels < 0)[0]])
        raise DataFormatError(f"{path}: record {position} field 'det_labels' holds a negative class index")
    problem = first_relation_outside_boxes(relations, rel_offsets, np.diff(box_offsets), relations[:, 2] < 0)
    if problem is not None:
        position, entry, row, box_count = problem
        raise DataFormatError(
            f"{path}: record {position} field 'rel' entry {entry} = "
            f"{relations[row].tolist()} needs box indices in [0, {box_count}) and a predicate >= 0"
        )


def check_vocabulary_fits(ann: RecordAnnotations, dict_file: str, vocabulary: RecordVocabulary) -> None:
    """Labels 1..C-1 and predicates 1..P-1 of ``ann`` exist in ``vocabulary``; raises naming the record."""
    checks = (("det_labels", ann.labels, ann.box_offsets, len(vocabulary.ind_to_classes), "obj"),
              ("rel", ann.relations[:, 2], ann.rel_offsets, len(vocabulary.ind_to_predicates), "rel"))
    for field, values, offsets, limit, key in checks:
        too_large = values >= limit
        if too_large.any():
            row = int(np.flatnonzero(too_large)[0])
            position = int(np.searchsorted(offsets, row, side="right") - 1)
            raise DataFormatError(
                f"{ann.ann_file}: record {position} field {field!r} holds index {int(values[row]) - 1}, but "
                f"{dict_file} lists {limit - 1} '{key}' names (0-based indices 0..{limit - 2})"
            )
