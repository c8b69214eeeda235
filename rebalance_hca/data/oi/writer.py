"""Writing PySGG's processed Open Images V6 layout (docs/reference.md#open-images-v6) byte-for-byte reproducibly
(SynthVG writes through here), and any family's splits in it (``write_oi_dataset``,
docs/data.md#converting-between-families):

    <data root>/openimages/open_image_v6/
        images/<img_fn>.jpg
        annotations/vrd-{train,val,test}-anno.json, annotations/categories_dict.json

Records hold 0-based ``det_labels`` and predicates (the loader adds 1), pixel boxes as stored, ``img_size`` width
first; ``img_fn`` is the file name without its ``.jpg``.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from ..family import SPLITS
from ..scene_graph_dataset import SceneGraphDataset
from ..writing import (SplitSamples, WrittenDataset, catalog_overrides, json_boxes, place_images,
                       require_images_kept, shared_vocabulary, source_images, split_samples, staged_folder,
                       write_json)
from .files import (CATEGORIES_FILE_NAME, IMAGE_SUFFIX, OI_ANNOTATION_FOLDER, OI_FOLDER, OI_IMAGE_FOLDER,
                    annotation_file_name)


def oi_records(samples: SplitSamples) -> list[dict]:
    """The ``vrd-<split>-anno.json`` list: one record per image (file names end in ``.jpg``), labels and
    predicates made 0-based."""
    box_offsets, rel_offsets = samples.box_offsets(), samples.rel_offsets()
    boxes = json_boxes(samples.boxes)
    labels = (samples.labels - 1).tolist()
    relations = (samples.relations - np.array([0, 0, 1])).tolist()
    return [{"img_fn": name[:-len(IMAGE_SUFFIX)], "img_size": [int(width), int(height)],
             "bbox": boxes[box_offsets[i]:box_offsets[i + 1]], "det_labels": labels[box_offsets[i]:box_offsets[i + 1]],
             "rel": relations[rel_offsets[i]:rel_offsets[i + 1]]}
            for i, (name, width, height) in enumerate(zip(samples.file_names, samples.widths, samples.heights))]


def write_oi_annotation_files(folder: str, splits: Mapping[str, SplitSamples], object_names: Sequence[str],
                              predicate_names: Sequence[str]) -> None:
    """``annotations/`` under ``folder``: the three record files and ``categories_dict.json`` (names in id
    order 1.., without background)."""
    annotations = os.path.join(folder, OI_ANNOTATION_FOLDER)
    os.makedirs(annotations, exist_ok=True)
    write_json(os.path.join(annotations, CATEGORIES_FILE_NAME), {"obj": list(object_names),
                                                                "rel": list(predicate_names)})
    for split in SPLITS:
        write_json(os.path.join(annotations, annotation_file_name(split)), oi_records(splits[split]))


def oi_file_name(name: str) -> str:
    """The Open Images file name of a source image: the name itself when it ends in ``.jpg`` (the loader appends
    ``.jpg`` to ``img_fn``), else the name with ``.jpg`` appended."""
    return name if name.endswith(IMAGE_SUFFIX) else name + IMAGE_SUFFIX


def write_oi_dataset(data_root: str, datasets: Mapping[str, SceneGraphDataset], images: str,
                     names: Mapping[str, str]) -> WrittenDataset:
    """Write ``datasets`` (train, val, test of any family, built without duplicate filtering) as
    ``<data_root>/openimages/open_image_v6/`` (``data_root`` must not exist; nothing is written on error) and
    return what loads it (``names``: split -> catalog name). A val or test image without an object or a relation
    raises (the loader drops those there)."""
    classes, predicates = shared_vocabulary(datasets)
    samples = {split: split_samples(datasets[split]) for split in SPLITS}
    for split in ("val", "test"):
        require_images_kept(samples[split], split, "Open Images V6", need_relation=True)
    renamed = sorted({name for part in samples.values() for name in part.file_names if oi_file_name(name) != name})
    for part in samples.values():
        part.file_names = [oi_file_name(name) for name in part.file_names]
    with staged_folder(data_root) as staging:
        folder = os.path.join(staging, OI_FOLDER)
        write_oi_annotation_files(folder, samples, classes[1:], predicates[1:])
        for split in SPLITS:
            place_images(os.path.join(folder, OI_IMAGE_FOLDER),
                         source_images(datasets[split], samples[split].file_names), images)
    notes = ()
    if renamed:
        notes = (f"Open Images V6 reads images/<img_fn>.jpg: {len(renamed)} file name(s) not ending in .jpg get "
                 f".jpg appended (e.g. {renamed[0]!r} -> {oi_file_name(renamed[0])!r})",)
    return WrittenDataset(overrides=catalog_overrides(data_root, names), notes=notes)
