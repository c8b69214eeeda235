"""Open Images V6 scene-graph dataset with PySGG's semantics (docs/reference.md#open-images-v6), behind the same
contract as ``VGDataset`` (targets as ``scene_graph_dataset`` describes)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..files import DataFormatError
from ..record_dataset import RecordDataset, check_split_options
from ..resampling import ResamplingOptions
from ..split_index import RebalanceSpec, SplitIndex, filtered_split, rebalance_keep, records_relation_rows
from ..json_columns import RecordAnnotations
from .files import IMAGE_SUFFIX, check_vocabulary_fits, load_oi_annotations, load_oi_vocabulary


def select_oi_split(ann: RecordAnnotations, filter_empty_rels: bool = True, num_im: int = -1,
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
    rel_image, rel_rows = records_relation_rows(ann.rel_offsets, image_rows)
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


class OIDataset(RecordDataset):
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
        check_split_options(split, rebalance, resampling)
        vocabulary = load_oi_vocabulary(dict_file)
        self.ann_file = ann_file
        annotations = load_oi_annotations(ann_file)
        check_vocabulary_fits(annotations, dict_file, vocabulary)
        self.use_records(split, img_dir, transforms, filter_duplicate_rels, vocabulary.ind_to_classes,
                         vocabulary.ind_to_predicates, annotations,
                         lambda: select_oi_split(annotations, filter_empty_rels or split != "train", num_im,
                                                 rebalance),
                         resampling)

    def file_name(self, index: int) -> str:
        return f"{self.annotations.image_files[self.index.image_rows[index]]}{IMAGE_SUFFIX}"

