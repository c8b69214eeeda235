"""GQA-200-sized, annotation-only arrays for loading benchmarks, generated without a per-image loop.

60,000 train records (the size the project targets; the release's count is not stated in SHA-GCL's code) and
11,000 test records (more than 5,580, so the skipped record and the 5,000-image val prefix apply); 200 object
classes and 100 predicates; 5.2 relations per image (SHA-GCL's hard-coded GQA-200 training predicate counts sum
to 310,374, over about 60,000 images). Boxes per image (mean 11) are an assumption, not a measured property of
the release. Boxes and pairs are random: a file of the right size and shape.
"""
from __future__ import annotations

import numpy as np

from ..writing import SplitSamples
from .oi_scale import random_scale_split

GQA_SCALE_SIZES = {"train": 60_000, "test": 11_000}
GQA_NUM_CLASSES = 200
GQA_NUM_PREDICATES = 100
GQA_RELATIONS_PER_IMAGE = 5.2
GQA_BOXES_PER_IMAGE = 11.0


def gqa_object_names() -> list[str]:
    return [f"object_{index:03d}" for index in range(1, GQA_NUM_CLASSES + 1)]


def gqa_predicate_names() -> list[str]:
    return [f"predicate_{index:03d}" for index in range(1, GQA_NUM_PREDICATES + 1)]


def gqa_file_name(image_id: int) -> str:
    """SynthVG's file name of an image id in the VG150 and GQA-200 layouts: ``<image_id>.jpg``."""
    return f"{image_id}.jpg"


def gqa_scale_splits(seed: int) -> dict[str, SplitSamples]:
    """The train and test files' arrays (image ids 1.. across both)."""
    rng = np.random.default_rng([seed, GQA_SCALE_SIZES["train"]])
    classes = np.arange(1, GQA_NUM_CLASSES + 1)
    splits, first_id = {}, 1
    for split, count in GQA_SCALE_SIZES.items():
        splits[split] = random_scale_split(rng, count, first_id, classes, GQA_NUM_PREDICATES, GQA_BOXES_PER_IMAGE,
                                           GQA_RELATIONS_PER_IMAGE, gqa_file_name)
        first_id += count
    return splits
