"""Writing SHA-GCL's GQA-200 layout (docs/data.md#gqa-200) byte-for-byte reproducibly (SynthVG writes through
here), and any family's splits in it (``write_gqa_dataset``, docs/data.md#converting-between-families):

    <data root>/gqa/
        images/<file name>
        GQA_200_ID_Info.json, GQA_200_Train.json, GQA_200_Test.json

A file holds five parallel lists, classes and predicates 1-based as stored, pixel boxes xyxy as stored,
``img_info`` with the image id (the file name without its extension), width and height. SHA-GCL's val is the
first DATASETS.NUM_VAL_IM usable records of the test file, and its loader skips the test file's record 5580.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from ..scene_graph_dataset import SceneGraphDataset
from ..writing import (SplitSamples, WrittenDataset, catalog_overrides, concatenate_samples, json_boxes,
                       place_images, require_images_kept, shared_vocabulary, source_images, split_samples,
                       staged_folder, write_json)
from .dataset import SKIPPED_TEST_RECORD
from .files import BACKGROUND, FILE_KEYS, GQA_FILES, GQA_FOLDER

# What the converter writes at the test file's record SHA-GCL skips (read as empty, whatever it holds).
PLACEHOLDER_RECORD = ("skipped_record.jpg", {"image_id": "skipped_record", "width": 1, "height": 1}, [], [], [])


def gqa_file_content(samples: SplitSamples) -> dict:
    """The five parallel lists of one GQA-200 annotation file, one entry per image of ``samples``."""
    box_offsets, rel_offsets = samples.box_offsets(), samples.rel_offsets()
    boxes, labels, relations = json_boxes(samples.boxes), samples.labels.tolist(), samples.relations.tolist()
    count = len(samples.file_names)
    return {
        "filenames_all": list(samples.file_names),
        "img_info_all": [{"image_id": os.path.splitext(name)[0], "width": width, "height": height}
                         for name, width, height in zip(samples.file_names, samples.widths.tolist(),
                                                        samples.heights.tolist())],
        "gt_boxes_all": [boxes[box_offsets[i]:box_offsets[i + 1]] for i in range(count)],
        "gt_classes_all": [labels[box_offsets[i]:box_offsets[i + 1]] for i in range(count)],
        "relationships_all": [relations[rel_offsets[i]:rel_offsets[i + 1]] for i in range(count)],
    }


def with_placeholder(content: dict, position: int = SKIPPED_TEST_RECORD) -> dict:
    """``content`` (the five lists) with ``PLACEHOLDER_RECORD`` inserted at ``position`` when the file reaches
    it, so that SHA-GCL's skip of that record leaves every written image in place."""
    if len(content[FILE_KEYS[0]]) < position:
        return content
    return {key: column[:position] + [value] + column[position:]
            for (key, column), value in zip(((key, content[key]) for key in FILE_KEYS), PLACEHOLDER_RECORD)}


def write_gqa_annotation_files(folder: str, train: SplitSamples, test: SplitSamples, object_names: Sequence[str],
                               predicate_names: Sequence[str], skip_placeholder: bool = False) -> None:
    """The vocabulary (names in id order 1.., background prepended) and the train and test files under
    ``folder``; val is the loader's prefix of the test file. ``skip_placeholder``: insert ``PLACEHOLDER_RECORD``
    where the loader skips a test record."""
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, GQA_FILES["dict_file"]),
               {"ind_to_classes": [BACKGROUND, *object_names], "ind_to_predicates": [BACKGROUND, *predicate_names]})
    write_json(os.path.join(folder, GQA_FILES["train_file"]), gqa_file_content(train))
    test_content = gqa_file_content(test)
    write_json(os.path.join(folder, GQA_FILES["test_file"]),
               with_placeholder(test_content) if skip_placeholder else test_content)


def _starts_with(test: SplitSamples, val: SplitSamples) -> bool:
    """Whether ``test``'s first images are exactly ``val``'s (names, sizes, boxes, labels, relations)."""
    count = len(val.file_names)
    if count > len(test.file_names):
        return False
    prefix = test.take(np.arange(count))
    return (prefix.file_names == val.file_names and all(
        np.array_equal(getattr(prefix, field), getattr(val, field))
        for field in ("widths", "heights", "box_counts", "boxes", "labels", "rel_counts", "relations")))


def write_gqa_dataset(data_root: str, datasets: Mapping[str, SceneGraphDataset], images: str,
                      names: Mapping[str, str]) -> WrittenDataset:
    """Write ``datasets`` (train, val, test of any family, built without duplicate filtering) as
    ``<data_root>/gqa/`` (``data_root`` must not exist; nothing is written on error) and return what loads it
    (``names``: split -> catalog name; DATASETS.NUM_VAL_IM = the val images). The test file is the test split
    when val is its beginning (as in GQA-200), else val followed by test (SHA-GCL reads val from the test file's
    start; a note says so). An image without an object or a relation raises (the loader drops those)."""
    classes, predicates = shared_vocabulary(datasets)
    samples = {split: split_samples(datasets[split]) for split in ("train", "val", "test")}
    for split, part in samples.items():
        require_images_kept(part, split, "GQA-200", need_relation=True)
    val, test = samples["val"], samples["test"]
    val_in_test = _starts_with(test, val)
    test_file = test if val_in_test else concatenate_samples([val, test])
    with staged_folder(data_root) as staging:
        folder = os.path.join(staging, GQA_FOLDER)
        write_gqa_annotation_files(folder, samples["train"], test_file, classes[1:], predicates[1:],
                                   skip_placeholder=True)
        for split in ("train", "val", "test"):
            place_images(os.path.join(folder, GQA_FILES["img_dir"]),
                         source_images(datasets[split], samples[split].file_names), images)
    notes = [] if val_in_test else [
        f"GQA-200 reads val from the start of the test file: GQA_200_test = the {len(val.file_names)} val images "
        f"followed by the {len(test.file_names)} test images (the source's test split is GQA_200_test from "
        f"position {len(val.file_names)} on)"]
    if len(test_file.file_names) >= SKIPPED_TEST_RECORD:
        notes.append(f"a placeholder record sits at the test file's position {SKIPPED_TEST_RECORD}, which "
                     f"SHA-GCL's loader skips")
    return WrittenDataset(overrides=catalog_overrides(data_root, names, "DATASETS.NUM_VAL_IM",
                                                      str(len(val.file_names))), notes=tuple(notes))
