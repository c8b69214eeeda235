"""Small vectorised tensor operations shared by the RPN and the SGDet post-processing."""
from __future__ import annotations

import torch
from torch import Tensor


def rank_within_group(groups: Tensor) -> Tensor:
    """Position of each entry among the entries of its group, in the given order.

    groups: (M,) int64 group id of each entry, entries already ordered by priority (e.g. decreasing score).
    Returns (M,) int64: 0 for the first entry of each group, 1 for the second, ...
    Example: groups [3, 1, 3, 3, 1] -> [0, 0, 1, 2, 1].
    """
    sorted_groups, order = torch.sort(groups, stable=True)
    first_of_group = torch.searchsorted(sorted_groups, sorted_groups)
    ranks_sorted = torch.arange(groups.numel(), device=groups.device) - first_of_group
    ranks = torch.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def keep_top_per_group(keep: Tensor, groups: Tensor, max_per_group: int) -> Tensor:
    """Drop entries beyond the first ``max_per_group`` of each group.

    keep: (M,) indices ordered by decreasing score (as torchvision ``batched_nms`` returns them).
    groups: (M,) group id of each entry of ``keep`` (e.g. ``labels[keep]``).
    Returns the kept subset of ``keep``, order preserved. ``max_per_group`` <= 0 means no limit.
    """
    if max_per_group <= 0:
        return keep
    return keep[rank_within_group(groups) < max_per_group]
