"""GQA-200 scene-graph dataset with SHA-GCL's semantics (docs/data.md#gqa-200), behind the same contract as
``VGDataset`` (targets as ``scene_graph_dataset`` describes)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..files import DataFormatError
from ..record_dataset import SPLITS, RecordDataset, check_split_options
from ..resampling import ResamplingOptions
from ..split_index import RebalanceSpec, SplitIndex, filtered_split, rebalance_keep, records_relation_rows
from .files import GQAAnnotations, check_vocabulary_fits, load_gqa_annotations, load_gqa_vocabulary

# SHA-GCL's gqa.py load_graphs skips the test file's record number 5580 (counted from 1 over all records)
# for val and test, whatever it holds.
SKIPPED_TEST_RECORD = 5579
DEFAULT_NUM_VAL_IM = 5000


def ignored_record(split: str) -> int:
    """The record of the split's file that SHA-GCL never reads: the test file's record 5580 for val and
    test, none (-1) for train."""
    return -1 if split == "train" else SKIPPED_TEST_RECORD


def select_gqa_split(ann: GQAAnnotations, split: str, num_val_im: int = DEFAULT_NUM_VAL_IM,
                     rebalance: RebalanceSpec | None = None) -> SplitIndex:
    """SHA-GCL's ``load_graphs``: the records of the split's file (val and test: the test file without its
    record 5580, ``ann.ignored_record``) that have a relation and a box, in file order; val keeps the first
    ``num_val_im`` of them (all when <= 0), so val is a prefix of test. Then stage-2 rebalancing (train only),
    whose emptied images are dropped. Image rows are record positions in the file."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if rebalance is not None and split != "train":
        raise ValueError("stage-2 rebalancing applies to the train split only")
    box_counts, rel_counts = np.diff(ann.box_offsets), np.diff(ann.rel_offsets)
    image_rows = np.flatnonzero((rel_counts > 0) & (box_counts > 0))
    if split == "val" and num_val_im > 0:
        image_rows = image_rows[:num_val_im]
    rel_image, rel_rows = records_relation_rows(ann.rel_offsets, image_rows)
    relations = ann.relations[rel_rows]
    keep = np.ones(len(relations), dtype=bool)
    if rebalance is not None:
        keep = rebalance_keep(relations[:, 2], keep, rebalance)
    index = filtered_split(image_rows, ann.box_offsets[image_rows], box_counts[image_rows], rel_image, relations,
                           keep, drop_images_without_relations=rebalance is not None)
    if len(index.image_rows) == 0:
        raise DataFormatError(f"{ann.ann_file}: no image of the {split!r} split has both a box and a relation"
                              f"{' after rebalancing' if rebalance is not None else ''}")
    return index


class GQADataset(RecordDataset):
    """One split of SHA-GCL's GQA-200: ``ds[i] -> (image, target, i)``.

    train reads ``train_file``; val and test read ``test_file`` (val = its first ``num_val_im`` usable images).
    ``filter_duplicate_rels`` acts on the train split only; ``rebalance`` is the stage-2 split and
    ``resampling`` BGNN's bi-level resampling (train only). Boxes are the stored pixel boxes; ``attributes``
    are zeros (GQA-200 has none); ``image_id`` is the record's position in its file.
    """

    SIZE_SOURCE = "the GQA-200 annotation file"

    def __init__(
        self,
        split: str,
        img_dir: str,
        dict_file: str,
        train_file: str,
        test_file: str,
        filter_duplicate_rels: bool = True,
        num_val_im: int = DEFAULT_NUM_VAL_IM,
        rebalance: RebalanceSpec | None = None,
        transforms: Callable | None = None,
        resampling: ResamplingOptions | None = None,
    ) -> None:
        check_split_options(split, rebalance, resampling)
        vocabulary = load_gqa_vocabulary(dict_file)
        self.ann_file = train_file if split == "train" else test_file
        annotations = load_gqa_annotations(self.ann_file, ignored_record(split))
        check_vocabulary_fits(annotations, dict_file, vocabulary)
        self.use_records(split, img_dir, transforms, filter_duplicate_rels, vocabulary.ind_to_classes,
                         vocabulary.ind_to_predicates, annotations,
                         lambda: select_gqa_split(annotations, split, num_val_im, rebalance), resampling)

    def file_name(self, index: int) -> str:
        return str(self.annotations.image_files[self.index.image_rows[index]])
