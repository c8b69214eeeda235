"""Open Images V6 scene-graph dataset with PySGG's semantics (docs/reference.md#open-images-v6), behind the same
contract as ``VGDataset`` (targets as ``scene_graph_dataset`` describes)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..files import DataFormatError
from ..resampling import ResamplingOptions
from ..scene_graph_dataset import NUM_ATTRIBUTE_SLOTS, SceneGraphDataset
from ..split_index import RebalanceSpec, SplitIndex, filtered_split, rebalance_keep
from .files import OIAnnotations, check_vocabulary_fits, load_oi_annotations, load_oi_vocabulary

SPLITS = ("train", "val", "test")


def select_oi_split(ann: OIAnnotations, filter_empty_rels: bool = True, num_im: int = -1,
                    rebalance: RebalanceSpec | None = None) -> SplitIndex:
    """PySGG's ``load_annotations``: the first ``num_im`` records (truncation before filtering), records without
    a relation or a box dropped when ``filter_empty_rels``; then stage-2 rebalancing (our addition,
    docs/reference.md#rb-on-open-images),
    whose emptied images are dropped. Image rows are record indices in the file."""
    image_rows = np.arange(len(ann.image_files))
    if num_im > -1:
        image_rows = image_rows[:num_im]
    if filter_empty_rels:
        has_both = (np.diff(ann.rel_offsets)[image_rows] > 0) & (np.diff(ann.box_offsets)[image_rows] > 0)
        image_rows = image_rows[has_both]
    box_start = ann.box_offsets[image_rows]
    box_count = ann.box_offsets[image_rows + 1] - box_start
    rel_first, rel_counts = ann.rel_offsets[image_rows], np.diff(ann.rel_offsets)[image_rows]
    rel_image = np.repeat(np.arange(len(image_rows)), rel_counts)
    rel_rows = np.repeat(rel_first - np.concatenate([[0], np.cumsum(rel_counts)[:-1]]), rel_counts) + \
        np.arange(rel_counts.sum())
    relations = ann.relations[rel_rows]
    keep = np.ones(len(relations), dtype=bool)
    if rebalance is not None:
        keep = rebalance_keep(relations[:, 2], keep, rebalance)
    index = filtered_split(image_rows, box_start, box_count, rel_image, relations, keep,
                           drop_images_without_relations=rebalance is not None)
    if len(index.image_rows) == 0:
        raise DataFormatError(f"{ann.ann_file}: no image left after filtering (filter_empty_rels="
                              f"{filter_empty_rels}, num_im={num_im}, rebalance={'on' if rebalance else 'off'})")
    return index


def predicate_counts(ann: OIAnnotations, num_predicates: int) -> np.ndarray:
    """(P,) int64 relation counts per predicate over the whole file (duplicates counted; index 0 = 0): what
    stage-2 rebalancing ranks and the class-balanced loss weighs on Open Images, which has no dictionary
    counts. The empty-relation filter changes nothing here (the records it drops hold no relation)."""
    return np.bincount(ann.relations[:, 2], minlength=num_predicates).astype(np.int64)


class OIDataset(SceneGraphDataset):
    """One split of an Open Images V6 dataset in PySGG's layout: ``ds[i] -> (image, target, i)``.

    ``filter_empty_rels`` acts on the train split only: val and test always drop the records without a
    relation or a box, as PySGG's loader does whatever MODEL.RELATION_ON says (its detector pretraining keeps
    them in train only); ``filter_duplicate_rels`` acts on the train split only (PySGG forces it off for val/test);
    ``rebalance`` is the stage-2 split and ``resampling`` BGNN's bi-level resampling (train only).
    Boxes are the stored pixel boxes (no 1024 frame); ``attributes`` are zeros (Open Images has none);
    ``get_img_info`` gives ``image_id`` = the record's index in the annotation file.
    """

    SIZE_SOURCE = "the Open Images annotation file"

    def __init__(
        self,
        split: str,
        img_dir: str,
        ann_file: str,
        dict_file: str,
        filter_empty_rels: bool = True,
        filter_duplicate_rels: bool = True,
        num_im: int = -1,
        rebalance: RebalanceSpec | None = None,
        transforms: Callable | None = None,
        resampling: ResamplingOptions | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if (rebalance is not None or resampling is not None) and split != "train":
            raise ValueError("stage-2 rebalancing and bi-level resampling apply to the train split only")
        vocabulary = load_oi_vocabulary(dict_file)
        self._set_split_options(split, img_dir, transforms, filter_duplicate_rels, vocabulary.ind_to_classes,
                                vocabulary.ind_to_predicates)
        self.ind_to_attributes = ["__background__"]
        self.ann_file = ann_file
        self.annotations = load_oi_annotations(ann_file)
        check_vocabulary_fits(self.annotations, dict_file, vocabulary)
        self._check_image_folder()
        index = select_oi_split(self.annotations, filter_empty_rels or split != "train", num_im, rebalance)
        self._set_split_images(self.annotations.labels, index, self.annotations.widths, self.annotations.heights,
                               resampling)

    def image_boxes(self, index: int) -> np.ndarray:
        start = self.index.box_start[index]
        return self.annotations.boxes[start:start + self.index.box_count[index]]

    def image_attributes(self, index: int) -> np.ndarray:
        return np.zeros((self.index.box_count[index], NUM_ATTRIBUTE_SLOTS), dtype=np.int64)

    def file_name(self, index: int) -> str:
        return f"{self.annotations.image_files[self.index.image_rows[index]]}.jpg"

    def image_id(self, index: int) -> int:
        return int(self.index.image_rows[index])
