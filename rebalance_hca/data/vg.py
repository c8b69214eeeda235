"""VG150 scene-graph dataset with SGB's semantics (SPEC §1).

A target is a dict of tensors for one image, N boxes and R relations:
    "boxes":          (N, 4) float32 xyxy, in the original image frame (after transforms: the resized frame)
    "labels":         (N,) int64 object classes 1..C-1
    "attributes":     (N, 10) int64
    "relation":       (N, N) int64, [s, o] = predicate, 0 = none
    "relation_tuple": (R, 3) int64 [subject, object, predicate]   (evaluation targets only)
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import cv2
import numpy as np
import torch

from .vg_files import (
    BOX_SCALE,
    DataFormatError,
    load_annotations,
    load_attributes,
    load_image_info,
    load_vocabulary,
)
from .transforms import scale_boxes
from .vg_index import RebalanceSpec, SplitIndex, select_split

logger = logging.getLogger(__name__)

Target = dict[str, torch.Tensor]


class VGDataset(torch.utils.data.Dataset):
    """One split of a VG150-format dataset: ``ds[i] -> (image, target, i)``.

    Args mirror SGB's ``VGDataset``: ``filter_duplicate_rels`` acts on the train split only;
    ``filter_non_overlap`` only on train; ``rebalance`` is the stage-2 split (train only).
    ``transforms(image_bgr_uint8 (H, W, 3), target) -> (image tensor, target)``.
    """

    def __init__(
        self,
        split: str,
        img_dir: str,
        roidb_file: str,
        dict_file: str,
        image_file: str,
        filter_empty_rels: bool = True,
        filter_non_overlap: bool = False,
        filter_duplicate_rels: bool = True,
        num_im: int = -1,
        num_val_im: int = 5000,
        rebalance: RebalanceSpec | None = None,
        transforms: Callable | None = None,
    ) -> None:
        self.split = split
        self.img_dir = img_dir
        self.transforms = transforms
        self.filter_duplicate_rels = filter_duplicate_rels and split == "train"
        vocabulary = load_vocabulary(dict_file)
        self.ind_to_classes = vocabulary.ind_to_classes
        self.ind_to_predicates = vocabulary.ind_to_predicates
        self.ind_to_attributes = vocabulary.ind_to_attributes
        self.predicate_count = vocabulary.predicate_count

        self.roidb_file = roidb_file
        self.annotations = load_annotations(roidb_file)
        _check_vocabulary_fits(self.annotations, dict_file, len(self.ind_to_classes), len(self.ind_to_predicates))
        if not os.path.isdir(img_dir):
            raise DataFormatError(f"image folder (img_dir) not found: {img_dir}")
        self.index: SplitIndex = select_split(
            self.annotations, split, filter_empty_rels=filter_empty_rels,
            filter_non_overlap=filter_non_overlap, num_im=num_im, num_val_im=num_val_im, rebalance=rebalance,
        )
        info = load_image_info(image_file, len(self.annotations.split))
        rows = self.index.image_rows
        self.image_ids = info.image_ids[rows]
        self.widths = info.widths[rows]
        self.heights = info.heights[rows]

    def __len__(self) -> int:
        return len(self.index.image_rows)

    def __getitem__(self, index: int):
        image = self.load_image(index)
        target = self.get_groundtruth(index)
        height, width = image.shape[:2]
        if (width, height) != (self.widths[index], self.heights[index]):
            _warn_size_mismatch(self.image_path(index), (width, height), (self.widths[index], self.heights[index]))
            target = scale_boxes(target, width / self.widths[index], height / self.heights[index])
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target, index

    def image_path(self, index: int) -> str:
        return os.path.join(self.img_dir, f"{int(self.image_ids[index])}.jpg")

    def load_image(self, index: int) -> np.ndarray:
        """The image as BGR uint8 (H, W, 3) in its stored frame: an EXIF Orientation tag is ignored, as PIL
        (SGB's reader) and the VG annotations ignore it. A missing or undecodable file raises naming the file."""
        path = self.image_path(index)
        if not os.path.isfile(path):
            raise DataFormatError(f"image listed in image_data.json is missing: {path}")
        image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise DataFormatError(f"image cannot be decoded: {path}")
        return image

    def get_img_info(self, index: int) -> dict:
        image_id = int(self.image_ids[index])
        return {"width": int(self.widths[index]), "height": int(self.heights[index]),
                "image_id": image_id, "file_name": f"{image_id}.jpg"}

    def image_aspect_ratios(self) -> np.ndarray:
        """h / w of every image, from image_data.json. -> (I,) float64."""
        return self.heights / self.widths

    def image_relations(self, index: int) -> np.ndarray:
        """The image's relation rows after the split filters, before duplicate handling. -> (R, 3) int64."""
        start, end = self.index.rel_offsets[index], self.index.rel_offsets[index + 1]
        return self.index.relations[start:end]

    def image_boxes_1024(self, index: int) -> np.ndarray:
        """The image's boxes in the 1024 frame. -> (N, 4) int32 xyxy."""
        start = self.index.box_start[index]
        return self.annotations.boxes_1024[start:start + self.index.box_count[index]]

    def get_groundtruth(self, index: int, evaluation: bool = False) -> Target:
        """The target in the original image frame (SPEC §1.5): clipped, and for training without empty boxes."""
        width, height = int(self.widths[index]), int(self.heights[index])
        start, count = self.index.box_start[index], self.index.box_count[index]
        boxes = self.image_boxes_1024(index) / BOX_SCALE * max(width, height)
        relations = self.image_relations(index)
        if self.filter_duplicate_rels:
            relations = _one_random_predicate_per_pair(relations)
        relation_map = _relation_matrix(relations, count)

        boxes = torch.as_tensor(boxes, dtype=torch.float32)
        attributes = load_attributes(self.roidb_file)
        boxes[:, 0::2].clamp_(min=0, max=width - 1)
        boxes[:, 1::2].clamp_(min=0, max=height - 1)
        target = {
            "boxes": boxes,
            "labels": torch.from_numpy(self.annotations.labels[start:start + count].copy()),
            "attributes": torch.from_numpy(attributes[start:start + count].astype(np.int64)),
            "relation": torch.from_numpy(relation_map),
        }
        if evaluation:
            target["relation_tuple"] = torch.from_numpy(relations.astype(np.int64))
            return target
        return remove_empty_boxes(target)

    def relation_triplets(self) -> np.ndarray:
        """(subject_class, object_class, predicate) of every relation row of the split. -> (R, 3) int64."""
        relations = self.index.relations
        image_of_rel = np.repeat(np.arange(len(self)), np.diff(self.index.rel_offsets))
        first_row = self.index.box_start[image_of_rel]
        labels = self.annotations.labels
        return np.column_stack([labels[first_row + relations[:, 0]], labels[first_row + relations[:, 1]],
                                relations[:, 2]]).astype(np.int64)


def remove_empty_boxes(target: Target) -> Target:
    """Drop boxes with x2 <= x1 or y2 <= y1, with their rows and columns of ``relation``."""
    boxes = target["boxes"]
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if bool(keep.all()):
        return target
    kept = {key: value[keep] for key, value in target.items() if key != "relation"}
    kept["relation"] = target["relation"][keep][:, keep]
    return kept


def _one_random_predicate_per_pair(relations: np.ndarray) -> np.ndarray:
    """SGB's filter_duplicate_rels: one uniformly random predicate per ordered pair, fresh on every call.

    relations: (R, 3) -> (R', 3), one row per distinct pair, pairs in order of first appearance.
    """
    if len(relations) == 0:
        return relations
    pair_key = relations[:, 0] * (relations[:, :2].max() + 1) + relations[:, 1]
    random_within_pair = np.lexsort((np.random.random(len(relations)), pair_key))
    sorted_keys = pair_key[random_within_pair]
    chosen = random_within_pair[np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]]
    _, first_seen = np.unique(pair_key, return_index=True)
    return relations[chosen[np.argsort(first_seen)]]


def _relation_matrix(relations: np.ndarray, num_boxes: int) -> np.ndarray:
    """(N, N) int64 matrix filled row by row; a pair set twice is overwritten with probability 0.5.

    relations: (R, 3) [subject, object, predicate].
    """
    matrix = np.zeros((num_boxes, num_boxes), dtype=np.int64)
    if len(relations) == 0:
        return matrix
    pair_key = relations[:, 0] * num_boxes + relations[:, 1]
    _, first_index = np.unique(pair_key, return_index=True)
    written = np.random.random(len(relations)) > 0.5
    written[first_index] = True
    written_rows = np.flatnonzero(written)
    reversed_keys = pair_key[written_rows][::-1]
    _, last_in_reversed = np.unique(reversed_keys, return_index=True)
    final_rows = written_rows[::-1][last_in_reversed]
    matrix[relations[final_rows, 0], relations[final_rows, 1]] = relations[final_rows, 2]
    return matrix


def _check_vocabulary_fits(ann, dict_file: str, num_classes: int, num_predicates: int) -> None:
    for name, values, limit in (("labels", ann.labels, num_classes), ("predicates", ann.predicates, num_predicates)):
        if len(values) and (values.min() < 1 or values.max() >= limit):
            raise DataFormatError(
                f"{ann.roidb_file}: {name} range [{values.min()}, {values.max()}] does not fit {dict_file}, "
                f"which defines ids 1..{limit - 1}"
            )


def _warn_size_mismatch(path: str, decoded: tuple[int, int], listed: tuple[int, int]) -> None:
    """Some VG entries list a wrong size (SPEC §1.4); boxes are rescaled to the decoded image, as SGB's
    resize ends up doing."""
    logger.warning("%s decodes to %sx%s but image_data.json lists %sx%s; boxes rescaled to the image",
                   path, *decoded, *listed)
