"""The relation classifiers of the predictors (docs/reference.md#frequency-bias, #general-and-clean-classifiers).

A ``PairClassifier`` is RB's general classifier, and, as a second instance, its clean classifier:
    logits = rel_compress(visual_rep) + ctx_compress(pair_rep) + dropout_p(freq_bias[label_s, label_o])
The frequency bias is a trainable table initialised with the training statistics' ``pred_dist``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def xavier_linear(in_features: int, out_features: int) -> nn.Linear:
    """Linear layer with xavier-normal weight and zero bias (SGB's ``layer_init(xavier=True)``)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def kaiming_fc(in_features: int, out_features: int) -> nn.Linear:
    """Linear layer with Kaiming-uniform (a = 1) weight and zero bias (SGB's ``make_fc``)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.kaiming_uniform_(layer.weight, a=1)
    nn.init.zeros_(layer.bias)
    return layer


def post_embedding(hidden_dim: int, out_features: int) -> nn.Linear:
    """SGB's ``post_emb``: Linear(hidden_dim, out_features) with weight N(0, 10 / sqrt(hidden_dim)), bias 0;
    the first half of its output is an object's head (subject) vector, the second half its tail vector."""
    layer = nn.Linear(hidden_dim, out_features)
    nn.init.normal_(layer.weight, 0.0, 10.0 / math.sqrt(hidden_dim))
    nn.init.zeros_(layer.bias)
    return layer


def head_tail_pairs(edge_representation: Tensor, pairs: Tensor) -> Tensor:
    """edge_representation (N, 2h) = post_emb(edge context), pairs (R, 2) flat object indices (subject,
    object) -> (R, 2h) [head_s ; tail_o].

    ``index_select``, not ``head[pairs[:, 0]]``: on a CPU with several threads the backward of advanced
    indexing adds the rows of objects in many pairs with atomic adds in whatever order the threads run, so
    the gradient changed from run to run (docs/training.md#reproducibility); ``index_select``'s backward adds
    them in pair order, whatever the thread count."""
    head, tail = edge_representation.chunk(2, dim=1)
    return torch.cat([head.index_select(0, pairs[:, 0]), tail.index_select(0, pairs[:, 1])], dim=1)


class FrequencyBias(nn.Module):
    """Predicate log-frequencies per (subject class, object class): an Embedding(C·C, P) initialised with
    ``pred_dist`` (C, C, P) and trained (SGB's FrequencyBias). In training the looked-up vector goes through
    ``F.dropout(p=dropout)`` (RB: 0.3; entries zeroed, the rest scaled by 1/(1 - p)).

    forward(pair_labels (R, 2) int64 [subject class, object class]) -> (R, P).
    """

    def __init__(self, pred_dist: Tensor, dropout: float = 0.0) -> None:
        super().__init__()
        num_classes, _, num_predicates = pred_dist.shape
        self.num_classes = num_classes
        self.dropout = dropout
        self.obj_baseline = nn.Embedding(num_classes * num_classes, num_predicates)
        with torch.no_grad():
            self.obj_baseline.weight.copy_(pred_dist.reshape(num_classes * num_classes, num_predicates))

    def forward(self, pair_labels: Tensor) -> Tensor:
        bias = self.obj_baseline(pair_labels[:, 0] * self.num_classes + pair_labels[:, 1])
        return F.dropout(bias, p=self.dropout, training=self.training) if self.dropout > 0 else bias


class PairClassifier(nn.Module):
    """One relation classifier: visual_rep (R, pooling_dim), pair_rep (R, 2d), pair_labels (R, 2) -> (R, P).

    pred_dist: (C, C, P) initial frequency bias, or None for no bias term (PREDICT_USE_BIAS False).
    """

    def __init__(self, pooling_dim: int, pair_dim: int, num_predicates: int, pred_dist: Tensor | None,
                 frequency_bias_dropout: float = 0.0) -> None:
        super().__init__()
        self.rel_compress = xavier_linear(pooling_dim, num_predicates)
        self.ctx_compress = xavier_linear(pair_dim, num_predicates)
        self.freq_bias = FrequencyBias(pred_dist, frequency_bias_dropout) if pred_dist is not None else None

    def forward(self, visual_rep: Tensor, pair_rep: Tensor, pair_labels: Tensor) -> Tensor:
        logits = self.rel_compress(visual_rep) + self.ctx_compress(pair_rep)
        if self.freq_bias is not None:
            logits = logits + self.freq_bias(pair_labels)
        return logits
