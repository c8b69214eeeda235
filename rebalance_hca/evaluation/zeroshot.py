"""Zero-shot triplets: (subject class, object class, predicate) of the test split never seen in training.

Same format as SGB's ``zeroshot_triplet.pytorch``: an int64 tensor (T, 3), rows unique and sorted
lexicographically, saved with ``torch.save``.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..utils.atomic import atomic_write
from ..utils.torch_files import load_torch_file
from ._arrays import check_range, get_array
from .groundtruth import CLASS_ID_LIMIT, triplet_keys

__all__ = ["compute_zeroshot_triplets", "zeroshot_triplets_from_datasets", "save_zeroshot_triplets",
           "load_zeroshot_triplets"]


def compute_zeroshot_triplets(train_triplets: Any, test_triplets: Any) -> np.ndarray:
    """Unique test triplets absent from the training triplets.

    train_triplets, test_triplets: (R, 3) int [subject_class, object_class, predicate] (numpy or torch),
    one row per relation. Returns (T, 3) int64, unique rows in lexicographic order.
    """
    train = get_array({"train_triplets": train_triplets}, "train_triplets", "compute_zeroshot_triplets", 2, 3,
                      integer=True)
    test = get_array({"test_triplets": test_triplets}, "test_triplets", "compute_zeroshot_triplets", 2, 3,
                     integer=True)
    check_range(train, 0, CLASS_ID_LIMIT, "train_triplets", "compute_zeroshot_triplets")
    check_range(test, 0, CLASS_ID_LIMIT, "test_triplets", "compute_zeroshot_triplets")
    test_unique = np.unique(test, axis=0).astype(np.int64)
    seen = np.isin(triplet_keys(*test_unique.T), triplet_keys(*train.T))
    return test_unique[~seen]


def zeroshot_triplets_from_datasets(train_dataset: Any, test_dataset: Any) -> np.ndarray:
    """:func:`compute_zeroshot_triplets` of two datasets with ``relation_triplets()`` (e.g. VGDataset)."""
    return compute_zeroshot_triplets(train_dataset.relation_triplets(), test_dataset.relation_triplets())


def save_zeroshot_triplets(path: str | os.PathLike, triplets: Any) -> None:
    """Write (T, 3) triplets as an int64 tensor with ``torch.save``, atomically."""
    array = get_array({"triplets": triplets}, "triplets", "save_zeroshot_triplets", 2, 3, integer=True)
    with atomic_write(str(path)) as stream:
        torch.save(torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)), stream)


def load_zeroshot_triplets(path: str | os.PathLike) -> np.ndarray:
    """Read a zero-shot triplet file (ours or SGB's) as (T, 3) int64. Raises ValueError naming the file."""
    value = load_torch_file(str(path), "zero-shot triplet file")
    return get_array({"triplets": value}, "triplets", str(path), 2, 3, integer=True)
