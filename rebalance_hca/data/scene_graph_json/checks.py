"""Checks of a scene-graph JSON dataset before training (tools/check_dataset.py; docs/data.md#scene-graph-json):
every problem found, one line each, naming the file, the image, object or relation index and the field. The
loader stops at the first format error; these walk every record and also report what loads but is wrong:
boxes out of the image or of zero area, duplicate objects, missing image files, classes seen only in val/test.
"""
from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

from ..files import DataFormatError
from ..json_columns import read_json
from .family import JSON_PREFIX, parse_json_name
from .files import (BACKGROUND, IMAGE_FOLDER, IMAGE_KEYS, OBJECT_KEYS, RELATION_KEYS, VOCABULARY_FILE,
                    load_json_vocabulary, split_file_name)

CHECKED_SPLITS = ("train", "val", "test")


def json_folders(dataset_names: Sequence[str], data_root: str) -> list[str]:
    """The distinct dataset folders of the scene-graph JSON names among ``dataset_names``, in order."""
    folders = [os.path.join(data_root, parse_json_name(name)[0]) for name in dataset_names
               if name.startswith(JSON_PREFIX)]
    return list(dict.fromkeys(folders))


def json_dataset_problems(folder: str) -> list[str]:
    """Every problem of the dataset folder ``folder`` (its vocabulary and the split files present)."""
    vocabulary_file = os.path.join(folder, VOCABULARY_FILE)
    try:
        vocabulary = load_json_vocabulary(vocabulary_file)
    except DataFormatError as error:
        return [str(error)]
    classes = set(vocabulary.ind_to_classes) - {BACKGROUND}
    predicates = set(vocabulary.ind_to_predicates) - {BACKGROUND}
    problems, classes_seen = [], {}
    for split in CHECKED_SPLITS:
        split_file = os.path.join(folder, split_file_name(split))
        if not os.path.isfile(split_file):
            problems.append(f"{split_file}: missing ({split} split)")
            continue
        try:
            content = read_json(split_file)
        except DataFormatError as error:
            problems.append(str(error))
            continue
        if not isinstance(content, dict) or not isinstance(content.get("images"), list):
            problems.append(f"{split_file}: expected a JSON object whose field 'images' is a list of images")
            continue
        seen = classes_seen.setdefault(split, {})
        for position, image in enumerate(content["images"]):
            where = f"{split_file}: image {position}"
            problems += _image_problems(where, image, os.path.join(folder, IMAGE_FOLDER), classes, predicates,
                                        seen)
    train_classes = classes_seen.get("train", {})
    for split in CHECKED_SPLITS[1:]:
        for name, first_use in classes_seen.get(split, {}).items():
            if name not in train_classes:
                problems.append(f"{first_use} field 'class': {name!r} appears in {split} but never in train")
    return problems


def _keys_problem(where: str, item, keys: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return f"{where} must be a JSON object with keys {list(keys)}, got {type(item).__name__}"
    missing = [key for key in keys if key not in item]
    return f"{where} is missing key(s) {missing}" if missing else None


def _entries(where: str, image: dict, field: str, entry_name: str, keys: tuple[str, ...],
             problems: list[str]) -> Iterator[tuple[int, str, dict]]:
    """(index, its name for messages, entry) of the entries of ``image[field]`` that are objects with ``keys``;
    the problems of the others are appended to ``problems``."""
    if not isinstance(image[field], list):
        problems.append(f"{where} field {field!r} must be a list")
        return
    for index, item in enumerate(image[field]):
        entry_where = f"{where} {entry_name} {index}"
        problem = _keys_problem(entry_where, item, keys)
        if problem:
            problems.append(problem)
        else:
            yield index, entry_where, item


def _image_problems(where: str, image, image_dir: str, classes: set[str], predicates: set[str],
                    classes_seen: dict[str, str]) -> list[str]:
    problem = _keys_problem(where, image, IMAGE_KEYS)
    if problem:
        return [problem]
    problems = []
    width, height = image["width"], image["height"]
    sized = all(type(value) is int and value > 0 for value in (width, height))
    if not sized:
        problems.append(f"{where} fields 'width' and 'height' must be positive integers, got {width!r}, {height!r}")
    if not isinstance(image["file"], str) or not image["file"]:
        problems.append(f"{where} field 'file' must be a non-empty string, got {image['file']!r}")
    elif not os.path.isfile(os.path.join(image_dir, image["file"])):
        problems.append(f"{where} field 'file': image not found: {os.path.join(image_dir, image['file'])}")
    objects = image["objects"] if isinstance(image["objects"], list) else []
    first_of = {}
    for index, object_where, item in _entries(where, image, "objects", "object", OBJECT_KEYS, problems):
        if item["class"] not in classes:
            problems.append(f"{object_where} field 'class': {item['class']!r} is not a name of the vocabulary")
        elif isinstance(item["class"], str):
            classes_seen.setdefault(item["class"], object_where)
        box = item["box"]
        if not (isinstance(box, list) and len(box) == 4 and all(type(v) in (int, float) and math.isfinite(v)
                                                                for v in box)):
            problems.append(f"{object_where} field 'box' must be [x1, y1, x2, y2], 4 finite numbers, got {box!r}")
            continue
        x1, y1, x2, y2 = box
        if x2 <= x1 or y2 <= y1:
            problems.append(f"{object_where} field 'box' has zero or negative area: {box}")
        if sized and (x1 < 0 or y1 < 0 or x2 > width or y2 > height):
            problems.append(f"{object_where} field 'box' {box} lies outside the {width}x{height} image")
        key = (str(item["class"]), tuple(box))
        if key in first_of:
            problems.append(f"{object_where} duplicates object {first_of[key]} (same class and box)")
        first_of.setdefault(key, index)
    for _, relation_where, item in _entries(where, image, "relations", "relation", RELATION_KEYS, problems):
        for key in ("subject", "object"):
            if type(item[key]) is not int or not 0 <= item[key] < len(objects):
                problems.append(f"{relation_where} field {key!r}: object {item[key]!r} does not exist "
                                f"(the image has {len(objects)} objects)")
        if item["predicate"] not in predicates:
            problems.append(f"{relation_where} field 'predicate': {item['predicate']!r} is not a name of the "
                            f"vocabulary")
    return problems
