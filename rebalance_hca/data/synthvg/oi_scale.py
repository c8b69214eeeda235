"""Open Images V6-sized, annotation-only arrays for loading benchmarks, generated without a per-image loop.

Split sizes are the BGNN paper's (126,368 / 1,813 / 5,322 images; docs/reference.md#oi-splits),
601 object classes of which
288 occur, 30 predicates, 2.7 relations per image on average. Boxes per image (mean 4.4) are an assumption,
not a measured property of the release. Boxes and pairs are random: a file of the right size and shape.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..writing import SplitSamples

OI_SPLIT_SIZES = {"train": 126_368, "val": 1_813, "test": 5_322}
OI_NUM_OBJECT_NAMES = 601
OI_OBJECTS_IN_USE = 288
OI_PREDICATES = ("at", "holds", "wears", "surf", "hang", "drink", "holding_hands", "on", "ride", "dance",
                 "skateboard", "catch", "highfive", "inside_of", "eat", "cut", "contain", "handshake", "kiss",
                 "talk_on_phone", "interacts_with", "under", "hug", "throw", "hits", "snowboard", "kick", "ski",
                 "plays", "read")
OI_RELATIONS_PER_IMAGE = 2.7
OI_BOXES_PER_IMAGE = 4.4


def image_file_stem(image_id: int) -> str:
    """An Open Images-like ``img_fn``: 16 hex digits."""
    return f"{image_id:016x}"


def oi_file_name(image_id: int) -> str:
    """SynthVG's Open Images file name of an image id: ``<img_fn>.jpg``."""
    return f"{image_file_stem(image_id)}.jpg"


def oi_object_names() -> list[str]:
    return [f"object_{index:03d}" for index in range(OI_NUM_OBJECT_NAMES)]


def long_tail(count: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return weights / weights.sum()


def oi_scale_split(rng: np.random.Generator, num_images: int, first_id: int, used_classes: np.ndarray) -> SplitSamples:
    """One Open Images-sized split of ``num_images`` images with ids first_id, first_id + 1, ...; labels among
    ``used_classes``."""
    return random_scale_split(rng, num_images, first_id, used_classes, len(OI_PREDICATES), OI_BOXES_PER_IMAGE,
                              OI_RELATIONS_PER_IMAGE, oi_file_name)


def random_scale_split(rng: np.random.Generator, num_images: int, first_id: int, used_classes: np.ndarray,
                       num_predicates: int, boxes_per_image: float, relations_per_image: float,
                       file_name: Callable[[int], str]) -> SplitSamples:
    """One split of ``num_images`` random images (ids first_id, ..., named ``file_name(id)``; at least 2 boxes
    and 1 relation each, on average ``boxes_per_image`` and ``relations_per_image``): labels among ``used_classes`` and predicates
    1..num_predicates, both long-tailed; integer pixel boxes in frames of 1024 x 576..1024 (a quarter portrait).
    A file of the right size and shape for loading benchmarks, not a property of any release."""
    widths = np.full(num_images, 1024, dtype=np.int64)
    heights = rng.integers(576, 1025, num_images)
    portrait = rng.random(num_images) < 0.25
    widths, heights = np.where(portrait, heights, widths), np.where(portrait, widths, heights)
    box_counts = 2 + rng.poisson(boxes_per_image - 2, num_images)
    rel_counts = 1 + rng.poisson(relations_per_image - 1, num_images)
    box_image = np.repeat(np.arange(num_images), box_counts)
    frame = np.stack([widths[box_image], heights[box_image]], axis=1)
    size = np.maximum(1, np.rint(frame * rng.uniform(0.05, 0.7, (len(box_image), 2)))).astype(np.int64)
    top_left = np.floor(rng.random((len(box_image), 2)) * (frame - size + 1)).astype(np.int64)
    labels = used_classes[rng.choice(len(used_classes), len(box_image), p=long_tail(len(used_classes), 1.1))]
    rel_image = np.repeat(np.arange(num_images), rel_counts)
    image_boxes = box_counts[rel_image]
    subject = np.floor(rng.random(len(rel_image)) * image_boxes).astype(np.int64)
    obj = (subject + 1 + np.floor(rng.random(len(rel_image)) * (image_boxes - 1)).astype(np.int64)) % image_boxes
    predicates = rng.choice(num_predicates, len(rel_image), p=long_tail(num_predicates, 1.6)) + 1
    return SplitSamples(
        file_names=[file_name(image_id) for image_id in range(first_id, first_id + num_images)], widths=widths,
        heights=heights, box_counts=box_counts,
        boxes=np.concatenate([top_left, top_left + size], axis=1), labels=labels, rel_counts=rel_counts,
        relations=np.stack([subject, obj, predicates], axis=1),
    )


def oi_scale_splits(seed: int) -> dict[str, SplitSamples]:
    rng = np.random.default_rng([seed, OI_SPLIT_SIZES["train"]])
    used_classes = rng.choice(OI_NUM_OBJECT_NAMES, OI_OBJECTS_IN_USE, replace=False) + 1
    splits, first_id = {}, 1
    for split, count in OI_SPLIT_SIZES.items():
        splits[split] = oi_scale_split(rng, count, first_id, used_classes)
        first_id += count
    return splits
