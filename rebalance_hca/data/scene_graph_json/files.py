"""Reading and checking the scene-graph JSON format (``schema.json`` beside this module;
docs/data.md#scene-graph-json).

A dataset folder holds ``vocabulary.json`` ({"classes": [...], "predicates": [...]}), one file per split
(``train.json``, ``val.json``, ``test.json``: {"images": [{"file", "width", "height", "objects": [{"box",
"class"}], "relations": [{"subject", "object", "predicate"}]}]}) and ``images/``. Names map to ids by their
position in the vocabulary, from 1; the loader puts ``__background__`` at 0. Every problem raises
``DataFormatError`` naming the file, the image record and the field.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..files import DataFormatError, file_fingerprint, require_file
from ..json_columns import RecordAnnotations, RecordVocabulary, garbage_collection_paused, read_json

BACKGROUND = "__background__"
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.json")
VOCABULARY_FILE = "vocabulary.json"
IMAGE_FOLDER = "images"
VOCABULARY_KEYS = {"classes": "ind_to_classes", "predicates": "ind_to_predicates"}
IMAGE_KEYS = ("file", "width", "height", "objects", "relations")
OBJECT_KEYS = ("box", "class")
RELATION_KEYS = ("subject", "object", "predicate")


def split_file_name(split: str) -> str:
    """The file of one split in a dataset folder: ``<split>.json``."""
    return f"{split}.json"


def load_json_vocabulary(vocabulary_file: str) -> RecordVocabulary:
    """``vocabulary.json``'s class and predicate names, ``__background__`` put first."""
    require_file(vocabulary_file, "scene-graph JSON vocabulary (vocabulary.json)")
    return _load_vocabulary_cached(*file_fingerprint(vocabulary_file))


@lru_cache(maxsize=4)
def _load_vocabulary_cached(vocabulary_file: str, _size: int, _mtime: int) -> RecordVocabulary:
    content = read_json(vocabulary_file)
    if not isinstance(content, dict):
        raise DataFormatError(f"{vocabulary_file}: expected a JSON object with lists {list(VOCABULARY_KEYS)}, "
                              f"got {type(content).__name__}")
    names = {}
    for key, attribute in VOCABULARY_KEYS.items():
        if key not in content:
            raise DataFormatError(f"{vocabulary_file}: missing key {key!r}")
        values = content[key]
        if not isinstance(values, list) or not values:
            raise DataFormatError(f"{vocabulary_file}: field {key!r} must be a non-empty list of names")
        for position, value in enumerate(values):
            if not isinstance(value, str) or not value or value == BACKGROUND:
                raise DataFormatError(f"{vocabulary_file}: field {key!r} entry {position} must be a non-empty name "
                                      f"other than {BACKGROUND!r} (the loader adds it), got {value!r}")
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise DataFormatError(f"{vocabulary_file}: field {key!r} repeats the name(s) {repeated}")
        names[attribute] = [BACKGROUND, *values]
    return RecordVocabulary(**names)


@dataclass(frozen=True)
class JSONAnnotations(RecordAnnotations):
    """One split file as ``RecordAnnotations``: ``file`` as image_files, ``width``, ``height``, the objects'
    ``box`` and ``class`` (as ids) as boxes and labels, the relations as [subject, object, predicate id]."""


def load_json_split(split_file: str, vocabulary_file: str) -> JSONAnnotations:
    """Read and check one split file against the vocabulary. Cached per file version in this process."""
    require_file(split_file, "scene-graph JSON split file")
    vocabulary = load_json_vocabulary(vocabulary_file)
    return _load_split_cached(*file_fingerprint(split_file), vocabulary_file, tuple(vocabulary.ind_to_classes),
                              tuple(vocabulary.ind_to_predicates))


@lru_cache(maxsize=3)
def _load_split_cached(split_file: str, _size: int, _mtime: int, vocabulary_file: str,
                       classes: tuple[str, ...], predicates: tuple[str, ...]) -> JSONAnnotations:
    with garbage_collection_paused():
        content = read_json(split_file)
    return parse_split(split_file, content, vocabulary_file, list(classes), list(predicates))


def parse_split(split_file: str, content, vocabulary_file: str, ind_to_classes: list[str],
                ind_to_predicates: list[str]) -> JSONAnnotations:
    """The parsed content of ``split_file`` as flat arrays; ids from the vocabulary's lists (background at 0)."""
    if not isinstance(content, dict) or not isinstance(content.get("images"), list):
        raise DataFormatError(f"{split_file}: expected a JSON object whose field 'images' is a list of images")
    class_ids = {name: index for index, name in enumerate(ind_to_classes) if index}
    predicate_ids = {name: index for index, name in enumerate(ind_to_predicates) if index}
    files, sizes, boxes, labels, relations = [], [], [], [], []
    box_counts, rel_counts = [], []
    for position, image in enumerate(content["images"]):
        where = f"{split_file}: image {position}"
        _require_keys(where, image, IMAGE_KEYS)
        if not isinstance(image["file"], str) or not image["file"]:
            raise DataFormatError(f"{where} field 'file' must be a non-empty string, got {image['file']!r}")
        for key in ("width", "height"):
            if type(image[key]) is not int or image[key] <= 0:
                raise DataFormatError(f"{where} field {key!r} must be a positive integer, got {image[key]!r}")
        for key in ("objects", "relations"):
            if not isinstance(image[key], list):
                raise DataFormatError(f"{where} field {key!r} must be a list, got {type(image[key]).__name__}")
        files.append(image["file"])
        sizes.append((image["width"], image["height"]))
        for index, item in enumerate(image["objects"]):
            boxes.append(_box(f"{where} object {index}", item))
            labels.append(_name_id(f"{where} object {index}", item["class"], "class", class_ids, vocabulary_file,
                                   "classes"))
        for index, item in enumerate(image["relations"]):
            relations.append(_relation(f"{where} relation {index}", item, len(image["objects"]), predicate_ids,
                                       vocabulary_file))
        box_counts.append(len(image["objects"]))
        rel_counts.append(len(image["relations"]))
    size_table = np.array(sizes, dtype=np.int64).reshape(-1, 2)
    return JSONAnnotations(
        ann_file=split_file, image_files=np.array(files, dtype=str), widths=size_table[:, 0],
        heights=size_table[:, 1], box_offsets=_offsets(box_counts),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4), labels=np.array(labels, dtype=np.int64),
        rel_offsets=_offsets(rel_counts), relations=np.array(relations, dtype=np.int64).reshape(-1, 3),
    )


def _offsets(counts: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def _require_keys(where: str, item, keys: tuple[str, ...]) -> None:
    if not isinstance(item, dict):
        raise DataFormatError(f"{where} must be a JSON object with keys {list(keys)}, got {type(item).__name__}")
    missing = [key for key in keys if key not in item]
    if missing:
        raise DataFormatError(f"{where} is missing key(s) {missing}")


def _box(where: str, item) -> list[float]:
    _require_keys(where, item, OBJECT_KEYS)
    box = item["box"]
    if not (isinstance(box, list) and len(box) == 4 and all(type(v) in (int, float) and math.isfinite(v)
                                                            for v in box)):
        raise DataFormatError(f"{where} field 'box' must be [x1, y1, x2, y2], 4 finite numbers, got {box!r}")
    if box[2] < box[0] or box[3] < box[1]:
        raise DataFormatError(f"{where} field 'box' must have x1 <= x2 and y1 <= y2, got {box!r}")
    return [float(v) for v in box]


def _name_id(where: str, name, field: str, ids: dict[str, int], vocabulary_file: str, vocabulary_key: str) -> int:
    if name not in ids:
        raise DataFormatError(f"{where} field {field!r}: {name!r} is not a name of {vocabulary_file} field "
                              f"{vocabulary_key!r} ({len(ids)} names)")
    return ids[name]


def _relation(where: str, item, num_objects: int, predicate_ids: dict[str, int], vocabulary_file: str) -> list[int]:
    _require_keys(where, item, RELATION_KEYS)
    for key in ("subject", "object"):
        value = item[key]
        if type(value) is not int or not 0 <= value < num_objects:
            raise DataFormatError(f"{where} field {key!r} must be an object index in [0, {num_objects}), "
                                  f"got {value!r}")
    return [item["subject"], item["object"],
            _name_id(where, item["predicate"], "predicate", predicate_ids, vocabulary_file, "predicates")]
