"""BGNN's bi-level resampling (docs/reference.md#bi-level-resampling):
factors worked out by hand, seeded masks, and the training
sampler's repeats staying exact under resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rebalance_hca.data.resampling import ResamplingOptions, bilevel_resampling
from rebalance_hca.data.samplers import IterationBatchSampler, sample_seed
from rebalance_hca.modeling.relation_head.sampling import RelationPairSampler
from rebalance_hca.utils.seed import seeded_global_generators

# Image 0: four "1" and one "2"; image 1: four "1"; image 2: one "3". Frequencies 0.8, 0.1, 0.1.
RELATIONS = np.array([[0, 1, 1]] * 4 + [[1, 0, 2]] + [[0, 1, 1]] * 4 + [[0, 1, 3]])
OFFSETS = np.array([0, 5, 9, 10])


def test_factors_by_hand():
    # repeat factor 0.4: r_1 = max(1, sqrt(0.4 / 0.8)) = 1, r_2 = r_3 = sqrt(0.4 / 0.1) = 2 (no rounding to draw).
    resampling = bilevel_resampling(RELATIONS, OFFSETS, 4, ResamplingOptions(0.4, 0.85, seed=3))
    assert resampling.predicate_factors.tolist() == [1, 1, 2, 2]
    assert resampling.image_factors.tolist() == [2, 1, 2]
    assert resampling.repeated_indices().tolist() == [0, 0, 1, 2, 2]


def test_stochastic_rounding_depends_on_the_seed_only():
    # repeat factor 0.2: r_2 = r_3 = sqrt(2) = 1.414..., rounded up with probability 0.414.
    draws = [tuple(bilevel_resampling(RELATIONS, OFFSETS, 4, ResamplingOptions(0.2, 0.85, seed)).predicate_factors)
             for seed in range(40)]
    assert draws[:5] == [tuple(bilevel_resampling(RELATIONS, OFFSETS, 4, ResamplingOptions(0.2, 0.85, seed))
                               .predicate_factors) for seed in range(5)]
    assert {factors[2] for factors in draws} == {1, 2} and all(factors[1] == 1 for factors in draws)


def test_instance_drop_masks_only_repeated_images_and_never_the_rarest_predicate():
    resampling = bilevel_resampling(RELATIONS, OFFSETS, 4, ResamplingOptions(0.4, 0.85, seed=0))
    image0 = RELATIONS[0:5]
    masked_counts = []
    for seed in range(200):
        with seeded_global_generators(seed):
            masked = resampling.mask_relations(0, image0)
        assert masked[4].tolist() == [1, 0, 2]  # r_p = r: drop probability 0.85 * (1 - 2 / 2) = 0
        assert set(masked[:4, 2].tolist()) <= {1, -1}
        masked_counts.append(int((masked[:, 2] == -1).sum()))
        np.testing.assert_array_equal(resampling.mask_relations(1, RELATIONS[5:9]), RELATIONS[5:9])  # r = 1
    # "1" rows are dropped with probability 0.85 * (1 - 1 / 2) = 0.425: about 1.7 of 4 per draw.
    assert 1.4 < np.mean(masked_counts) < 2.0
    with seeded_global_generators(7):
        first = resampling.mask_relations(0, image0)
    with seeded_global_generators(7):
        again = resampling.mask_relations(0, image0)
    np.testing.assert_array_equal(first, again)


def test_sampler_repeats_images_with_distinct_seeds_and_resumes_exactly():
    repeated = np.array([0, 0, 1, 2, 2, 3])
    sampler = IterationBatchSampler(np.zeros(4, dtype=np.int64), batch_size=2, num_iterations=9, seed=5,
                                    repeated_indices=repeated)
    batches = list(sampler)
    epoch0 = [key for batch in batches[:3] for key in batch]
    assert sorted(index for index, _ in epoch0) == [0, 0, 1, 2, 2, 3]
    assert len({seed for _, seed in epoch0}) == 6  # the two copies of an image get different seeds
    resumed = list(IterationBatchSampler(np.zeros(4, dtype=np.int64), batch_size=2, num_iterations=9, seed=5,
                                         start_iter=4, repeated_indices=repeated))
    assert resumed == batches[4:]
    plain = IterationBatchSampler(np.zeros(4, dtype=np.int64), batch_size=2, num_iterations=2, seed=5)
    assert all(seed == sample_seed(5, 0, index) for batch in plain for index, seed in batch)


def test_masked_pairs_are_neither_positives_nor_negatives():
    sampler = RelationPairSampler(batch_size_per_image=16, positive_fraction=0.5)
    relation = torch.tensor([[0, 3, -1], [0, 0, 0], [0, 0, 0]])
    pairs, labels = sampler.gt_box_pairs(relation)
    pair_list = pairs.tolist()
    assert [0, 2] not in pair_list
    assert labels[pair_list.index([0, 1])] == 3 and len(pair_list) == 5  # 6 off-diagonal pairs minus the masked one


@pytest.mark.parametrize("options", [ResamplingOptions(0.0, 0.5), ResamplingOptions(0.1, 1.5)])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError, match="repeat_factor"):
        bilevel_resampling(RELATIONS, OFFSETS, 4, options)
