"""What the families read from JSON record files share (Open Images V6, GQA-200): a split over flat per-record
arrays with boxes in original pixels and no attributes, whose ``image_id`` is the record's position in its file."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .resampling import ResamplingOptions
from .scene_graph_dataset import NUM_ATTRIBUTE_SLOTS, SceneGraphDataset
from .split_index import RebalanceSpec, SplitIndex

SPLITS = ("train", "val", "test")


class RecordDataset(SceneGraphDataset):
    """A ``SceneGraphDataset`` over ``annotations``: an object with ``labels`` (N_all,) int64, ``boxes``
    (N_all, 4) float64 xyxy in original pixels, ``widths`` and ``heights`` (I_all,) int64 per record. A subclass
    reads its files, checks them, then calls ``use_records``, and implements ``file_name``."""

    annotations: object

    def use_records(self, split: str, img_dir: str, transforms: Callable | None, filter_duplicate_rels: bool,
                    ind_to_classes: Sequence[str], ind_to_predicates: Sequence[str], annotations: object,
                    select_split: Callable[[], SplitIndex], resampling: ResamplingOptions | None) -> None:
        """Set the split's state: the names, the annotations, ``select_split()``'s index (image rows = record
        positions), the sizes of its records and the bi-level resampling (train only)."""
        self._set_split_options(split, img_dir, transforms, filter_duplicate_rels, list(ind_to_classes),
                                list(ind_to_predicates))
        self.ind_to_attributes = ["__background__"]
        self.annotations = annotations
        self._check_image_folder()
        self._set_split_images(annotations.labels, select_split(), annotations.widths, annotations.heights,
                               resampling)

    def image_boxes(self, index: int) -> np.ndarray:
        start = self.index.box_start[index]
        return self.annotations.boxes[start:start + self.index.box_count[index]]

    def image_attributes(self, index: int) -> np.ndarray:
        return np.zeros((self.index.box_count[index], NUM_ATTRIBUTE_SLOTS), dtype=np.int64)

    def image_id(self, index: int) -> int:
        return int(self.index.image_rows[index])


def check_split_options(split: str, rebalance: RebalanceSpec | None, resampling: ResamplingOptions | None) -> None:
    """The split name is train, val or test; stage-2 rebalancing and bi-level resampling only on train."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if (rebalance is not None or resampling is not None) and split != "train":
        raise ValueError("stage-2 rebalancing and bi-level resampling apply to the train split only")
