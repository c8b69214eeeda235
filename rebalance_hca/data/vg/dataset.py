"""VG150 scene-graph dataset with SGB's semantics (docs/reference.md#vg150-data);
targets as ``scene_graph_dataset`` describes."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..files import DataFormatError
from ..resampling import ResamplingOptions
from ..scene_graph_dataset import SceneGraphDataset, remove_empty_boxes
from ..split_index import RebalanceSpec
from .files import (
    BOX_SCALE,
    load_annotations,
    load_attributes,
    load_image_info,
    load_vocabulary,
)
from .index import select_split

__all__ = ["VGDataset", "remove_empty_boxes"]


class VGDataset(SceneGraphDataset):
    """One split of a VG150-format dataset: ``ds[i] -> (image, target, i)``.

    Args mirror SGB's ``VGDataset``: ``filter_duplicate_rels`` acts on the train split only;
    ``filter_non_overlap`` only on train; ``rebalance`` is the stage-2 split (train only); ``resampling``
    (train only) masks relations of repeated images (``rebalance_hca.data.resampling``).
    ``transforms(image_bgr_uint8 (H, W, 3), target) -> (image tensor, target)``.
    """

    SIZE_SOURCE = "image_data.json"

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
        resampling: ResamplingOptions | None = None,
    ) -> None:
        vocabulary = load_vocabulary(dict_file)
        self._set_split_options(split, img_dir, transforms, filter_duplicate_rels, vocabulary.ind_to_classes,
                                vocabulary.ind_to_predicates)
        self.ind_to_attributes = vocabulary.ind_to_attributes
        self.predicate_count = vocabulary.predicate_count

        self.roidb_file = roidb_file
        self.annotations = load_annotations(roidb_file)
        _check_vocabulary_fits(self.annotations, dict_file, len(self.ind_to_classes), len(self.ind_to_predicates))
        self._check_image_folder()
        index = select_split(
            self.annotations, split, filter_empty_rels=filter_empty_rels,
            filter_non_overlap=filter_non_overlap, num_im=num_im, num_val_im=num_val_im, rebalance=rebalance,
        )
        info = load_image_info(image_file, len(self.annotations.split))
        self.image_ids = info.image_ids[index.image_rows]
        self._set_split_images(self.annotations.labels, index, info.widths, info.heights, resampling)

    def image_boxes(self, index: int) -> np.ndarray:
        """The 1024-frame boxes rescaled to the original image (docs/reference.md#vg150-h5-file).
        -> (N, 4) float64 xyxy."""
        width, height = int(self.widths[index]), int(self.heights[index])
        return self.image_boxes_1024(index) / BOX_SCALE * max(width, height)

    def image_attributes(self, index: int) -> np.ndarray:
        start = self.index.box_start[index]
        return load_attributes(self.roidb_file)[start:start + self.index.box_count[index]]

    def file_name(self, index: int) -> str:
        return f"{int(self.image_ids[index])}.jpg"

    def image_id(self, index: int) -> int:
        return int(self.image_ids[index])

    def image_boxes_1024(self, index: int) -> np.ndarray:
        """The image's boxes in the 1024 frame. -> (N, 4) int32 xyxy."""
        start = self.index.box_start[index]
        return self.annotations.boxes_1024[start:start + self.index.box_count[index]]


def _check_vocabulary_fits(ann, dict_file: str, num_classes: int, num_predicates: int) -> None:
    for name, values, limit in (("labels", ann.labels, num_classes), ("predicates", ann.predicates, num_predicates)):
        if len(values) and (values.min() < 1 or values.max() >= limit):
            raise DataFormatError(
                f"{ann.roidb_file}: {name} range [{values.min()}, {values.max()}] does not fit {dict_file}, "
                f"which defines ids 1..{limit - 1}"
            )
