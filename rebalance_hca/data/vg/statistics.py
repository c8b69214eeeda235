"""VG150's frequency statistics as SGB's ``get_VG_statistics`` counts them
(docs/reference.md#frequency-statistics): the train split after the val carve-out, with the overlap filter
on, no de-duplication, no rebalancing; boxes in the 1024 frame."""
from __future__ import annotations

from ..statistics import FrequencyStatistics, cached_statistics, count_statistics, statistics_fingerprint
from .files import load_annotations, load_vocabulary
from .index import select_split


def load_or_compute_statistics(roidb_file: str, dict_file: str, num_val_im: int,
                               cache_file: str | None = None) -> FrequencyStatistics:
    """Statistics of the train split, reused from ``cache_file`` when it was written for the same files and
    ``num_val_im`` (``cached_statistics``)."""
    def compute() -> FrequencyStatistics:
        vocabulary = load_vocabulary(dict_file)
        ann = load_annotations(roidb_file)
        index = select_split(ann, "train", filter_empty_rels=True, filter_non_overlap=True, num_val_im=num_val_im)
        return count_statistics(ann.labels, ann.boxes_1024, index, len(vocabulary.ind_to_classes),
                                len(vocabulary.ind_to_predicates))

    fingerprint = statistics_fingerprint({"roidb_file": roidb_file, "dict_file": dict_file}, num_val_im=num_val_im)
    return cached_statistics(cache_file, fingerprint, compute)
