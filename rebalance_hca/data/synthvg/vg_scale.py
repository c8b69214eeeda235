"""VG-sized, annotation-only SynthVG arrays for loading benchmarks, generated without a per-image loop.

The sizes follow VG150 (docs/reference.md#vg150-h5-file):
108,073 h5 images, 1,145,398 boxes and 622,705 relations on average,
89,169 images with relations (the SGB split sizes 57,723 + 5,000 + 26,446). Labels, predicates and attributes
follow the frequencies of a small scene-sampled SynthVG, but boxes and pairs are random: it is a file of
the right size and shape, not a set of scenes.
"""
from __future__ import annotations

import numpy as np

from ..vg.files import BOX_SCALE, CORRUPTED_IMAGE_IDS
from ..scene_graph_dataset import NUM_ATTRIBUTE_SLOTS
from ..vg.writer import VGArrays

VG_SCALE_IMAGES = 108_073
VG_BOXES_PER_IMAGE = 1_145_398 / VG_SCALE_IMAGES
VG_IMAGES_WITH_RELATIONS = 89_169 / VG_SCALE_IMAGES
VG_RELATIONS_PER_RELATED_IMAGE = 622_705 / 89_169
VG_NO_BOX_FRACTION = 0.005
VG_LONGER_SIDES = (500, 640, 800, 1024)


def _image_sizes(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    longer = rng.choice(VG_LONGER_SIDES, count)
    shorter = np.rint(longer * rng.uniform(0.6, 1.0, count)).astype(np.int64)
    portrait = rng.random(count) < 0.3
    return np.where(portrait, shorter, longer), np.where(portrait, longer, shorter)


def vg_scale_arrays(seed: int, test_fraction: float, class_probabilities: np.ndarray,
                    predicate_probabilities: np.ndarray, attribute_probabilities: np.ndarray
                    ) -> tuple[VGArrays, dict[int, tuple[int, int]]]:
    """(arrays, {corrupted id: (width, height)}). ``*_probabilities``: (K,) over ids 1..K (index 0 = id 1)."""
    rng = np.random.default_rng([seed, VG_SCALE_IMAGES])
    count = VG_SCALE_IMAGES
    ids = np.arange(1, count + len(CORRUPTED_IMAGE_IDS) + 1)
    is_corrupted = np.isin(ids, sorted(CORRUPTED_IMAGE_IDS))
    all_widths, all_heights = _image_sizes(rng, ids.size)
    widths, heights = all_widths[~is_corrupted], all_heights[~is_corrupted]

    split = np.where(rng.random(count) < test_fraction, 2, 0)
    box_counts = np.where(rng.random(count) < VG_NO_BOX_FRACTION, 0,
                          np.maximum(1, rng.poisson(VG_BOXES_PER_IMAGE / (1 - VG_NO_BOX_FRACTION), count)))
    related = (rng.random(count) < VG_IMAGES_WITH_RELATIONS / (1 - VG_NO_BOX_FRACTION)) & (box_counts >= 2)
    rel_counts = np.where(related, 1 + rng.poisson(VG_RELATIONS_PER_RELATED_IMAGE - 1, count), 0)
    box_starts = np.concatenate([[0], np.cumsum(box_counts)[:-1]])
    rel_starts = np.concatenate([[0], np.cumsum(rel_counts)[:-1]])
    num_boxes, num_rels = int(box_counts.sum()), int(rel_counts.sum())

    box_image = np.repeat(np.arange(count), box_counts)
    longer = np.maximum(widths, heights)[box_image]
    frame = np.stack([widths[box_image], heights[box_image]], axis=1) * BOX_SCALE // longer[:, None]
    size = np.maximum(1, np.rint(frame * rng.uniform(0.03, 0.6, (num_boxes, 2)))).astype(np.int64)
    top_left = np.floor(rng.random((num_boxes, 2)) * (frame - size + 1)).astype(np.int64)
    labels = rng.choice(class_probabilities.size, num_boxes, p=class_probabilities) + 1
    attributes = np.zeros((num_boxes, NUM_ATTRIBUTE_SLOTS), dtype=np.int64)
    attribute_count = rng.choice(3, num_boxes, p=(0.5, 0.35, 0.15))
    for column in range(2):
        chosen = attribute_count > column
        attributes[chosen, column] = rng.choice(attribute_probabilities.size, int(chosen.sum()),
                                                p=attribute_probabilities) + 1
    attributes[attributes[:, 1] == attributes[:, 0], 1] = 0  # de-duplicated, as VG's

    rel_image = np.repeat(np.arange(count), rel_counts)
    image_boxes = box_counts[rel_image]
    subject = np.floor(rng.random(num_rels) * image_boxes).astype(np.int64)
    obj = (subject + 1 + np.floor(rng.random(num_rels) * (image_boxes - 1)).astype(np.int64)) % image_boxes
    relationships = np.stack([subject, obj], axis=1) + box_starts[rel_image, None]
    predicates = rng.choice(predicate_probabilities.size, num_rels, p=predicate_probabilities) + 1

    arrays = VGArrays(
        split=split,
        first_box=np.where(box_counts > 0, box_starts, -1),
        last_box=np.where(box_counts > 0, box_starts + box_counts - 1, -1),
        first_rel=np.where(rel_counts > 0, rel_starts, -1),
        last_rel=np.where(rel_counts > 0, rel_starts + rel_counts - 1, -1),
        labels=labels,
        boxes_1024_xyxy=np.concatenate([top_left, top_left + size], axis=1),
        attributes=attributes,
        relationships=relationships,
        predicates=predicates,
        image_ids=ids[~is_corrupted],
        widths=widths,
        heights=heights,
    )
    corrupted = {int(i): (int(w), int(h)) for i, w, h in zip(ids[is_corrupted], all_widths[is_corrupted],
                                                                 all_heights[is_corrupted])}
    return arrays, corrupted
