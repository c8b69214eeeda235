"""The frequency-only baseline (neural-motifs' FREQ): no training, no image features for relations.

Each pair gets the training split's predicate distribution of its (subject class, object class):
    P(p | s, o) = (count(s, o, p) + λ·P(p)) / (Σ_p' count(s, o, p') + λ),   p = 1..P-1,  λ = 1
where P(p) = (count(p) + 1) / (Σ_p' count(p') + P - 1) is the overall predicate frequency (add-one
smoothed, so that no predicate has probability 0), so that class pairs never seen in training fall back to
the overall most frequent predicate. The logits are log P(p | s, o) with the background at -inf-like
``BACKGROUND_LOGIT``, so the post-processor's softmax returns exactly P(p | s, o): the pair's top predicate
is the most frequent one for its classes and pairs are ranked by that frequency (times the object scores).
Object classes: GT in PredCls, the detector's foreground argmax in SGCls / SGDet (scores from its logits).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..context import ContextInputs, ObjectContext
from ..object_labels import check_mode, foreground_argmax, one_hot_logits
from .base import RelationPredictor
from .rebalance import REBALANCE_KEYS
from .registry import PREDICTOR_OPTION_KEYS, PredictorParts, register_predictor

PRIOR_WEIGHT = 1.0
"""λ above: how many pseudo-relations of the overall predicate distribution each class pair starts with."""
BACKGROUND_LOGIT = -1.0e4


def conditional_predicate_log_frequency(fg_counts: np.ndarray) -> Tensor:
    """fg_counts (C, C, P) relation counts (column 0 ignored) -> (C, C, P) float32 log P(p | s, o), column 0
    = BACKGROUND_LOGIT."""
    counts = np.asarray(fg_counts, dtype=np.float64)[:, :, 1:]
    marginal = counts.sum(axis=(0, 1)) + 1.0
    prior = marginal / marginal.sum()
    conditional = (counts + PRIOR_WEIGHT * prior) / (counts.sum(axis=2, keepdims=True) + PRIOR_WEIGHT)
    log_frequency = np.full(fg_counts.shape, BACKGROUND_LOGIT, dtype=np.float32)
    log_frequency[:, :, 1:] = np.log(conditional)
    return torch.from_numpy(log_frequency)


class FrequencyBaselinePredictor(RelationPredictor):
    """mode: "predcls" | "sgcls" | "sgdet"; fg_counts: (C, C, P) training relation counts."""

    uses_union_features = False
    requires_training = False

    def __init__(self, mode: str, fg_counts: np.ndarray) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.register_buffer("log_frequency", conditional_predicate_log_frequency(fg_counts))

    def object_context(self, inputs: ContextInputs) -> ObjectContext:
        """Labels and logits of the objects (N,): the GT (one-hot) in PredCls, else the detector's."""
        if self.mode == "predcls":
            logits, labels = one_hot_logits(inputs.labels, self.log_frequency.shape[0]), inputs.labels
        else:
            logits, labels = inputs.detector_logits.float(), foreground_argmax(inputs.detector_logits)
        return ObjectContext(logits, labels, edge_context=logits.new_zeros(len(labels), 0))

    def relation_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None) -> Tensor:
        """(R, P) log P(p | s, o) of the pairs (R, 2)."""
        labels = context.object_labels[pairs]
        return self.log_frequency[labels[:, 0], labels[:, 1]]


IGNORED_KEYS = tuple(key for key in PREDICTOR_OPTION_KEYS if key not in REBALANCE_KEYS)
"""A trained model's config tests this baseline as it is (the quickstart does): its sizes and classifier
options are ignored; the recipe's keys, which would change what is tested, are refused."""


@register_predictor("FrequencyBaselinePredictor", reads=(), ignores=IGNORED_KEYS)
def build_frequency_predictor(cfg, parts: PredictorParts) -> FrequencyBaselinePredictor:
    """The frequency-only baseline; it reads no option key."""
    return FrequencyBaselinePredictor(parts.mode, parts.fg_counts)
