"""Frequency statistics of a scene-graph JSON dataset, counted as VG150's (docs/reference.md#frequency-statistics)
over its train file."""
from __future__ import annotations

from ..statistics import FrequencyStatistics, cached_statistics, count_statistics, statistics_fingerprint
from .dataset import select_json_split
from .files import load_json_split, load_json_vocabulary


def load_or_compute_json_statistics(train_file: str, vocabulary_file: str,
                                    cache_file: str | None = None) -> FrequencyStatistics:
    """The train file's images with an object and a relation, relations between overlapping or touching
    boxes only (``select_json_split``), no de-duplication, no rebalancing; bg pairs from the stored pixel boxes. Cached
    like VG150's (``cached_statistics``)."""
    def compute() -> FrequencyStatistics:
        vocabulary = load_json_vocabulary(vocabulary_file)
        ann = load_json_split(train_file, vocabulary_file)
        return count_statistics(ann.labels, ann.boxes, select_json_split(ann, filter_non_overlap=True),
                                len(vocabulary.ind_to_classes), len(vocabulary.ind_to_predicates))

    fingerprint = statistics_fingerprint({"train_file": train_file, "vocabulary_file": vocabulary_file})
    return cached_statistics(cache_file, fingerprint, compute)
