"""VG150 as a dataset family: SGB's catalog names and files, its dictionary's vocabulary and predicate counts,
``VGDataset``, SGB's statistics and SGB's evaluation protocol."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...evaluation.protocols import SGB_PROTOCOL
from ..family import SPLITS, DatasetFamily, DatasetPaths, SplitOptions, TrainVocabulary, prefixed_names
from ..files import DataFormatError
from ..statistics import FrequencyStatistics
from ..writing import WrittenDataset
from .dataset import VGDataset
from .files import VG_FILES, load_vocabulary
from .statistics import load_or_compute_statistics
from .writer import write_vg_dataset

VG_PREFIX = "VG_stanford_filtered_with_attribute_"


@dataclass(frozen=True)
class VGPaths(DatasetPaths):
    """Absolute paths of the four VG150 inputs of one dataset entry (all splits share them)."""

    img_dir: str
    roidb_file: str
    dict_file: str
    image_file: str


class VG150Family(DatasetFamily):
    """SGB's names ``VG_stanford_filtered_with_attribute_{train,val,test}``, files under ``<data root>/vg/``."""

    name = "VG150"
    protocol = SGB_PROTOCOL
    key = "vg150"

    def dataset_names(self) -> tuple[str, ...]:
        return prefixed_names(VG_PREFIX)

    def paths(self, name: str, data_root: str) -> VGPaths:
        return VGPaths(split=name[len(VG_PREFIX):],
                       **{key: os.path.join(data_root, relative) for key, relative in VG_FILES.items()})

    def train_vocabulary(self, paths: VGPaths) -> TrainVocabulary:
        """The dictionary's names; its ``predicate_count`` as the counts, ranked by count (ties in the
        dictionary's order)."""
        vocabulary = load_vocabulary(paths.dict_file)
        name_to_id = {name: index for index, name in enumerate(vocabulary.ind_to_predicates)}
        unknown = sorted(set(vocabulary.predicate_count) - set(name_to_id))
        if unknown:
            raise DataFormatError(f"{paths.dict_file}: predicate_count names unknown predicates {unknown}")
        counts = np.zeros(len(vocabulary.ind_to_predicates), dtype=np.float64)
        for name, count in vocabulary.predicate_count.items():
            counts[name_to_id[name]] = count
        by_frequency = sorted(vocabulary.predicate_count, key=lambda name: -vocabulary.predicate_count[name])
        return TrainVocabulary(paths.dict_file, vocabulary.ind_to_classes, vocabulary.ind_to_predicates, counts,
                               tuple(name_to_id[name] for name in by_frequency))

    def build_dataset(self, cfg, paths: VGPaths, options: SplitOptions) -> VGDataset:
        """SGB's filters: the overlap filter on the train split when relations are trained without GT boxes
        and MODEL.ROI_RELATION_HEAD.REQUIRE_BOX_OVERLAP; the val carve-out DATASETS.NUM_VAL_IM."""
        head = cfg.MODEL.ROI_RELATION_HEAD
        return VGDataset(
            split=paths.split,
            img_dir=paths.img_dir,
            roidb_file=paths.roidb_file,
            dict_file=paths.dict_file,
            image_file=paths.image_file,
            filter_empty_rels=options.filter_empty_rels,
            filter_non_overlap=paths.split == "train" and (not head.USE_GT_BOX) and cfg.MODEL.RELATION_ON
            and head.REQUIRE_BOX_OVERLAP,
            filter_duplicate_rels=options.filter_duplicate_rels,
            num_val_im=cfg.DATASETS.NUM_VAL_IM,
            rebalance=options.rebalance,
            transforms=options.transforms,
            resampling=options.resampling,
        )

    def statistics(self, cfg, paths: VGPaths, cache_file: str) -> FrequencyStatistics:
        return load_or_compute_statistics(paths.roidb_file, paths.dict_file, cfg.DATASETS.NUM_VAL_IM, cache_file)

    def write_dataset(self, output: str, splits, images: str) -> WrittenDataset:
        """``output`` is the data root: ``<output>/vg/``; val is written first in the train pool
        (DATASETS.NUM_VAL_IM = its size), boxes in the 1024 frame (``vg.writer.frame_boxes``)."""
        return write_vg_dataset(output, splits, images, dict(zip(SPLITS, self.dataset_names())))
