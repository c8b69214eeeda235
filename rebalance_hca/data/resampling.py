"""BGNN's bi-level resampling (PySGG ``DATA_RESAMPLING_METHOD: bilvl``; docs/reference.md#bi-level-resampling), seeded.

Image level: predicate p gets the repeat factor r_p = max(1, sqrt(repeat_factor / f_p)), f_p its share of the
split's relations, rounded stochastically once; an image is served r = max r_p over its predicates times per
epoch (the training sampler repeats it). Instance level: in an image with r > 1, each relation is masked
(predicate -1: neither a positive nor a negative pair) with probability drop_rate * (1 - r_p / r), drawn
afresh at every access from the global numpy generator, which the loader seeds per sample key.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASKED_PREDICATE = -1


@dataclass(frozen=True)
class ResamplingOptions:
    """MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING_PARAM's REPEAT_FACTOR and INSTANCE_DROP_RATE, and the seed of
    the stochastic rounding (derived from the run's SEED)."""

    repeat_factor: float = 0.1
    drop_rate: float = 0.85
    seed: int = 0


@dataclass(frozen=True)
class BiLevelResampling:
    """predicate_factors: (P,) int64 r_p (1 for the background column); image_factors: (I,) int64 r per
    image of the split; drop_rate: the instance drop rate."""

    predicate_factors: np.ndarray
    image_factors: np.ndarray
    drop_rate: float

    def repeated_indices(self) -> np.ndarray:
        """Dataset indices of one resampled epoch, image i repeated image_factors[i] times. -> (sum r,) int64."""
        return np.repeat(np.arange(len(self.image_factors)), self.image_factors)

    def mask_relations(self, index: int, relations: np.ndarray) -> np.ndarray:
        """relations (R, 3) of image ``index`` -> a copy with dropped rows' predicate set to -1."""
        image_factor = self.image_factors[index]
        if image_factor <= 1 or len(relations) == 0:
            return relations
        drop_probability = self.drop_rate * (1.0 - self.predicate_factors[relations[:, 2]] / image_factor)
        dropped = np.random.random(len(relations)) < drop_probability
        masked = relations.copy()
        masked[dropped, 2] = MASKED_PREDICATE
        return masked


def bilevel_resampling(relations: np.ndarray, rel_offsets: np.ndarray, num_predicates: int,
                       options: ResamplingOptions) -> BiLevelResampling:
    """The factors of a split from its relations.

    relations: (R, 3) [subject, object, predicate 1..P-1], the split's stored rows (duplicates counted;
    BGNN counts the relation map after its random de-duplication); rel_offsets: (I + 1,) CSR offsets per image.
    The rounding draws from ``options.seed`` alone, so the factors are the same in every process and after a
    resume.
    """
    repeat_factor, drop_rate = options.repeat_factor, options.drop_rate
    if repeat_factor <= 0 or not 0.0 <= drop_rate <= 1.0:
        raise ValueError(f"bi-level resampling needs repeat_factor > 0 and drop_rate in [0, 1], got "
                         f"{repeat_factor} and {drop_rate}")
    predicates = relations[:, 2]
    frequency = np.bincount(predicates, minlength=num_predicates)[1:] / max(len(predicates), 1)
    present = frequency > 0
    factor = np.ones(len(frequency))  # an absent predicate is in no image: its factor is never used
    factor[present] = np.maximum(np.sqrt(repeat_factor / frequency[present]), 1.0)
    whole = np.floor(factor)
    rounded_up = np.random.default_rng(options.seed).random(len(factor)) < factor - whole
    predicate_factors = np.concatenate([[1], (whole + rounded_up).astype(np.int64)])
    image_of_rel = np.repeat(np.arange(len(rel_offsets) - 1), np.diff(rel_offsets))
    image_factors = np.ones(len(rel_offsets) - 1, dtype=np.int64)
    np.maximum.at(image_factors, image_of_rel, predicate_factors[predicates])
    return BiLevelResampling(predicate_factors, image_factors, float(drop_rate))
