"""Batch samplers: aspect-ratio-grouped, iteration-based training batches sharded across ranks, and
sequential sharded test batches. Every sampler is deterministic given its seed, so resume at
``start_iter`` replays exactly the batches a run without interruption would have drawn."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


def aspect_ratio_groups(aspect_ratios: np.ndarray) -> np.ndarray:
    """SGB's two groups: 0 for h/w < 1 (landscape), 1 for h/w >= 1. (I,) float -> (I,) int64."""
    return (np.asarray(aspect_ratios) >= 1.0).astype(np.int64)


class IterationBatchSampler(torch.utils.data.Sampler):
    """Yields ``num_iterations - start_iter`` batches of ``batch_size`` dataset indices for this rank.

    Each epoch is a seeded permutation of all images (seed + epoch), dealt to ranks round-robin; within a
    rank, images of one aspect group are batched together in permutation order (SGB's GroupedBatchSampler)
    and batches are ordered by their first image. Incomplete batches at the end of an epoch are dropped.
    """

    def __init__(self, group_ids: np.ndarray, batch_size: int, num_iterations: int, start_iter: int = 0,
                 seed: int = 0, rank: int = 0, world_size: int = 1, group_by_aspect: bool = True) -> None:
        self.group_ids = np.asarray(group_ids) if group_by_aspect else np.zeros(len(group_ids), dtype=np.int64)
        self.batch_size = batch_size
        self.num_iterations = num_iterations
        self.start_iter = start_iter
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        if len(self.group_ids) < world_size * batch_size:
            raise ValueError(
                f"{len(self.group_ids)} images cannot fill one batch of {batch_size} on each of {world_size} "
                "ranks; lower SOLVER.IMS_PER_BATCH"
            )

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch for this rank, in the order they are served."""
        permutation = np.random.default_rng(self.seed + epoch).permutation(len(self.group_ids))
        mine = permutation[self.rank::self.world_size]
        batches = []
        for group in np.unique(self.group_ids):
            members = mine[self.group_ids[mine] == group]
            full = len(members) // self.batch_size * self.batch_size
            batches.extend(np.split(members[:full], full // self.batch_size) if full else [])
        position = np.empty(len(self.group_ids), dtype=np.int64)
        position[mine] = np.arange(len(mine))
        return sorted(batches, key=lambda batch: position[batch[0]])

    def __iter__(self) -> Iterator[list[int]]:
        iteration, epoch = 0, 0
        while iteration < self.num_iterations:
            batches = self.epoch_batches(epoch)
            if not batches:
                raise ValueError("no full batch fits one aspect-ratio group; lower SOLVER.IMS_PER_BATCH")
            if iteration + len(batches) <= self.start_iter:
                iteration += len(batches)
            else:
                for batch in batches:
                    if iteration >= self.num_iterations:
                        return
                    if iteration >= self.start_iter:
                        yield batch.tolist()
                    iteration += 1
            epoch += 1

    def __len__(self) -> int:
        return max(self.num_iterations - self.start_iter, 0)


class InferenceBatchSampler(torch.utils.data.Sampler):
    """Sequential batches over this rank's share (indices ≡ rank mod world_size), no padding or repeats."""

    def __init__(self, num_images: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = np.arange(rank, num_images, world_size)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start:start + self.batch_size].tolist()

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)
