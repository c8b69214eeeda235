"""Predictors with an attention context: ReBalance-HCA's (RB's ``TransformerTransferPredictor``) and SGB's
``TransformerPredictor`` baseline. Both share the pair classification; they differ in the context.

For a pair (s, o) of objects with edge context e (d) and union feature u (D):
    head, tail = split(post_emb(e))                    d -> 2d, N(0, 10/sqrt(d)) weight, zero bias
    pair_rep   = [head_s ; tail_o]                     2d
    visual_rep = post_cat(pair_rep) ⊙ up_dim(u)        post_cat 2d -> pooling_dim (xavier); up_dim only
                                                       when pooling_dim != D
    logits     = classifier(visual_rep, pair_rep, labels)  (``PairClassifier``)
The classifier head is the recipe's (``rebalance.RebalancedPredictor``): the general one, the clean one in
stage 2 (WITH_CLEAN_CLASSIFIER), and at test time the transfer map (WITH_TRANSFER_CLASSIFIER).
"""
from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from ..classifier import PairClassifier, head_tail_pairs, post_embedding, xavier_linear
from ..context import AttentionOptions, ContextInputs, HybridCoAttentionContext, ObjectContext, TransformerContext
from .rebalance import (CLEAN_CLASSIFIER, GENERAL_CLASSIFIER, REBALANCE_KEYS, RebalancedPredictor, RebalanceRecipe,
                        build_rebalance_recipe)
from .registry import PredictorParts, register_predictor
from .sgb_names import convert_attention_cells, rename_sgb_state

ATTENTION_CONTEXT_KEYS = ("CONTEXT_HIDDEN_DIM", "TRANSFORMER.DROPOUT_RATE", "TRANSFORMER.OBJ_LAYER",
                          "TRANSFORMER.REL_LAYER", "TRANSFORMER.NUM_HEAD", "TRANSFORMER.INNER_DIM",
                          "TRANSFORMER.KEY_DIM", "TRANSFORMER.VAL_DIM")
"""The MODEL.ROI_RELATION_HEAD keys ``attention_context_arguments`` reads."""
CLASSIFIER_KEYS = ("CONTEXT_POOLING_DIM", "PREDICT_USE_VISION", "PREDICT_USE_BIAS", "FREQUENCY_BIAS_DROPOUT")
"""The MODEL.ROI_RELATION_HEAD keys ``_context_predictor`` reads besides the context's and the recipe's."""


class ContextPredictor(RebalancedPredictor):
    """context: a context module (ContextInputs -> ObjectContext with edge_context (N, hidden_dim)).
    pooling_dim: CONTEXT_POOLING_DIM; union_channels: D of the union features; pred_dist: (C, C, P) initial
    frequency bias or None (PREDICT_USE_BIAS False); recipe: the clean classifier and the transfer map."""

    exposes_classifier_inputs = True

    def __init__(self, context: nn.Module, hidden_dim: int, pooling_dim: int, union_channels: int,
                 num_predicates: int, pred_dist: Tensor | None, frequency_bias_dropout: float,
                 recipe: RebalanceRecipe) -> None:
        super().__init__()
        self.context = context
        self.hidden_dim = hidden_dim
        self.post_emb = post_embedding(hidden_dim, 2 * hidden_dim)
        self.post_cat = xavier_linear(2 * hidden_dim, pooling_dim)
        self.up_dim = xavier_linear(union_channels, pooling_dim) if union_channels != pooling_dim else None
        classifier_options = dict(pooling_dim=pooling_dim, pair_dim=2 * hidden_dim, num_predicates=num_predicates,
                                  pred_dist=pred_dist, frequency_bias_dropout=frequency_bias_dropout)
        self.add_classifiers(lambda: PairClassifier(**classifier_options), recipe)

    def object_context(self, inputs: ContextInputs) -> ObjectContext:
        return self.context(inputs)

    def pair_representation(self, edge_context: Tensor, pairs: Tensor) -> Tensor:
        """edge_context (N, d), pairs (R, 2) flat object indices -> pair_rep (R, 2d)."""
        return head_tail_pairs(self.post_emb(edge_context), pairs)

    def classifier_inputs(self, context: ObjectContext, pairs: Tensor, union_features: Tensor
                          ) -> tuple[Tensor, Tensor, Tensor]:
        """The pairs (R, 2) with union features (R, D) -> the classifier head's inputs: visual_rep
        (R, pooling_dim), pair_rep (R, 2d), pair_labels (R, 2) int64."""
        pair_rep = self.pair_representation(context.edge_context, pairs)
        if self.up_dim is not None:
            union_features = self.up_dim(union_features)
        visual_rep = self.post_cat(pair_rep) * union_features
        return visual_rep, pair_rep, context.object_labels[pairs]

    @classmethod
    def from_sgb_state(cls, sgb_state: Mapping[str, Tensor], recipe_prefix: str = GENERAL_CLASSIFIER,
                       mode: str | None = None) -> dict[str, Tensor]:
        """SGB's TransformerPredictor or RB's TransformerTransferPredictor state (keys relative to
        ``roi_heads.relation.predictor.``) as ours. The attention cells convert as ``convert_attention_cells``
        says (SGB's ``context_obj`` / ``context_edge`` layer stacks; RB's SHA encoder ``context_obj`` ->
        ``context.encoder``, decoder ``context_edge`` -> ``context.decoder``, cells SA/CA x vis/txt ->
        visual_self, visual_cross, text_self, text_cross); the rest of ``context_layer.*`` keeps its names
        under ``context.``; ``rel_compress``, ``ctx_compress`` and ``freq_bias`` go under ``recipe_prefix``,
        RB's ``*_clean`` copies under the clean classifier. Dropped: RB's ``gcns_rel_clean``,
        ``gcns_ctx_clean`` and ``pred_adj_layer_clean``, built but never used in its forward (the transfer map
        comes from MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX here), and with ``mode`` "predcls" ``out_obj``,
        which SGB and RB build but never run there. ValueError naming every SGB key that does not map and
        every part of ours left unfilled."""
        try:
            cells, used = convert_attention_cells(sgb_state)
        except KeyError as error:
            raise ValueError(f"SGB attention context state is incomplete: {error.args[0]}") from None
        used = set(used)
        rest = {key: value for key, value in sgb_state.items() if key not in used}
        classifier = ("rel_compress", "ctx_compress", "freq_bias")
        state = rename_sgb_state(
            rest,
            renames=[*((f"{name}_clean.", f"{CLEAN_CLASSIFIER}.{name}.") for name in classifier),
                     *((f"{name}.", f"{recipe_prefix}.{name}.") for name in classifier),
                     ("context_layer.", "context."), ("post_emb.", "post_emb."), ("post_cat.", "post_cat."),
                     ("up_dim.", "up_dim.")],
            dropped=["gcns_rel_clean.", "gcns_ctx_clean.", "pred_adj_layer_clean.",
                     *(["context_layer.out_obj."] if mode == "predcls" else [])],
            required=["context.obj_embed1.", "context.bbox_embed.", "post_emb.", "post_cat.",
                      f"{recipe_prefix}.rel_compress.", f"{recipe_prefix}.ctx_compress."],
            predictor="TransformerPredictor / TransformerTransferPredictor")
        if not cells:
            raise ValueError("SGB TransformerPredictor / TransformerTransferPredictor state has no attention cells "
                             "(context_layer.context_obj.layer_stack.* or context_layer.context_obj.cross_module.*)")
        return {**state, **cells}


def attention_context_arguments(cfg, parts: PredictorParts) -> dict:
    """The constructor arguments of the attention contexts (``HybridCoAttentionContext``,
    ``TransformerContext``) from ``ATTENTION_CONTEXT_KEYS`` and TEST.RELATION.LATER_NMS_PREDICTION_THRES."""
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


def _context_predictor(cfg, parts: PredictorParts, context: nn.Module) -> ContextPredictor:
    head = cfg.MODEL.ROI_RELATION_HEAD
    if not head.PREDICT_USE_VISION:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION False is not supported by {head.PREDICTOR} "
                         "(its classifier gates the union feature, as in SGB and RB)")
    return ContextPredictor(
        context, hidden_dim=head.CONTEXT_HIDDEN_DIM, pooling_dim=head.CONTEXT_POOLING_DIM,
        union_channels=parts.union_channels, num_predicates=head.NUM_CLASSES,
        pred_dist=parts.pred_dist if head.PREDICT_USE_BIAS else None,
        frequency_bias_dropout=head.FREQUENCY_BIAS_DROPOUT, recipe=build_rebalance_recipe(cfg, parts))


CONTEXT_PREDICTOR_KEYS = (*ATTENTION_CONTEXT_KEYS, *CLASSIFIER_KEYS, *REBALANCE_KEYS)


@register_predictor("ReBalanceHCAPredictor", "TransformerTransferPredictor", reads=CONTEXT_PREDICTOR_KEYS)
def build_rebalance_hca_predictor(cfg, parts: PredictorParts) -> ContextPredictor:
    """ReBalance-HCA: the hybrid co-attention context with general / clean / transfer classifiers."""
    return _context_predictor(cfg, parts, HybridCoAttentionContext(**attention_context_arguments(cfg, parts)))


@register_predictor("TransformerPredictor", reads=CONTEXT_PREDICTOR_KEYS)
def build_transformer_predictor(cfg, parts: PredictorParts) -> ContextPredictor:
    """SGB's TransformerPredictor: the self-attention context with the same classifiers."""
    return _context_predictor(cfg, parts, TransformerContext(**attention_context_arguments(cfg, parts)))
