"""What VG150 and Open Images V6 datasets share: the sample contract, relation maps, duplicate handling,
optional bi-level resampling masks.

A target is a dict of tensors for one image, N boxes and R relations:
    "boxes":          (N, 4) float32 xyxy, in the original image frame (after transforms: the resized frame)
    "labels":         (N,) int64 object classes 1..C-1
    "attributes":     (N, 10) int64 (zeros for Open Images, which has none)
    "relation":       (N, N) int64, [s, o] = predicate, 0 = none, -1 = masked by bi-level resampling
    "relation_tuple": (R, 3) int64 [subject, object, predicate]   (evaluation targets only)
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np
import torch

from .image_io import read_image
from .resampling import BiLevelResampling, ResamplingOptions, bilevel_resampling
from .transforms import scale_boxes
from .files import DataFormatError
from .split_index import SplitIndex

logger = logging.getLogger(__name__)

Target = dict[str, torch.Tensor]
NUM_ATTRIBUTE_SLOTS = 10


class SceneGraphDataset(torch.utils.data.Dataset):
    """One split of a scene-graph dataset: ``ds[i] -> (image, target, i)``.

    A subclass sets ``split``, ``img_dir``, ``transforms``, ``filter_duplicate_rels`` (train only),
    ``ind_to_classes``, ``ind_to_predicates``, ``ind_to_attributes``, ``labels`` ((N_all,) int64, the flat
    object classes that ``index.box_start`` points into), ``index`` (a ``SplitIndex``), ``widths`` and
    ``heights`` ((I,) int64 original sizes), ``resampling`` (None or ``self.bilevel_resampling(options)``):
    its constructor calls ``_set_split_options`` first, ``_check_image_folder`` once its annotations are read
    and ``_set_split_images`` last; and it implements
    ``image_boxes`` (original-frame boxes), ``image_attributes``, ``file_name`` and ``image_id``.
    ``SIZE_SOURCE`` names the file that lists the image sizes (for messages).
    """

    SIZE_SOURCE = "the annotations"
    split: str
    img_dir: str
    transforms: Callable | None
    filter_duplicate_rels: bool
    labels: np.ndarray
    index: SplitIndex
    widths: np.ndarray
    heights: np.ndarray
    resampling: BiLevelResampling | None = None

    def _set_split_options(self, split: str, img_dir: str, transforms: Callable | None,
                           filter_duplicate_rels: bool, ind_to_classes: list[str],
                           ind_to_predicates: list[str]) -> None:
        """What every family's constructor sets first: the split, image folder and transforms, duplicate
        filtering (train only, as SGB's and PySGG's loaders), and the class and predicate names."""
        self.split = split
        self.img_dir = img_dir
        self.transforms = transforms
        self.filter_duplicate_rels = filter_duplicate_rels and split == "train"
        self.ind_to_classes = ind_to_classes
        self.ind_to_predicates = ind_to_predicates

    def _check_image_folder(self) -> None:
        """A DataFormatError naming ``img_dir`` when it is not a folder."""
        if not os.path.isdir(self.img_dir):
            raise DataFormatError(f"image folder (img_dir) not found: {self.img_dir}")

    def _set_split_images(self, labels: np.ndarray, index: SplitIndex, widths: np.ndarray, heights: np.ndarray,
                          resampling: ResamplingOptions | None) -> None:
        """What every family's constructor sets last, once its annotations are read: the flat object classes
        ``labels`` (N_all,), the split ``index``, the original sizes of its images out of ``widths`` /
        ``heights`` (one per annotated image, indexed by ``index.image_rows``), and the bi-level resampling
        masks when ``resampling`` is given."""
        self.labels = labels
        self.index = index
        self.widths = widths[index.image_rows]
        self.heights = heights[index.image_rows]
        self.resampling = self.bilevel_resampling(resampling) if resampling is not None else None

    def __len__(self) -> int:
        return len(self.index.image_rows)

    def __getitem__(self, index: int):
        image = self.load_image(index)
        target = self.get_groundtruth(index)
        height, width = image.shape[:2]
        if (width, height) != (self.widths[index], self.heights[index]):
            logger.warning("%s decodes to %sx%s but %s lists %sx%s; boxes rescaled to the image",
                           self.image_path(index), width, height, self.SIZE_SOURCE, self.widths[index],
                           self.heights[index])
            target = scale_boxes(target, width / self.widths[index], height / self.heights[index])
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target, index

    def bilevel_resampling(self, options: ResamplingOptions) -> BiLevelResampling:
        """BGNN's bi-level resampling factors of this split (train only)."""
        if self.split != "train":
            raise ValueError("bi-level resampling applies to the train split only")
        return bilevel_resampling(self.index.relations, self.index.rel_offsets, len(self.ind_to_predicates), options)

    def image_boxes(self, index: int) -> np.ndarray:
        """The image's boxes in the original frame, before clamping. -> (N, 4) float64 xyxy."""
        raise NotImplementedError

    def image_attributes(self, index: int) -> np.ndarray:
        """-> (N, 10) integer attribute ids, 0-padded."""
        raise NotImplementedError

    def file_name(self, index: int) -> str:
        raise NotImplementedError

    def image_id(self, index: int) -> int:
        raise NotImplementedError

    def image_path(self, index: int) -> str:
        return os.path.join(self.img_dir, self.file_name(index))

    def load_image(self, index: int) -> np.ndarray:
        """The image as BGR uint8 (H, W, 3) in its stored frame: an EXIF Orientation tag is ignored, as PIL
        (the references' reader) and the annotations ignore it. A missing, undecodable or truncated file
        raises naming the file (``image_io.read_image``)."""
        path = self.image_path(index)
        if not os.path.isfile(path):
            raise DataFormatError(f"image listed in {self.SIZE_SOURCE} is missing: {path}")
        return read_image(path)

    def get_img_info(self, index: int) -> dict:
        return {"width": int(self.widths[index]), "height": int(self.heights[index]),
                "image_id": self.image_id(index), "file_name": self.file_name(index)}

    def image_aspect_ratios(self) -> np.ndarray:
        """h / w of every image, from the listed sizes. -> (I,) float64."""
        return self.heights / self.widths

    def image_relations(self, index: int) -> np.ndarray:
        """The image's relation rows after the split filters, before duplicate handling. -> (R, 3) int64."""
        start, end = self.index.rel_offsets[index], self.index.rel_offsets[index + 1]
        return self.index.relations[start:end]

    def get_groundtruth(self, index: int, evaluation: bool = False) -> Target:
        """The target in the original image frame: clamped to [0, w-1] x [0, h-1]; for training without empty
        boxes, with one random predicate per pair (train split) and bi-level resampling masks (when on)."""
        width, height = int(self.widths[index]), int(self.heights[index])
        start, count = self.index.box_start[index], self.index.box_count[index]
        relations = self.image_relations(index)
        if self.filter_duplicate_rels:
            relations = one_random_predicate_per_pair(relations)
        if self.resampling is not None and not evaluation:
            relations = self.resampling.mask_relations(index, relations)
        boxes = torch.as_tensor(self.image_boxes(index), dtype=torch.float32)
        boxes[:, 0::2].clamp_(min=0, max=width - 1)
        boxes[:, 1::2].clamp_(min=0, max=height - 1)
        target = {
            "boxes": boxes,
            "labels": torch.from_numpy(self.labels[start:start + count].copy()),
            "attributes": torch.from_numpy(self.image_attributes(index).astype(np.int64)),
            "relation": torch.from_numpy(relation_matrix(relations, count)),
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
        return np.column_stack([self.labels[first_row + relations[:, 0]], self.labels[first_row + relations[:, 1]],
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


def one_random_predicate_per_pair(relations: np.ndarray) -> np.ndarray:
    """SGB's / PySGG's filter_duplicate_rels: one uniformly random predicate per ordered pair, fresh on every
    call. relations: (R, 3) -> (R', 3), one row per distinct pair, pairs in order of first appearance."""
    if len(relations) == 0:
        return relations
    pair_key = relations[:, 0] * (relations[:, :2].max() + 1) + relations[:, 1]
    random_within_pair = np.lexsort((np.random.random(len(relations)), pair_key))
    sorted_keys = pair_key[random_within_pair]
    chosen = random_within_pair[np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]]
    _, first_seen = np.unique(pair_key, return_index=True)
    return relations[chosen[np.argsort(first_seen)]]


def relation_matrix(relations: np.ndarray, num_boxes: int) -> np.ndarray:
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
