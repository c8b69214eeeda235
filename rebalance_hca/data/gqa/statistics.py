"""GQA-200's frequency statistics as SHA-GCL's ``get_GQA_statistics`` counts them (docs/data.md#gqa-200)."""
from __future__ import annotations

from ..statistics import FrequencyStatistics, cached_statistics, count_statistics, statistics_fingerprint
from .dataset import ignored_record, select_gqa_split
from .files import check_vocabulary_fits, load_gqa_annotations, load_gqa_vocabulary


def load_or_compute_gqa_statistics(train_file: str, dict_file: str,
                                   cache_file: str | None = None) -> FrequencyStatistics:
    """The whole train file after the empty filter (records without a relation or a box dropped), no overlap
    filter, no de-duplication (duplicates counted), bg pairs from the stored, unclamped pixel boxes (positive
    intersection without +1; all pairs of an image without any); ``pred_dist`` as the log. Cached like
    VG150's (``cached_statistics``)."""
    def compute() -> FrequencyStatistics:
        vocabulary = load_gqa_vocabulary(dict_file)
        ann = load_gqa_annotations(train_file, ignored_record("train"))
        check_vocabulary_fits(ann, dict_file, vocabulary)
        return count_statistics(ann.labels, ann.boxes, select_gqa_split(ann, "train"),
                                len(vocabulary.ind_to_classes), len(vocabulary.ind_to_predicates))

    fingerprint = statistics_fingerprint({"train_file": train_file, "dict_file": dict_file})
    return cached_statistics(cache_file, fingerprint, compute)
