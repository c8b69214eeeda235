"""One split of a scene-graph JSON dataset (docs/data.md#scene-graph-json), behind the same contract as
``VGDataset`` (targets as ``scene_graph_dataset`` describes)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...structures.boxes import paired_closed_intersection
from ..files import DataFormatError
from ..record_dataset import RecordDataset, check_split_options
from ..resampling import ResamplingOptions
from ..split_index import RebalanceSpec, SplitIndex, filtered_split, rebalance_keep, records_relation_rows
from .files import JSONAnnotations, load_json_split, load_json_vocabulary


def select_json_split(ann: JSONAnnotations, filter_empty_rels: bool = True, filter_non_overlap: bool = False,
                      rebalance: RebalanceSpec | None = None) -> SplitIndex:
    """The file's images in file order that have an object (and a relation, with ``filter_empty_rels``);
    with ``filter_non_overlap`` only relations whose boxes overlap or touch (VG150's statistics filter, IoU > 0
    with the +1 convention on its integer 1024-frame boxes, in a form that holds in any frame);
    then stage-2 rebalancing. Images left without relations by either are dropped. Image
    rows are record positions in the file."""
    box_counts, rel_counts = np.diff(ann.box_offsets), np.diff(ann.rel_offsets)
    usable = box_counts > 0
    if filter_empty_rels:
        usable &= rel_counts > 0
    image_rows = np.flatnonzero(usable)
    rel_image, rel_rows = records_relation_rows(ann.rel_offsets, image_rows)
    relations = ann.relations[rel_rows]
    keep = np.ones(len(relations), dtype=bool)
    if filter_non_overlap:
        first_box = ann.box_offsets[image_rows][rel_image]
        keep &= paired_closed_intersection(ann.boxes[first_box + relations[:, 0]],
                                           ann.boxes[first_box + relations[:, 1]])
    if rebalance is not None:
        keep &= rebalance_keep(relations[:, 2], keep, rebalance)
    index = filtered_split(image_rows, ann.box_offsets[image_rows], box_counts[image_rows], rel_image, relations,
                           keep, drop_images_without_relations=filter_non_overlap or rebalance is not None)
    if len(index.image_rows) == 0:
        raise DataFormatError(f"{ann.ann_file}: no image has an object{' and a relation' * filter_empty_rels}"
                              f"{' after the filters' if filter_non_overlap or rebalance is not None else ''}")
    return index


class JSONSceneGraphDataset(RecordDataset):
    """One split of a scene-graph JSON dataset: ``ds[i] -> (image, target, i)``.

    Reads ``split_file`` with the names of ``vocabulary_file``; images under ``img_dir``. ``filter_empty_rels``
    drops images without relations (images without objects are always dropped); ``filter_duplicate_rels``
    (train only) picks one predicate per pair per sample; ``rebalance`` is the stage-2 split and ``resampling``
    BGNN's bi-level resampling (train only). Boxes are the stored pixel boxes; ``attributes`` are zeros;
    ``image_id`` is the record's position in its file.
    """

    def __init__(
        self,
        split: str,
        img_dir: str,
        vocabulary_file: str,
        split_file: str,
        filter_empty_rels: bool = True,
        filter_duplicate_rels: bool = True,
        rebalance: RebalanceSpec | None = None,
        transforms: Callable | None = None,
        resampling: ResamplingOptions | None = None,
    ) -> None:
        check_split_options(split, rebalance, resampling)
        vocabulary = load_json_vocabulary(vocabulary_file)
        self.ann_file = split_file
        self.SIZE_SOURCE = split_file
        annotations = load_json_split(split_file, vocabulary_file)
        self.use_records(split, img_dir, transforms, filter_duplicate_rels, vocabulary.ind_to_classes,
                         vocabulary.ind_to_predicates, annotations,
                         lambda: select_json_split(annotations, filter_empty_rels, rebalance=rebalance), resampling)

    def file_name(self, index: int) -> str:
        return str(self.annotations.image_files[self.index.image_rows[index]])
