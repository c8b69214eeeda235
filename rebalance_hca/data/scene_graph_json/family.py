"""The scene-graph JSON format as a dataset family: the names ``json:<folder>:<split>``, ``JSONSceneGraphDataset``,
VG150-style statistics and SGB's (VG) evaluation protocol (docs/data.md#scene-graph-json)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ...evaluation.protocols import SGB_PROTOCOL
from ..family import SPLITS, DatasetFamily, DatasetPaths, SplitOptions, TrainVocabulary, counted_vocabulary
from ..statistics import FrequencyStatistics
from ..writing import WrittenDataset, catalog_overrides
from .dataset import JSONSceneGraphDataset
from .files import IMAGE_FOLDER, VOCABULARY_FILE, load_json_split, load_json_vocabulary, split_file_name
from .statistics import load_or_compute_json_statistics
from .writer import write_json_dataset

JSON_PREFIX = "json:"


@dataclass(frozen=True)
class JSONPaths(DatasetPaths):
    """Absolute paths of one split of a scene-graph JSON dataset folder; ``train_file`` is the folder's train
    split (vocabulary counts and statistics)."""

    folder: str
    img_dir: str
    vocabulary_file: str
    split_file: str
    train_file: str


def parse_json_name(name: str) -> tuple[str, str]:
    """``json:<folder>:<split>`` -> (folder, split); ValueError naming the expected form otherwise."""
    folder, _, split = name[len(JSON_PREFIX):].rpartition(":")
    if not name.startswith(JSON_PREFIX) or not folder or split not in SPLITS:
        raise ValueError(f"dataset name {name!r}: a scene-graph JSON dataset is named "
                         f"'json:<folder>:<split>' with split one of {', '.join(SPLITS)}")
    return folder, split


class SceneGraphJSONFamily(DatasetFamily):
    """Any folder in the scene-graph JSON format: ``json:<folder>:train|val|test``, the folder absolute or
    relative to the data root."""

    name = "scene-graph JSON"
    protocol = SGB_PROTOCOL
    key = "json"

    def dataset_names(self) -> tuple[str, ...]:
        return tuple(f"{JSON_PREFIX}<folder>:{split}" for split in SPLITS)

    def owns(self, name: str) -> bool:
        return name.startswith(JSON_PREFIX)

    def paths(self, name: str, data_root: str) -> JSONPaths:
        folder, split = parse_json_name(name)
        folder = os.path.join(data_root, folder)
        return JSONPaths(split=split, folder=folder, img_dir=os.path.join(folder, IMAGE_FOLDER),
                         vocabulary_file=os.path.join(folder, VOCABULARY_FILE),
                         split_file=os.path.join(folder, split_file_name(split)),
                         train_file=os.path.join(folder, split_file_name("train")))

    def train_vocabulary(self, paths: JSONPaths) -> TrainVocabulary:
        """``vocabulary.json``'s names; the counts are the train file's relations per predicate, ranked by count
        (ties by id)."""
        vocabulary = load_json_vocabulary(paths.vocabulary_file)
        annotations = load_json_split(paths.train_file, paths.vocabulary_file)
        return counted_vocabulary(paths.train_file, vocabulary.ind_to_classes, vocabulary.ind_to_predicates,
                                  annotations.relations[:, 2])

    def build_dataset(self, cfg, paths: JSONPaths, options: SplitOptions) -> JSONSceneGraphDataset:
        """Each split is its own file: no val carve-out (DATASETS.NUM_VAL_IM is not read), no overlap filter."""
        return JSONSceneGraphDataset(split=paths.split, img_dir=paths.img_dir, vocabulary_file=paths.vocabulary_file,
                                     split_file=paths.split_file, filter_empty_rels=options.filter_empty_rels,
                                     filter_duplicate_rels=options.filter_duplicate_rels,
                                     rebalance=options.rebalance, transforms=options.transforms,
                                     resampling=options.resampling)

    def statistics(self, cfg, paths: JSONPaths, cache_file: str) -> FrequencyStatistics:
        return load_or_compute_json_statistics(paths.train_file, paths.vocabulary_file, cache_file)

    def write_dataset(self, output: str, splits, images: str) -> WrittenDataset:
        """``output`` is the dataset folder (``json:<output>:<split>``); boxes are written clamped, as the
        loader gives them."""
        write_json_dataset(output, splits, images)
        folder = os.path.abspath(output)
        return WrittenDataset(catalog_overrides(None, {split: f"{JSON_PREFIX}{folder}:{split}" for split in splits}))
