"""Reading and validating PySGG's processed Open Images V6 files
(docs/reference.md#oi-vocabularies, #oi-annotation-records).

``annotations/vrd-<split>-anno.json`` is a list of records ``{img_fn, img_size [w, h], bbox [[x1, y1, x2, y2],
...], det_labels [...] (0-based), rel [[s, o, p], ...] (p 0-based)}``; ``annotations/categories_dict.json``
holds the name lists ``obj`` and ``rel``. A file is read once per version into flat arrays (CSR offsets per
record), the nested lists flattened in C (``itertools.chain``), never with a Python loop per box or relation.
Every problem raises ``DataFormatError`` naming the file, the record index and the field.
"""
from __future__ import annotations

import contextlib
import gc
import json
import math
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import chain
from operator import itemgetter
from typing import Iterator

import numpy as np

from ..files import DataFormatError, file_fingerprint, require_file

RECORD_KEYS = ("img_fn", "img_size", "bbox", "det_labels", "rel")
BACKGROUND = "__background__"


@dataclass(frozen=True)
class OIVocabulary:
    """Index -> name lists with ``__background__`` at 0 (PySGG prepends it to ``obj`` and ``rel``)."""

    ind_to_classes: list[str]
    ind_to_predicates: list[str]


@dataclass(frozen=True)
class OIAnnotations:
    """One ``vrd-<split>-anno.json`` as flat arrays. I records, N boxes, R relations, in file order.

    image_files: (I,) str ``img_fn``; widths, heights: (I,) int64 from ``img_size``; box_offsets: (I + 1,)
    int64 CSR offsets into boxes/labels; boxes: (N, 4) float64 xyxy in original pixels, as stored; labels:
    (N,) int64 classes 1..C-1 (``det_labels`` + 1); rel_offsets: (I + 1,) int64 CSR offsets into relations;
    relations: (R, 3) int64 [subject, object (0-based box indices within the record), predicate 1..P-1
    (``rel``'s third column + 1)].
    """

    ann_file: str
    image_files: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    box_offsets: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    rel_offsets: np.ndarray
    relations: np.ndarray


def load_oi_vocabulary(dict_file: str) -> OIVocabulary:
    """Parse ``categories_dict.json`` (lists ``obj`` and ``rel`` of names) and prepend ``__background__``."""
    require_file(dict_file, "Open Images categories_dict.json (dict_file)")
    return _load_vocabulary_cached(*file_fingerprint(dict_file))


@lru_cache(maxsize=4)
def _load_vocabulary_cached(dict_file: str, _size: int, _mtime: int) -> OIVocabulary:
    content = _read_json(dict_file)
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
    return OIVocabulary(ind_to_classes=names["obj"], ind_to_predicates=names["rel"])


def load_oi_annotations(ann_file: str) -> OIAnnotations:
    """Read and check one ``vrd-<split>-anno.json``; cached per file version in this process."""
    require_file(ann_file, "Open Images annotation file (ann_file)")
    return _load_annotations_cached(*file_fingerprint(ann_file))


@lru_cache(maxsize=3)
def _load_annotations_cached(ann_file: str, _size: int, _mtime: int) -> OIAnnotations:
    with _garbage_collection_paused():
        return _parse_annotations(ann_file, _read_json(ann_file))


@contextlib.contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Parsing a 126k-record file allocates millions of lists and ints, and every burst of allocations starts
    a full cyclic-garbage scan of all of them (measured: json.load of the OI-scale train file 3x slower). The
    parse creates no reference cycles, so the collector is paused meanwhile and restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_annotations(ann_file: str, records) -> OIAnnotations:
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
    sizes, size_offsets = _flatten(ann_file, records, columns, "img_size", 0, integer=True)
    if (np.diff(size_offsets) != 2).any() or (sizes <= 0).any():
        raise _field_error(ann_file, records, "img_size", partial(_is_row, width=2, integer=True, positive=True),
                           "must hold 2 positive integers (width, height)")
    boxes, box_offsets = _flatten(ann_file, records, columns, "bbox", 4, integer=False)
    labels, label_offsets = _flatten(ann_file, records, columns, "det_labels", 0, integer=True)
    relations, rel_offsets = _flatten(ann_file, records, columns, "rel", 3, integer=True)
    sizes = sizes.reshape(-1, 2)
    _check_arrays(ann_file, boxes, box_offsets, labels, label_offsets, relations, rel_offsets)
    return OIAnnotations(
        ann_file=ann_file, image_files=np.array(file_names, dtype=str), widths=sizes[:, 0], heights=sizes[:, 1],
        box_offsets=box_offsets, boxes=boxes, labels=labels + 1, rel_offsets=rel_offsets,
        relations=relations + np.array([0, 0, 1]),
    )


_RECORD_FIELDS = itemgetter(*RECORD_KEYS)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: not valid JSON ({error})") from None


def _flatten(path: str, records: list, columns: dict, key: str, width: int,
             integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """``record[key]`` of every record flattened (in C: ``map``, ``chain``, one ``np.array``): a (rows, width)
    array (width 0: the flat (rows,) list itself) and (I + 1,) CSR offsets. Inner lists must hold ``width``
    numbers; numbers must be integers (``integer``) or finite. A problem is reported by ``_field_error``,
    which alone walks the records one by one, to name the first bad one."""
    column = columns[key]
    counts = np.fromiter(map(len, column), dtype=np.int64, count=len(column))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    items = list(chain.from_iterable(column))
    kind = "integers" if integer else "finite numbers"
    if width:
        problem = f"entries must be lists of {width} {kind}"
        valid = partial(_is_rows, width=width, integer=integer)
        try:  # a number has no len; a string or an object has one, but flattens into non-numbers below
            lengths = np.fromiter(map(len, items), np.int64, len(items))
        except TypeError:
            raise _field_error(path, records, key, valid, problem) from None
        if (lengths != width).any():
            raise _field_error(path, records, key, valid, problem)
        items = list(chain.from_iterable(items))
    else:
        problem = f"must hold {kind}"
        valid = partial(_is_numbers, integer=integer)
    values = np.array(items) if items else np.zeros(0, dtype=np.int64)
    if values.ndim != 1 or values.dtype.kind not in ("i",) + (() if integer else ("f",)) or \
            (values.dtype.kind == "f" and not np.isfinite(values).all()):
        raise _field_error(path, records, key, valid, problem)
    values = values.astype(np.int64 if integer else np.float64)
    return (values.reshape(-1, width) if width else values), offsets


def _is_row(value, width: int, integer: bool, positive: bool = False) -> bool:
    """Whether ``value`` is a list of ``width`` JSON numbers: integers when ``integer``, finite, > 0 when
    ``positive`` (the slow per-record check that names a bad record)."""
    allowed = (int,) if integer else (int, float)
    return (type(value) is list and len(value) == width
            and all(type(v) in allowed and math.isfinite(v) and (v > 0 or not positive) for v in value))


def _is_rows(value: list, width: int, integer: bool) -> bool:
    return all(_is_row(row, width, integer) for row in value)


def _is_numbers(value: list, integer: bool) -> bool:
    return _is_row(value, len(value), integer)


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


def _field_error(path: str, records: list, key: str, valid, problem: str) -> DataFormatError:
    """The first record whose ``record[key]`` is not ``valid``, named with the value."""
    position = next((position for position, record in enumerate(records) if not valid(record[key])), None)
    if position is None:  # e.g. integers beyond int64, which every record check accepts
        return DataFormatError(f"{path}: field {key!r} {problem} that fit 64-bit arrays")
    return DataFormatError(f"{path}: record {position} field {key!r} {problem}, got {records[position][key]!r}")


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
    record_of_rel = np.repeat(np.arange(len(rel_offsets) - 1), np.diff(rel_offsets))
    box_count = np.diff(box_offsets)[record_of_rel]
    bad = (relations[:, :2] < 0).any(1) | (relations[:, :2] >= box_count[:, None]).any(1) | (relations[:, 2] < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        position = int(record_of_rel[row])
        raise DataFormatError(
            f"{path}: record {position} field 'rel' entry {row - int(rel_offsets[position])} = "
            f"{relations[row].tolist()} needs box indices in [0, {int(box_count[row])}) and a predicate >= 0"
        )


def check_vocabulary_fits(ann: OIAnnotations, dict_file: str, vocabulary: OIVocabulary) -> None:
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
