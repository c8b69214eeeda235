"""Writing the scene-graph JSON format (docs/data.md#scene-graph-json) from any family's datasets: each image
as its dataset's evaluation-form ground truth gives it (boxes clamped in the original pixel frame, every
relation row in order), so loading the written folder yields the same samples."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Mapping

from ..files import DataFormatError
from ..scene_graph_dataset import SceneGraphDataset
from .files import IMAGE_FOLDER, VOCABULARY_FILE, split_file_name

IMAGE_MODES = ("link", "copy", "none")


def image_records(dataset: SceneGraphDataset) -> list[dict]:
    """Every image of ``dataset`` as a split file's image entry (``schema.json``'s Image), in dataset order.
    The dataset should be built without duplicate filtering, so that every relation row is written."""
    records = []
    for index in range(len(dataset)):
        target = dataset.get_groundtruth(index, evaluation=True)
        records.append({
            "file": dataset.file_name(index),
            "width": int(dataset.widths[index]),
            "height": int(dataset.heights[index]),
            "objects": [{"box": box, "class": dataset.ind_to_classes[label]}
                        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist())],
            "relations": [{"subject": subject, "object": obj, "predicate": dataset.ind_to_predicates[predicate]}
                          for subject, obj, predicate in target["relation_tuple"].tolist()],
        })
    return records


def write_json_dataset(output_folder: str, splits: Mapping[str, SceneGraphDataset], images: str = "link") -> None:
    """Write ``vocabulary.json``, ``<split>.json`` per entry of ``splits`` and ``images/`` (``images``: "link"
    symlinks each image, "copy" copies it, "none" writes no images) into ``output_folder``, which must not
    exist yet. Everything is read first and written into a staging folder renamed at the end: on any error
    nothing is left behind."""
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    if os.path.exists(output_folder):
        raise DataFormatError(f"output folder already exists: {output_folder}")
    vocabularies = {(tuple(ds.ind_to_classes), tuple(ds.ind_to_predicates)) for ds in splits.values()}
    if len(vocabularies) != 1:
        raise DataFormatError(f"the splits {sorted(splits)} do not share one vocabulary")
    classes, predicates = vocabularies.pop()
    contents = {split: {"images": image_records(dataset)} for split, dataset in splits.items()}
    parent = os.path.dirname(os.path.abspath(output_folder))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".converting-", dir=parent)
    try:
        _write_json(os.path.join(staging, VOCABULARY_FILE),
                    {"classes": list(classes[1:]), "predicates": list(predicates[1:])})
        for split, content in contents.items():
            _write_json(os.path.join(staging, split_file_name(split)), content)
        os.makedirs(os.path.join(staging, IMAGE_FOLDER))
        if images != "none":
            for dataset in splits.values():
                _place_images(dataset, os.path.join(staging, IMAGE_FOLDER), images)
        os.rename(staging, output_folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_json(path: str, content: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle)


def _place_images(dataset: SceneGraphDataset, image_folder: str, mode: str) -> None:
    for index in range(len(dataset)):
        source, target = dataset.image_path(index), os.path.join(image_folder, dataset.file_name(index))
        if os.path.lexists(target):
            continue
        if not os.path.isfile(source):
            raise DataFormatError(f"image listed in {dataset.SIZE_SOURCE} is missing: {source}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if mode == "link":
            os.symlink(os.path.abspath(source), target)
        else:
            shutil.copyfile(source, target)
