"""Zero-shot triplets: test triplets absent from training, in SGB's file format."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rebalance_hca.evaluation import compute_zeroshot_triplets, load_zeroshot_triplets, save_zeroshot_triplets

SGB_FILE = Path(__file__).resolve().parents[2] / "shared" / "vg" / "zeroshot_triplet.pytorch"


def test_unique_sorted_test_triplets_unseen_in_training(tmp_path):
    train = np.array([[1, 2, 3], [1, 2, 4], [5, 6, 7]])
    test = torch.tensor([[5, 6, 7], [9, 1, 1], [1, 2, 3], [9, 1, 1], [2, 1, 3], [1, 2, 5]])
    expected = [[1, 2, 5], [2, 1, 3], [9, 1, 1]]
    triplets = compute_zeroshot_triplets(train, test)
    assert triplets.dtype == np.int64 and triplets.tolist() == expected
    path = tmp_path / "zeroshot_triplet.pytorch"
    save_zeroshot_triplets(path, triplets)
    stored = torch.load(path)
    assert stored.dtype == torch.int64 and stored.tolist() == expected
    assert load_zeroshot_triplets(path).tolist() == expected


@pytest.mark.skipif(not SGB_FILE.exists(),
                    reason="needs SGB's VG150 zero-shot triplet file zeroshot_triplet.pytorch in ../shared/vg "
                           "(beside this checkout); it is absent")
def test_sgb_file_loads_in_the_same_format():
    triplets = load_zeroshot_triplets(SGB_FILE)
    assert triplets.shape == (5971, 3) and triplets.dtype == np.int64
    assert np.array_equal(triplets, np.unique(triplets, axis=0))  # SGB's file is unique and sorted, like ours


def test_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pytorch"):
        load_zeroshot_triplets(tmp_path / "missing.pytorch")
    damaged = tmp_path / "damaged.pytorch"
    damaged.write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(ValueError, match="damaged.pytorch cannot be read"):
        load_zeroshot_triplets(damaged)
