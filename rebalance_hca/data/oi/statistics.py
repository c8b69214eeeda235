"""Open Images V6's frequency statistics as PySGG's ``get_statistics`` counts them
(docs/reference.md#oi-frequency-statistics)."""
from __future__ import annotations

from ..statistics import FrequencyStatistics, cached_statistics, count_statistics, statistics_fingerprint
from .dataset import select_oi_split
from .files import load_oi_annotations, load_oi_vocabulary


def load_or_compute_oi_statistics(ann_file: str, dict_file: str, cache_file: str | None = None) -> FrequencyStatistics:
    """The whole train file after the empty-relation filter, no overlap filter, duplicates counted, bg pairs
    in original pixels; ``pred_dist`` as the log. Cached like VG150's (``cached_statistics``)."""
    def compute() -> FrequencyStatistics:
        vocabulary = load_oi_vocabulary(dict_file)
        ann = load_oi_annotations(ann_file)
        return count_statistics(ann.labels, ann.boxes, select_oi_split(ann), len(vocabulary.ind_to_classes),
                                len(vocabulary.ind_to_predicates))

    fingerprint = statistics_fingerprint({"ann_file": ann_file, "dict_file": dict_file})
    return cached_statistics(cache_file, fingerprint, compute)
