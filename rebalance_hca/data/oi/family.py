"""Open Images V6 as a dataset family: PySGG's catalog names and processed files, ``OIDataset``, PySGG's
statistics and PySGG's Open Images evaluation protocol."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ...evaluation.protocols import OPEN_IMAGES_PROTOCOL
from ..family import (SPLITS, DatasetFamily, DatasetPaths, SplitOptions, TrainVocabulary, counted_vocabulary,
                      prefixed_names)
from ..statistics import FrequencyStatistics
from ..writing import WrittenDataset
from .dataset import OIDataset
from .files import (CATEGORIES_FILE_NAME, OI_ANNOTATION_FOLDER, OI_FOLDER, OI_IMAGE_FOLDER, annotation_file_name,
                    load_oi_annotations, load_oi_vocabulary)
from .statistics import load_or_compute_oi_statistics
from .writer import write_oi_dataset

OI_PREFIX = "openimage_v6_"


@dataclass(frozen=True)
class OIPaths(DatasetPaths):
    """Absolute paths of an Open Images V6 entry in PySGG's layout (docs/data.md#open-images-v6)."""

    img_dir: str
    ann_file: str
    dict_file: str


class OpenImagesV6Family(DatasetFamily):
    """PySGG's names ``openimage_v6_{train,val,test}``, files under ``<data root>/openimages/open_image_v6/``."""

    name = "Open Images V6"
    protocol = OPEN_IMAGES_PROTOCOL
    key = "oiv6"

    def dataset_names(self) -> tuple[str, ...]:
        return prefixed_names(OI_PREFIX)

    def paths(self, name: str, data_root: str) -> OIPaths:
        split = name[len(OI_PREFIX):]
        folder = os.path.join(data_root, OI_FOLDER)
        return OIPaths(split=split, img_dir=os.path.join(folder, OI_IMAGE_FOLDER),
                       ann_file=os.path.join(folder, OI_ANNOTATION_FOLDER, annotation_file_name(split)),
                       dict_file=os.path.join(folder, OI_ANNOTATION_FOLDER, CATEGORIES_FILE_NAME))

    def train_vocabulary(self, paths: OIPaths) -> TrainVocabulary:
        """``categories_dict.json``'s names; Open Images has no dictionary counts, so the counts are the train
        file's relations per predicate, ranked by count (ties by id)."""
        vocabulary = load_oi_vocabulary(paths.dict_file)
        return counted_vocabulary(paths.ann_file, vocabulary.ind_to_classes, vocabulary.ind_to_predicates,
                                  load_oi_annotations(paths.ann_file).relations[:, 2])

    def build_dataset(self, cfg, paths: OIPaths, options: SplitOptions) -> OIDataset:
        return OIDataset(split=paths.split, img_dir=paths.img_dir, ann_file=paths.ann_file,
                         dict_file=paths.dict_file, filter_empty_rels=options.filter_empty_rels,
                         filter_duplicate_rels=options.filter_duplicate_rels, rebalance=options.rebalance,
                         transforms=options.transforms, resampling=options.resampling)

    def statistics(self, cfg, paths: OIPaths, cache_file: str) -> FrequencyStatistics:
        return load_or_compute_oi_statistics(paths.ann_file, paths.dict_file, cache_file)

    def write_dataset(self, output: str, splits, images: str) -> WrittenDataset:
        """``output`` is the data root: ``<output>/openimages/open_image_v6/``."""
        return write_oi_dataset(output, splits, images, dict(zip(SPLITS, self.dataset_names())))
