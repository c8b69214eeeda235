"""GQA-200 as a dataset family: SHA-GCL's catalog names and files, ``GQADataset``, SHA-GCL's statistics and the
VG protocol over GQA-200's predicates (``GQA_PROTOCOL``)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ...evaluation.protocols import GQA_PROTOCOL
from ..family import (SPLITS, DatasetFamily, DatasetPaths, SplitOptions, TrainVocabulary, counted_vocabulary,
                      prefixed_names)
from ..statistics import FrequencyStatistics
from ..writing import WrittenDataset
from .dataset import GQADataset, ignored_record
from .files import GQA_FILES, GQA_FOLDER, check_vocabulary_fits, load_gqa_annotations, load_gqa_vocabulary
from .statistics import load_or_compute_gqa_statistics
from .writer import write_gqa_dataset

GQA_PREFIX = "GQA_200_"


@dataclass(frozen=True)
class GQAPaths(DatasetPaths):
    """Absolute paths of the GQA-200 inputs (all splits share them: val and test both read ``test_file``)."""

    img_dir: str
    dict_file: str
    train_file: str
    test_file: str


class GQA200Family(DatasetFamily):
    """SHA-GCL's names ``GQA_200_{train,val,test}``, files under ``<data root>/gqa/``."""

    name = "GQA-200"
    protocol = GQA_PROTOCOL
    key = "gqa200"

    def dataset_names(self) -> tuple[str, ...]:
        return prefixed_names(GQA_PREFIX)

    def paths(self, name: str, data_root: str) -> GQAPaths:
        folder = os.path.join(data_root, GQA_FOLDER)
        return GQAPaths(split=name[len(GQA_PREFIX):],
                        **{key: os.path.join(folder, relative) for key, relative in GQA_FILES.items()})

    def train_vocabulary(self, paths: GQAPaths) -> TrainVocabulary:
        """``GQA_200_ID_Info.json``'s names; the counts are the train file's relations per predicate (the
        loader reads no counts from the vocabulary file), ranked by count (ties by id)."""
        vocabulary = load_gqa_vocabulary(paths.dict_file)
        annotations = load_gqa_annotations(paths.train_file, ignored_record("train"))
        check_vocabulary_fits(annotations, paths.dict_file, vocabulary)
        return counted_vocabulary(paths.train_file, vocabulary.ind_to_classes, vocabulary.ind_to_predicates,
                                  annotations.relations[:, 2])

    def build_dataset(self, cfg, paths: GQAPaths, options: SplitOptions) -> GQADataset:
        """SHA-GCL keeps only images with a relation and a box in every split, whatever MODEL.RELATION_ON
        says (``options.filter_empty_rels`` is not read); val is the first DATASETS.NUM_VAL_IM of them."""
        return GQADataset(split=paths.split, img_dir=paths.img_dir, dict_file=paths.dict_file,
                          train_file=paths.train_file, test_file=paths.test_file,
                          filter_duplicate_rels=options.filter_duplicate_rels, num_val_im=cfg.DATASETS.NUM_VAL_IM,
                          rebalance=options.rebalance, transforms=options.transforms, resampling=options.resampling)

    def statistics(self, cfg, paths: GQAPaths, cache_file: str) -> FrequencyStatistics:
        return load_or_compute_gqa_statistics(paths.train_file, paths.dict_file, cache_file)

    def write_dataset(self, output: str, splits, images: str) -> WrittenDataset:
        """``output`` is the data root: ``<output>/gqa/``; val is the start of the test file
        (DATASETS.NUM_VAL_IM = its size)."""
        return write_gqa_dataset(output, splits, images, dict(zip(SPLITS, self.dataset_names())))
