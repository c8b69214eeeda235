"""Batch samplers, and the dataset view that serves what they yield.

Samplers yield batches of sample keys ``(dataset index, sample seed)``, the seed derived from (SEED, epoch,
index); ``SeededDataset`` computes each sample with the global generators seeded by its key. A sample's
random augmentation thus depends on its key only — not on the process (main or worker) that loads it, nor on
what was drawn before — and every sampler is deterministic given its seed, so resume at ``start_iter``
serves exactly the samples a run without interruption would have.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..utils.seed import derived_seed, seeded_global_generators

SampleKey = tuple[int, int]  # (dataset index, sample seed)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of dataset item ``index`` in ``epoch`` of a run seeded ``seed`` (a test pass is epoch 0)."""
    return derived_seed(seed, "sample", epoch, index)


def sample_keys(indices: np.ndarray, seed: int, epoch: int) -> list[SampleKey]:
    """(B,) int dataset indices -> B keys (index, sample seed)."""
    return [(index, sample_seed(seed, epoch, index)) for index in map(int, indices)]


def aspect_ratio_groups(aspect_ratios: np.ndarray) -> np.ndarray:
    """SGB's two groups: 0 for h/w < 1 (landscape), 1 for h/w >= 1. (I,) float -> (I,) int64."""
    return (np.asarray(aspect_ratios) >= 1.0).astype(np.int64)


class IterationBatchSampler(torch.utils.data.Sampler):
    """Yields ``num_iterations - start_iter`` batches of ``batch_size`` sample keys for this rank.

    Each epoch is a seeded permutation of all images (seed + epoch), dealt to ranks round-robin; within a
    rank, images of one aspect group are batched together in permutation order (SGB's GroupedBatchSampler)
    and batches are ordered by their first image. Incomplete batches are dropped, and every rank serves only
    as many batches as the rank with the fewest (each rank computes every rank's share from the shared seed),
    so all ranks are in the same epoch at every step and no image is served to two ranks within an epoch.

    ``repeated_indices`` (bi-level resampling): the dataset indices of one epoch, an image listed as many
    times as it repeats. An epoch then permutes these positions, and a sample's seed derives from its
    position, so two copies of an image get different augmentations and relation masks. Without it the
    positions are the dataset indices (keys as before).
    """

    def __init__(self, group_ids: np.ndarray, batch_size: int, num_iterations: int, start_iter: int = 0,
                 seed: int = 0, rank: int = 0, world_size: int = 1, group_by_aspect: bool = True,
                 repeated_indices: np.ndarray | None = None) -> None:
        self.dataset_index = (np.arange(len(group_ids)) if repeated_indices is None
                              else np.asarray(repeated_indices, dtype=np.int64))
        group_ids = np.asarray(group_ids)[self.dataset_index]
        self.group_ids = group_ids if group_by_aspect else np.zeros(len(group_ids), dtype=np.int64)
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

    def rank_batches(self, epoch: int, rank: int) -> list[np.ndarray]:
        """Every full batch of ``rank``'s share of ``epoch``, in serving order; each (batch_size,) int64
        positions (dataset indices unless ``repeated_indices`` was given)."""
        permutation = np.random.default_rng(self.seed + epoch).permutation(len(self.group_ids))
        share = permutation[rank::self.world_size]
        batches = []
        for group in np.unique(self.group_ids):
            members = share[self.group_ids[share] == group]
            full = len(members) // self.batch_size * self.batch_size
            batches.extend(np.split(members[:full], full // self.batch_size) if full else [])
        position = np.empty(len(self.group_ids), dtype=np.int64)
        position[share] = np.arange(len(share))
        return sorted(batches, key=lambda batch: position[batch[0]])

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` in serving order, as many as every other rank serves.

        Raises ValueError, the same on every rank, when some rank's share has no full batch.
        """
        every_rank = [self.rank_batches(epoch, rank) for rank in range(self.world_size)]
        common_count = min(len(batches) for batches in every_rank)
        if common_count == 0:
            empty_rank = next(rank for rank, batches in enumerate(every_rank) if not batches)
            raise ValueError(
                f"epoch {epoch}: rank {empty_rank} has no full batch of {self.batch_size} images within one "
                f"aspect-ratio group ({len(self.group_ids)} images over {self.world_size} ranks); lower "
                "SOLVER.IMS_PER_BATCH or set DATALOADER.ASPECT_RATIO_GROUPING False"
            )
        return every_rank[self.rank][:common_count]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        iteration, epoch = 0, 0
        while iteration < self.num_iterations:
            batches = self.epoch_batches(epoch)
            first, stop = max(self.start_iter - iteration, 0), self.num_iterations - iteration
            for batch in batches[first:stop]:
                yield [(int(self.dataset_index[position]), sample_seed(self.seed, epoch, int(position)))
                       for position in batch]
            iteration += len(batches)
            epoch += 1

    def __len__(self) -> int:
        return max(self.num_iterations - self.start_iter, 0)


class InferenceBatchSampler(torch.utils.data.Sampler):
    """Sequential batches of sample keys over this rank's share (indices ≡ rank mod world_size), no padding
    or repeats; sample seeds are those of epoch 0."""

    def __init__(self, num_images: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0) -> None:
        self.indices = np.arange(rank, num_images, world_size)
        self.batch_size = batch_size
        self.seed = seed

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield sample_keys(self.indices[start:start + self.batch_size], self.seed, epoch=0)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)


class SeededDataset(torch.utils.data.Dataset):
    """``dataset`` read by sample keys: ``seeded[(index, seed)]`` is ``dataset[index]`` computed inside
    ``seeded_global_generators(seed)``, so the random draws of its transforms and targets (python, numpy and
    torch global CPU generators) depend on the key only and leave the caller's streams where they were.

    Every other attribute is the wrapped dataset's (``loader.dataset.get_img_info(i)``, ``.ind_to_classes``).
    """

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey):
        index, seed = key
        with seeded_global_generators(seed):
            return self.dataset[index]

    def __getattr__(self, name: str):
        if name == "dataset":  # not set yet, e.g. while a worker unpickles this object
            raise AttributeError(name)
        return getattr(self.dataset, name)
