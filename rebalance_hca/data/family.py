"""The contract of a dataset family (VG150, Open Images V6, ...): everything the rest of the code asks of a
dataset that differs from one family to another. A family is one ``DatasetFamily`` subclass in its own
subfolder of ``data/`` (``vg/family.py``, ``oi/family.py``), registered once in ``data/registry.py``;
docs/data.md#adding-a-dataset walks through adding one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..evaluation.protocols import EvaluationProtocol
from .resampling import ResamplingOptions
from .scene_graph_dataset import SceneGraphDataset
from .split_index import RebalanceSpec
from .statistics import FrequencyStatistics
from .writing import WrittenDataset

SPLITS = ("train", "val", "test")


def prefixed_names(prefix: str) -> tuple[str, ...]:
    """SGB's naming of a catalog entry per split: ``<prefix>train``, ``<prefix>val``, ``<prefix>test``."""
    return tuple(prefix + split for split in SPLITS)


@dataclass(frozen=True)
class DatasetPaths:
    """The files of one catalog entry. ``split``: "train", "val" or "test"; a family's subclass adds its
    files as absolute paths (e.g. ``VGPaths.roidb_file``)."""

    split: str


@dataclass(frozen=True)
class TrainVocabulary:
    """What the model needs of the train dataset's vocabulary. C classes and P predicates, background at 0.

    source: the file the names (and counts) come from; predicate_counts: (P,) float64 training counts (index
    0 unused): VG150 the dictionary's ``predicate_count`` (as RB reads it), Open Images the relations of the
    train annotation file; predicate_order: predicate ids most frequent first (empty when there are no
    counts), the order stage-2 rebalancing caps.
    """

    source: str
    ind_to_classes: list[str]
    ind_to_predicates: list[str]
    predicate_counts: np.ndarray
    predicate_order: tuple[int, ...]


def counted_vocabulary(source: str, ind_to_classes: list[str], ind_to_predicates: list[str],
                       predicates: np.ndarray) -> TrainVocabulary:
    """A ``TrainVocabulary`` whose counts are the train file's relations per predicate (for a family without
    dictionary counts), ranked by count, ties by id. predicates: (R,) int64 ids 1..P-1 of every relation row."""
    counts = np.bincount(predicates, minlength=len(ind_to_predicates)).astype(np.float64)
    order = tuple(int(i) + 1 for i in np.argsort(-counts[1:], kind="stable"))
    return TrainVocabulary(source, ind_to_classes, ind_to_predicates, counts, order)


@dataclass(frozen=True)
class SplitOptions:
    """What ``build_dataset`` decides the same way for every family, from the config and its arguments.

    filter_empty_rels: drop images without relations (MODEL.RELATION_ON); filter_duplicate_rels: one random
    predicate per pair on the train split (DATASETS.FILTER_DUPLICATE_RELS); rebalance: the stage-2 split
    (train only); transforms: ``transforms(image_bgr_uint8 (H, W, 3), target) -> (image, target)`` or None;
    resampling: BGNN's bi-level resampling (train only) or None.
    """

    filter_empty_rels: bool
    filter_duplicate_rels: bool
    rebalance: RebalanceSpec | None
    transforms: Callable | None
    resampling: ResamplingOptions | None


class DatasetFamily(ABC):
    """One dataset family. A subclass sets the class attributes ``name`` (shown to users, e.g. "VG150"),
    ``key`` (its layout's name in tools, e.g. ``tools/convert_dataset.py --to vg150``) and ``protocol`` (its
    ``rebalance_hca.evaluation.EvaluationProtocol``: evaluation, report files, validation metric, whether
    zero-shot triplets are computed from the train split), and implements the methods below.
    Only ``build_dataset`` and ``statistics`` read the config."""

    name: str
    key: str
    protocol: EvaluationProtocol

    @abstractmethod
    def dataset_names(self) -> tuple[str, ...]:
        """The catalog names of the family's datasets as users write them in DATASETS.TRAIN / VAL / TEST (a
        family whose names follow a pattern gives the pattern); listed when a name is unknown."""

    def owns(self, name: str) -> bool:
        """Whether the catalog name ``name`` is one of this family's (by default: one of ``dataset_names``)."""
        return name in self.dataset_names()

    @abstractmethod
    def paths(self, name: str, data_root: str) -> DatasetPaths:
        """The files of the dataset ``name`` (which ``owns``) under the absolute data root ``data_root``."""

    @abstractmethod
    def train_vocabulary(self, paths: DatasetPaths) -> TrainVocabulary:
        """The class and predicate names and the training predicate counts of the train dataset at ``paths``."""

    @abstractmethod
    def build_dataset(self, cfg, paths: DatasetPaths, options: SplitOptions) -> SceneGraphDataset:
        """The split at ``paths`` with ``options`` and the family's own config keys (e.g. VG150's
        DATASETS.NUM_VAL_IM and overlap filter)."""

    @abstractmethod
    def statistics(self, cfg, paths: DatasetPaths, cache_file: str) -> FrequencyStatistics:
        """The frequency statistics of the train dataset at ``paths``, reused from / written to ``cache_file``
        (``rebalance_hca.data.statistics.cached_statistics``)."""

    @abstractmethod
    def write_dataset(self, output: str, splits: Mapping[str, SceneGraphDataset], images: str) -> WrittenDataset:
        """Write ``splits`` (split -> dataset of any family, built without duplicate filtering) in this family's
        layout at ``output`` (a new folder: the dataset folder or the data root the layout lives under), so that
        this family's loader, given the returned overrides, yields the same evaluation-form samples; what the
        layout cannot hold raises ``DataFormatError`` naming the split, image and field, and nothing is written.
        ``images``: "link", "copy" or "none" (``data.writing.place_images``)."""
