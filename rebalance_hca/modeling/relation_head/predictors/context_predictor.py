"""Predictors with a context module: ReBalance-HCA's (RB's ``TransformerTransferPredictor``, SPEC §4) and
SGB's ``TransformerPredictor`` baseline. Both share the pair classification; they differ in the context.

For a pair (s, o) of objects with edge context e (d) and union feature u (D):
    head, tail = split(post_emb(e))                    d -> 2d, N(0, 10/sqrt(d)) weight, zero bias
    pair_rep   = [head_s ; tail_o]                     2d
    visual_rep = post_cat(pair_rep) ⊙ up_dim(u)        post_cat 2d -> pooling_dim (xavier); up_dim only
                                                       when pooling_dim != D
    logits     = general(visual_rep, pair_rep, labels)  (see ``PairClassifier``)
With WITH_CLEAN_CLASSIFIER the output is the clean classifier's logits instead (the general one still
exists and is loaded from stage 1, SPEC §6.2). With WITH_TRANSFER_CLASSIFIER, at test time only, the output
logits are mapped by the fixed transfer matrix A: logits @ A.T (SPEC §4.7, §0).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..classifier import PairClassifier, xavier_linear
from ..confusion import TRANSFER_MATRIX_FORMS, TRANSFER_MATRIX_KEY, transfer_matrix
from ..context import AttentionOptions, ContextInputs, HybridCoAttentionContext, ObjectContext, TransformerContext
from .registry import PredictorParts, register_predictor

CLEAN_CLASSIFIER = "clean_classifier"


class ContextPredictor(nn.Module):
    """context: a context module (ContextInputs -> ObjectContext with edge_context (N, hidden_dim)).
    pooling_dim: CONTEXT_POOLING_DIM; union_channels: D of the union features; pred_dist: (C, C, P) initial
    frequency bias or None (PREDICT_USE_BIAS False); transfer: (P, P) test-time map or None."""

    uses_union_features = True
    requires_training = True

    def __init__(self, context: nn.Module, hidden_dim: int, pooling_dim: int, union_channels: int,
                 num_predicates: int, pred_dist: Tensor | None, frequency_bias_dropout: float,
                 with_clean_classifier: bool, transfer: Tensor | None) -> None:
        super().__init__()
        self.context = context
        self.hidden_dim = hidden_dim
        self.post_emb = nn.Linear(hidden_dim, 2 * hidden_dim)
        nn.init.normal_(self.post_emb.weight, 0.0, 10.0 / math.sqrt(hidden_dim))
        nn.init.zeros_(self.post_emb.bias)
        self.post_cat = xavier_linear(2 * hidden_dim, pooling_dim)
        self.up_dim = xavier_linear(union_channels, pooling_dim) if union_channels != pooling_dim else None
        classifier_options = dict(pooling_dim=pooling_dim, pair_dim=2 * hidden_dim, num_predicates=num_predicates,
                                  pred_dist=pred_dist, frequency_bias_dropout=frequency_bias_dropout)
        self.general_classifier = PairClassifier(**classifier_options)
        self.clean_classifier = PairClassifier(**classifier_options) if with_clean_classifier else None
        self.register_buffer("transfer", transfer, persistent=False)

    def object_context(self, inputs: ContextInputs) -> ObjectContext:
        return self.context(inputs)

    def pair_representation(self, edge_context: Tensor, pairs: Tensor) -> Tensor:
        """edge_context (N, d), pairs (R, 2) flat object indices -> pair_rep (R, 2d).

        ``index_select``, not ``head[pairs[:, 0]]``: on a CPU with several threads the backward of advanced
        indexing adds the rows of objects in many pairs with atomic adds in whatever order the threads run,
        so the gradient changed from run to run (docs/training.md#reproducibility); ``index_select``'s
        backward adds them in pair order, whatever the thread count.
        """
        head, tail = self.post_emb(edge_context).split(self.hidden_dim, dim=1)
        return torch.cat([head.index_select(0, pairs[:, 0]), tail.index_select(0, pairs[:, 1])], dim=1)

    def relation_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor) -> Tensor:
        """(R, P) output logits of the pairs (R, 2) with union features (R, D)."""
        pair_rep = self.pair_representation(context.edge_context, pairs)
        if self.up_dim is not None:
            union_features = self.up_dim(union_features)
        visual_rep = self.post_cat(pair_rep) * union_features
        pair_labels = context.object_labels[pairs]
        classifier = self.clean_classifier if self.clean_classifier is not None else self.general_classifier
        logits = classifier(visual_rep, pair_rep, pair_labels)
        if self.transfer is not None and not self.training:
            logits = logits @ self.transfer.to(logits.dtype).T
        return logits

    @staticmethod
    def trainable_in_stage2(parameter_name: str) -> bool:
        """Stage 2 trains the clean classifier alone (SPEC §6.2)."""
        return parameter_name.startswith(f"{CLEAN_CLASSIFIER}.")


def context_arguments(cfg, parts: PredictorParts) -> dict:
    """The constructor arguments every context takes, from MODEL.ROI_RELATION_HEAD.* (the one place)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    transformer = head.TRANSFORMER
    if head.CONTEXT_HIDDEN_DIM % transformer.NUM_HEAD:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM ({head.CONTEXT_HIDDEN_DIM}) must be divisible "
                         f"by MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD ({transformer.NUM_HEAD})")
    attention = AttentionOptions(num_heads=transformer.NUM_HEAD, key_dim=transformer.KEY_DIM,
                                 value_dim=transformer.VAL_DIM, inner_dim=transformer.INNER_DIM,
                                 dropout=transformer.DROPOUT_RATE)
    return dict(mode=parts.mode, object_vectors=parts.object_vectors, in_channels=parts.box_channels,
                hidden_dim=head.CONTEXT_HIDDEN_DIM, obj_layers=transformer.OBJ_LAYER, rel_layers=transformer.REL_LAYER,
                attention=attention, nms_threshold=cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES)


def _transfer(cfg, parts: PredictorParts) -> Tensor | None:
    head = cfg.MODEL.ROI_RELATION_HEAD
    if not head.WITH_TRANSFER_CLASSIFIER:
        return None
    if parts.confusion_matrix is None:
        raise ValueError("MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER needs a confusion matrix: set "
                         "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX (tools/compute_confusion_matrix.py writes it)")
    if head.TRANSFER_MATRIX not in TRANSFER_MATRIX_FORMS:
        raise ValueError(f"{TRANSFER_MATRIX_KEY} must be one of {TRANSFER_MATRIX_FORMS}, got {head.TRANSFER_MATRIX!r}")
    return torch.from_numpy(transfer_matrix(parts.confusion_matrix, head.TRANSFER_MATRIX))


def _context_predictor(cfg, parts: PredictorParts, context: nn.Module) -> ContextPredictor:
    head = cfg.MODEL.ROI_RELATION_HEAD
    if not head.PREDICT_USE_VISION:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION False is not supported by {head.PREDICTOR} "
                         "(its classifier gates the union feature, as in SGB and RB)")
    return ContextPredictor(
        context, hidden_dim=head.CONTEXT_HIDDEN_DIM, pooling_dim=head.CONTEXT_POOLING_DIM,
        union_channels=parts.union_channels, num_predicates=head.NUM_CLASSES,
        pred_dist=parts.pred_dist if head.PREDICT_USE_BIAS else None,
        frequency_bias_dropout=head.FREQUENCY_BIAS_DROPOUT, with_clean_classifier=head.WITH_CLEAN_CLASSIFIER,
        transfer=_transfer(cfg, parts))


@register_predictor("ReBalanceHCAPredictor", "TransformerTransferPredictor")
def build_rebalance_hca_predictor(cfg, parts: PredictorParts) -> ContextPredictor:
    """ReBalance-HCA: the hybrid co-attention context with general / clean / transfer classifiers."""
    return _context_predictor(cfg, parts, HybridCoAttentionContext(**context_arguments(cfg, parts)))


@register_predictor("TransformerPredictor")
def build_transformer_predictor(cfg, parts: PredictorParts) -> ContextPredictor:
    """SGB's TransformerPredictor: the self-attention context with the same classifiers."""
    return _context_predictor(cfg, parts, TransformerContext(**context_arguments(cfg, parts)))
