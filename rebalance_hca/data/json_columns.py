"""Reading large JSON annotation files into flat arrays, shared by the JSON-based families (Open Images V6,
GQA-200): the parse (``read_json``, with the garbage collector paused), and one column (the values of one field
over all records, in record order) flattened in C into an array plus CSR offsets (``flatten_column``). Only
when a check fails are the records walked one by one, to name the first bad one (``column_error``):
``<file>: record <i> field '<key>' <what is wrong>, got <value>``.
"""
from __future__ import annotations

import array
import contextlib
import gc
import json
import math
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Callable, Iterator, Sequence

import numpy as np

from .files import DataFormatError


@dataclass(frozen=True)
class RecordVocabulary:
    """Index -> name lists with ``__background__`` at 0."""

    ind_to_classes: list[str]
    ind_to_predicates: list[str]


@dataclass(frozen=True)
class RecordAnnotations:
    """One annotation file as flat arrays. I records, N boxes, R relations, in file order (each family's reader
    says how its fields map here).

    image_files: (I,) str; widths, heights: (I,) int64; box_offsets: (I + 1,) int64 CSR offsets into
    boxes/labels; boxes: (N, 4) float64 xyxy in original pixels, as stored; labels: (N,) int64 classes 1..C-1;
    rel_offsets: (I + 1,) int64 CSR offsets into relations; relations: (R, 3) int64 [subject, object (0-based
    box indices within the record), predicate 1..P-1].
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


@contextlib.contextmanager
def garbage_collection_paused() -> Iterator[None]:
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


def read_json(path: str):
    """The parsed file; ``DataFormatError`` naming it when it is not valid JSON (e.g. truncated)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: not valid JSON ({error})") from None


def flatten_column(path: str, column: Sequence[list], key: str, width: int,
                   integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """The lists ``column[i]`` (field ``key`` of record i) flattened (in C: ``map``, ``chain``,
    ``numbers_array``): a (rows, width) array (width 0: the flat (rows,) list itself) and (I + 1,) int64 CSR
    offsets. Inner lists must hold ``width`` numbers; numbers must be integers (``integer``; -> int64) or
    finite (-> float64). A problem is reported by ``column_error``, which alone walks the records one by one."""
    counts = np.fromiter(map(len, column), dtype=np.int64, count=len(column))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    items = list(chain.from_iterable(column))
    kind = "integers" if integer else "finite numbers"
    if width:
        problem = f"entries must be lists of {width} {kind}"
        valid = partial(is_rows, width=width, integer=integer)
        try:  # a number has no len; a string or an object has one, but flattens into non-numbers below
            lengths = np.fromiter(map(len, items), np.int64, len(items))
        except TypeError:
            raise column_error(path, column, key, valid, problem) from None
        if (lengths != width).any():
            raise column_error(path, column, key, valid, problem)
        items = list(chain.from_iterable(items))
    else:
        problem = f"must hold {kind}"
        valid = partial(is_numbers, integer=integer)
    try:
        values = numbers_array(items) if items else np.zeros(0, dtype=np.int64)
    except ValueError:  # numbers mixed with lists (numpy: "inhomogeneous shape")
        raise column_error(path, column, key, valid, problem) from None
    if values.ndim != 1 or values.dtype.kind not in ("i",) + (() if integer else ("f",)) or \
            (values.dtype.kind == "f" and not np.isfinite(values).all()):
        raise column_error(path, column, key, valid, problem)
    values = values.astype(np.int64 if integer else np.float64, copy=False)
    return (values.reshape(-1, width) if width else values), offsets


def numbers_array(items: list) -> np.ndarray:
    """``np.array(items)`` of a flat non-empty list of JSON values, faster when they are all integers: read by
    ``array.array("q")`` in one C pass without numpy's type discovery. The same array: a list that it accepts
    (integers or booleans, all within int64) becomes int64 under ``np.array`` too unless it holds only
    booleans, so only where every value is 0 or 1 does ``np.array`` decide; any other list goes to it."""
    try:
        values = np.frombuffer(array.array("q", items), dtype=np.int64)
    except (TypeError, OverflowError):
        return np.array(items)
    return values if values.min() < 0 or values.max() > 1 else np.array(items)


def is_row(value, width: int, integer: bool, positive: bool = False) -> bool:
    """Whether ``value`` is a list of ``width`` JSON numbers: integers when ``integer``, finite, > 0 when
    ``positive`` (the slow per-record check that names a bad record)."""
    allowed = (int,) if integer else (int, float)
    return (type(value) is list and len(value) == width
            and all(type(v) in allowed and math.isfinite(v) and (v > 0 or not positive) for v in value))


def is_rows(value: list, width: int, integer: bool) -> bool:
    return all(is_row(row, width, integer) for row in value)


def is_numbers(value: list, integer: bool) -> bool:
    return is_row(value, len(value), integer)


def first_relation_outside_boxes(relations: np.ndarray, rel_offsets: np.ndarray, box_counts: np.ndarray,
                                 also_bad: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
    """The first relation row whose subject or object index lies outside its record's boxes (or that
    ``also_bad`` marks), as (record, entry within the record, row, the record's box count); None when every row
    fits. relations: (R, 3); rel_offsets: (I + 1,) CSR offsets; box_counts: (I,); also_bad: (R,) bool."""
    record_of_rel = np.repeat(np.arange(len(rel_offsets) - 1), np.diff(rel_offsets))
    rel_box_count = box_counts[record_of_rel]
    bad = (relations[:, :2] < 0).any(1) | (relations[:, :2] >= rel_box_count[:, None]).any(1)
    if also_bad is not None:
        bad |= also_bad
    if not bad.any():
        return None
    row = int(np.flatnonzero(bad)[0])
    record = int(record_of_rel[row])
    return record, row - int(rel_offsets[record]), row, int(rel_box_count[row])


def column_error(path: str, column: Sequence, key: str, valid: Callable[[object], bool],
                 problem: str) -> DataFormatError:
    """The first record whose ``column[i]`` (its field ``key``) is not ``valid``, named with the value."""
    position = next((position for position, value in enumerate(column) if not valid(value)), None)
    if position is None:  # e.g. integers beyond int64, which every record check accepts
        return DataFormatError(f"{path}: field {key!r} {problem} that fit 64-bit arrays")
    return DataFormatError(f"{path}: record {position} field {key!r} {problem}, got {column[position]!r}")
