"""Reading and validating SHA-GCL's GQA-200 release (docs/data.md#gqa-200).

``GQA_200_ID_Info.json`` is an object whose lists ``ind_to_classes`` and ``ind_to_predicates`` name the ids,
``__background__`` at 0 (201 and 101 names in the release). ``GQA_200_Train.json`` and ``GQA_200_Test.json``
are objects of five parallel lists, one entry per image: ``filenames_all`` (file name in ``images/``),
``img_info_all`` ({"width", "height", ...}), ``gt_boxes_all`` ([[x1, y1, x2, y2], ...] in original pixels),
``gt_classes_all`` ([class 1..200, ...]) and ``relationships_all`` ([[subject, object, predicate], ...]: box
indices 0-based within the image, predicate 1..100). A file is read once per version into flat arrays (CSR
offsets per record): the three number fields tokenised straight from the file's bytes into arrays
(``json_number_arrays``), or, when the file is outside what that reader accepts, parsed by ``json`` and
flattened in C (``json_columns``); every problem raises ``DataFormatError`` naming the file, the record and
the field.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter

import numpy as np

from ..files import DataFormatError, file_fingerprint, require_file
from ..json_columns import (RecordAnnotations, RecordVocabulary, first_relation_outside_boxes, flatten_column,
                            garbage_collection_paused, read_json)
from ..json_number_arrays import NumberArrayShape, NumberColumn, read_json_object_with_number_arrays

BACKGROUND = "__background__"
# SHA-GCL's files: the folder under the data root, and the files in it.
GQA_FOLDER = "gqa"
GQA_FILES = {
    "img_dir": "images",
    "dict_file": "GQA_200_ID_Info.json",
    "train_file": "GQA_200_Train.json",
    "test_file": "GQA_200_Test.json",
}
VOCABULARY_KEYS = ("ind_to_classes", "ind_to_predicates")
FILE_KEYS = ("filenames_all", "img_info_all", "gt_boxes_all", "gt_classes_all", "relationships_all")
SIZE_KEYS = ("width", "height")
NUMBER_FIELDS = {"gt_boxes_all": NumberArrayShape(width=4, integer=False),
                 "gt_classes_all": NumberArrayShape(width=0, integer=True),
                 "relationships_all": NumberArrayShape(width=3, integer=True)}


@dataclass(frozen=True)
class GQAAnnotations(RecordAnnotations):
    """One GQA-200 annotation file as ``RecordAnnotations`` (all records of the file): ``filenames_all`` as
    image_files, ``img_info_all``'s width and height, ``gt_boxes_all`` as boxes, ``gt_classes_all`` as labels,
    ``relationships_all`` as relations, all as stored. ignored_record: the position of a record read as empty,
    unchecked (the test file's record SHA-GCL skips, whatever it holds), or -1."""

    ignored_record: int = -1


def load_gqa_vocabulary(dict_file: str) -> RecordVocabulary:
    """Parse ``GQA_200_ID_Info.json``'s ``ind_to_classes`` and ``ind_to_predicates`` (its other keys are
    not read, as SHA-GCL reads none)."""
    require_file(dict_file, "GQA-200 vocabulary GQA_200_ID_Info.json (dict_file)")
    return _load_vocabulary_cached(*file_fingerprint(dict_file))


@lru_cache(maxsize=4)
def _load_vocabulary_cached(dict_file: str, _size: int, _mtime: int) -> RecordVocabulary:
    content = read_json(dict_file)
    if not isinstance(content, dict):
        raise DataFormatError(f"{dict_file}: expected a JSON object with lists {list(VOCABULARY_KEYS)}, "
                              f"got {type(content).__name__}")
    names = {}
    for key in VOCABULARY_KEYS:
        if key not in content:
            raise DataFormatError(f"{dict_file}: missing key {key!r}")
        values = content[key]
        if not isinstance(values, list) or len(values) < 2 or not all(isinstance(v, str) and v for v in values):
            raise DataFormatError(f"{dict_file}: field {key!r} must be a list of at least 2 names "
                                  f"({BACKGROUND!r} first)")
        if values[0] != BACKGROUND:
            raise DataFormatError(f"{dict_file}: field {key!r} must start with {BACKGROUND!r}, got {values[0]!r}")
        if len(set(values)) != len(values):
            raise DataFormatError(f"{dict_file}: field {key!r} repeats a name")
        names[key] = list(values)
    return RecordVocabulary(ind_to_classes=names["ind_to_classes"], ind_to_predicates=names["ind_to_predicates"])


def load_gqa_annotations(ann_file: str, ignored_record: int = -1) -> GQAAnnotations:
    """Read and check one GQA-200 annotation file; ``ignored_record``: a record position read as an empty
    record without any check (-1: none). Cached per file version in this process."""
    require_file(ann_file, "GQA-200 annotation file")
    return _load_annotations_cached(*file_fingerprint(ann_file), ignored_record)


@lru_cache(maxsize=3)
def _load_annotations_cached(ann_file: str, _size: int, _mtime: int, ignored_record: int) -> GQAAnnotations:
    with garbage_collection_paused():
        content = read_json_object_with_number_arrays(ann_file, NUMBER_FIELDS)
        return _parse_annotations(ann_file, read_json(ann_file) if content is None else content, ignored_record)


def _parse_annotations(ann_file: str, content, ignored_record: int) -> GQAAnnotations:
    columns = _columns(ann_file, content)
    num_records = len(columns["filenames_all"])
    if 0 <= ignored_record < num_records:
        empty = {"filenames_all": "ignored", "img_info_all": dict.fromkeys(SIZE_KEYS, 1)}
        columns = {key: _with_record_replaced(column, ignored_record, empty.get(key, []))
                   for key, column in columns.items()}
    file_names = columns["filenames_all"]
    if set(map(type, file_names)) - {str} or (file_names and min(map(len, file_names)) == 0):
        position = next(i for i, name in enumerate(file_names) if not isinstance(name, str) or not name)
        raise DataFormatError(f"{ann_file}: record {position} field 'filenames_all' must be a non-empty string, "
                              f"got {file_names[position]!r}")
    widths, heights = _image_sizes(ann_file, columns["img_info_all"])
    for key in NUMBER_FIELDS:
        if not isinstance(columns[key], NumberColumn) and set(map(type, columns[key])) - {list}:
            position = next(i for i, value in enumerate(columns[key]) if type(value) is not list)
            raise DataFormatError(f"{ann_file}: record {position} field {key!r} must be a list, "
                                  f"got {type(columns[key][position]).__name__}")
    (boxes, box_offsets), (labels, label_offsets), (relations, rel_offsets) = (
        (columns[key].values, columns[key].offsets) if isinstance(columns[key], NumberColumn) else
        flatten_column(ann_file, columns[key], key, shape.width, shape.integer) for key, shape in NUMBER_FIELDS.items())
    _check_arrays(ann_file, box_offsets, label_offsets, relations, rel_offsets)
    return GQAAnnotations(
        ann_file=ann_file, image_files=np.array(file_names, dtype=str), widths=widths, heights=heights,
        box_offsets=box_offsets, boxes=boxes.reshape(-1, 4), labels=labels, rel_offsets=rel_offsets,
        relations=relations.reshape(-1, 3), ignored_record=ignored_record,
    )


def _with_record_replaced(column: list | NumberColumn, record: int, value) -> list | NumberColumn:
    """``column`` with entry ``record`` replaced by ``value`` (a ``NumberColumn``: with that record emptied)."""
    if isinstance(column, NumberColumn):
        return column.with_record_emptied(record)
    column = list(column)
    column[record] = value
    return column


def _columns(ann_file: str, content) -> dict[str, list | NumberColumn]:
    """The five parallel lists (or number fields read into arrays), checked to be lists of one length."""
    if not isinstance(content, dict):
        raise DataFormatError(f"{ann_file}: expected a JSON object with lists {list(FILE_KEYS)}, "
                              f"got {type(content).__name__}")
    missing = [key for key in FILE_KEYS if key not in content]
    if missing:
        raise DataFormatError(f"{ann_file}: missing key(s) {missing}")
    for key in FILE_KEYS:
        if not isinstance(content[key], (list, NumberColumn)):
            raise DataFormatError(f"{ann_file}: field {key!r} must be a list (one entry per image), "
                                  f"got {type(content[key]).__name__}")
    lengths = {key: len(content[key]) for key in FILE_KEYS}
    if len(set(lengths.values())) > 1:
        raise DataFormatError(f"{ann_file}: the per-image lists differ in length: {lengths}")
    return {key: content[key] for key in FILE_KEYS}


def _image_sizes(ann_file: str, infos: list) -> tuple[np.ndarray, np.ndarray]:
    """(widths, heights), each (I,) int64, from the ``img_info_all`` objects: positive integers."""
    try:
        sizes = list(map(itemgetter(*SIZE_KEYS), infos))
        if set(map(type, chain.from_iterable(sizes))) - {int}:
            raise TypeError
        table = np.array(sizes, dtype=np.int64).reshape(-1, 2)
        if (table <= 0).any():
            raise TypeError
    except (KeyError, TypeError, OverflowError, ValueError):
        position, info = next((i, info) for i, info in enumerate(infos) if not _is_size_info(info))
        raise DataFormatError(f"{ann_file}: record {position} field 'img_info_all' must be an object with "
                              f"positive integers 'width' and 'height', got {info!r}") from None
    return table[:, 0], table[:, 1]


def _is_size_info(info) -> bool:
    return isinstance(info, dict) and all(type(info.get(key)) is int and 0 < info[key] < 2 ** 63
                                          for key in SIZE_KEYS)


def _check_arrays(path: str, box_offsets: np.ndarray, label_offsets: np.ndarray, relations: np.ndarray,
                  rel_offsets: np.ndarray) -> None:
    """As many classes as boxes per record; relation box indices within the record's boxes. Vocabulary bounds
    are the dataset's check (``check_vocabulary_fits``)."""
    box_counts, label_counts = np.diff(box_offsets), np.diff(label_offsets)
    mismatch = label_counts != box_counts
    if mismatch.any():
        position = int(np.flatnonzero(mismatch)[0])
        raise DataFormatError(f"{path}: record {position} field 'gt_classes_all' has {label_counts[position]} "
                              f"entries but 'gt_boxes_all' has {box_counts[position]}")
    problem = first_relation_outside_boxes(relations, rel_offsets, box_counts)
    if problem is not None:
        position, entry, row, box_count = problem
        raise DataFormatError(f"{path}: record {position} field 'relationships_all' entry {entry} = "
                              f"{relations[row].tolist()} needs box indices in [0, {box_count})")


def check_vocabulary_fits(ann: GQAAnnotations, dict_file: str, vocabulary: RecordVocabulary) -> None:
    """Classes 1..C-1 and predicates 1..P-1 of ``ann`` within ``vocabulary``'s lists; raises naming the record
    and the vocabulary's size."""
    checks = (("gt_classes_all", ann.labels, ann.box_offsets, len(vocabulary.ind_to_classes), "ind_to_classes"),
              ("relationships_all", ann.relations[:, 2], ann.rel_offsets, len(vocabulary.ind_to_predicates),
               "ind_to_predicates"))
    for field, values, offsets, size, key in checks:
        outside = (values < 1) | (values >= size)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            position = int(np.searchsorted(offsets, row, side="right") - 1)
            raise DataFormatError(
                f"{ann.ann_file}: record {position} field {field!r} holds id {int(values[row])}, but {dict_file} "
                f"field {key!r} has {size} names (ids 1..{size - 1}; 0 is {BACKGROUND!r})"
            )
