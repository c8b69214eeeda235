"""Writing the scene-graph JSON format (docs/data.md#scene-graph-json) from any family's datasets: each image
as its dataset's evaluation-form ground truth gives it (boxes clamped in the original pixel frame, every
relation row in order), so loading the written folder yields the same samples."""
from __future__ import annotations

import json
import os
from typing import Mapping

from ..scene_graph_dataset import SceneGraphDataset
from ..writing import IMAGE_MODES, place_images, shared_vocabulary, source_images, staged_folder
from .files import IMAGE_FOLDER, VOCABULARY_FILE, split_file_name


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
    classes, predicates = shared_vocabulary(splits)
    contents = {split: {"images": image_records(dataset)} for split, dataset in splits.items()}
    with staged_folder(output_folder) as staging:
        _write_json(os.path.join(staging, VOCABULARY_FILE), {"classes": classes[1:], "predicates": predicates[1:]})
        for split, content in contents.items():
            _write_json(os.path.join(staging, split_file_name(split)), content)
        for dataset in splits.values():
            place_images(os.path.join(staging, IMAGE_FOLDER),
                         source_images(dataset, map(dataset.file_name, range(len(dataset)))), images)


def _write_json(path: str, content: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
