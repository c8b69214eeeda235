"""SGB's MotifPredictor (neural motifs) with the ReBalance recipe's classifiers
(docs/reference.md#neural-motifs, docs/relation_head.md#neural-motifs).

For a pair (s, o) with edge contexts e (H) of the LSTMContext and union feature u (D):
    pair_rep   = [head_s ; tail_o] of post_emb(e)        H -> 2H, no activation
    visual_rep = post_cat(pair_rep) ⊙ up_dim(u)          post_cat 2H -> Pd (xavier); the product only with
                                                         PREDICT_USE_VISION; up_dim (xavier) only when Pd != D
    logits     = rel_compress(visual_rep) + freq_bias[label_s, label_o]     (``MotifsClassifier``)
with the context's labels (GT in PredCls, the decoder's otherwise). The classifier head is the recipe's
(``rebalance.RebalancedPredictor``): general, clean in stage 2, transfer map at test time.
"""
from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from ..classifier import FrequencyBias, head_tail_pairs, post_embedding, xavier_linear
from ..context import ContextInputs, ObjectContext
from ..context.motifs import LSTMContext
from .rebalance import GENERAL_CLASSIFIER, REBALANCE_KEYS, RebalancedPredictor, RebalanceRecipe, build_rebalance_recipe
from .registry import PredictorParts, register_predictor
from .sgb_names import decoder_rule, rename_sgb_state

MOTIFS_CONTEXT_KEYS = ("CONTEXT_HIDDEN_DIM", "CONTEXT_DROPOUT_RATE", "CONTEXT_OBJ_LAYER", "CONTEXT_REL_LAYER")
"""The MODEL.ROI_RELATION_HEAD keys ``motifs_context`` reads."""
MOTIFS_CLASSIFIER_KEYS = ("CONTEXT_POOLING_DIM", "PREDICT_USE_VISION", "PREDICT_USE_BIAS", "FREQUENCY_BIAS_DROPOUT")


class MotifsClassifier(nn.Module):
    """Motifs' classifier head: visual_rep (R, Pd), pair_labels (R, 2) -> rel_compress(visual_rep) (xavier)
    + freq_bias[label_s, label_o] (R, P). pred_dist: (C, C, P) initial bias, or None for no bias term."""

    def __init__(self, pooling_dim: int, num_predicates: int, pred_dist: Tensor | None,
                 frequency_bias_dropout: float = 0.0) -> None:
        super().__init__()
        self.rel_compress = xavier_linear(pooling_dim, num_predicates)
        self.freq_bias = FrequencyBias(pred_dist, frequency_bias_dropout) if pred_dist is not None else None

    def forward(self, visual_rep: Tensor, pair_labels: Tensor) -> Tensor:
        logits = self.rel_compress(visual_rep)
        if self.freq_bias is not None:
            logits = logits + self.freq_bias(pair_labels)
        return logits


class MotifPredictor(RebalancedPredictor):
    """SGB's MotifPredictor (see the module docstring).

    context: an ``LSTMContext``; hidden_dim: H; pooling_dim: Pd (CONTEXT_POOLING_DIM); union_channels: D;
    pred_dist: (C, C, P) or None (PREDICT_USE_BIAS False); use_vision: PREDICT_USE_VISION (without it the
    predictor reads no union features); frequency_bias_dropout: FREQUENCY_BIAS_DROPOUT; recipe: the clean
    classifier and transfer map.
    """

    def __init__(self, context: nn.Module, hidden_dim: int, pooling_dim: int, union_channels: int,
                 num_predicates: int, pred_dist: Tensor | None, use_vision: bool, frequency_bias_dropout: float,
                 recipe: RebalanceRecipe) -> None:
        super().__init__()
        self.context = context
        self.uses_union_features = use_vision
        self.post_emb = post_embedding(hidden_dim, 2 * hidden_dim)
        self.post_cat = xavier_linear(2 * hidden_dim, pooling_dim)
        self.up_dim = xavier_linear(union_channels, pooling_dim) if use_vision and union_channels != pooling_dim else None
        self.add_classifiers(lambda: MotifsClassifier(pooling_dim, num_predicates, pred_dist, frequency_bias_dropout),
                             recipe)

    def object_context(self, inputs: ContextInputs) -> ObjectContext:
        return self.context(inputs)

    def relation_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None) -> Tensor:
        """(R, P) logits of the pairs (R, 2) with union features (R, D) (None without PREDICT_USE_VISION)."""
        visual_rep = self.post_cat(head_tail_pairs(self.post_emb(context.edge_context), pairs))
        if self.uses_union_features:
            visual_rep = visual_rep * (self.up_dim(union_features) if self.up_dim is not None else union_features)
        return self.classify(visual_rep, context.object_labels[pairs])

    @classmethod
    def from_sgb_state(cls, sgb_state: Mapping[str, Tensor], recipe_prefix: str = GENERAL_CLASSIFIER,
                       mode: str | None = None) -> dict[str, Tensor]:
        """SGB's MotifPredictor state (keys relative to ``roi_heads.relation.predictor.``) as ours: SGB's
        ``context_layer.*`` is our ``context.*`` (same names inside), ``rel_compress`` and ``freq_bias`` go
        under ``recipe_prefix`` (the classifier to fill), the rest keeps its name. Dropped: the
        ``context_layer.untreated_*`` averages that SGB keeps when its yaml sets CAUSAL.EFFECT_ANALYSIS
        (unused by this predictor) and, with ``mode`` "predcls", the decoder SGB builds but never runs.
        ValueError naming every SGB key that does not map and every part of ours left unfilled."""
        decoder_dropped, decoder_required = decoder_rule(mode)
        return rename_sgb_state(
            sgb_state,
            renames=[("context_layer.", "context."), ("rel_compress.", f"{recipe_prefix}.rel_compress."),
                     ("freq_bias.", f"{recipe_prefix}.freq_bias."), ("post_emb.", "post_emb."),
                     ("post_cat.", "post_cat."), ("up_dim.", "up_dim.")],
            dropped=["context_layer.untreated_", *decoder_dropped],
            required=[*(f"context.{name}." for name in ("obj_embed1", "obj_embed2", "pos_embed", "obj_ctx_rnn",
                                                         "edge_ctx_rnn", "lin_obj_h", "lin_edge_h")),
                      *decoder_required, "post_emb.", "post_cat.", f"{recipe_prefix}.rel_compress."],
            predictor="MotifPredictor")


def motifs_context(cfg, parts: PredictorParts, effect_analysis: bool = False) -> LSTMContext:
    """The ``LSTMContext`` of MOTIFS_CONTEXT_KEYS and TEST.RELATION.LATER_NMS_PREDICTION_THRES;
    effect_analysis: keep the untreated averages (SGB's causal predictor)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    for key in ("CONTEXT_OBJ_LAYER", "CONTEXT_REL_LAYER"):
        if head[key] < 1:
            raise ValueError(f"MODEL.ROI_RELATION_HEAD.{key} must be >= 1 for the Motifs context, got {head[key]}")
    decoder_vectors = None
    if parts.mode != "predcls":
        if parts.decoder_vectors is None:
            raise ValueError(f"the Motifs context in {parts.mode} needs the word vectors of its label decoder "
                             "(PredictorParts.decoder_vectors)")
        decoder_vectors = parts.decoder_vectors()
    return LSTMContext(parts.mode, parts.object_vectors, decoder_vectors, in_channels=parts.box_channels,
                       hidden_dim=head.CONTEXT_HIDDEN_DIM, obj_layers=head.CONTEXT_OBJ_LAYER,
                       rel_layers=head.CONTEXT_REL_LAYER, dropout=head.CONTEXT_DROPOUT_RATE,
                       nms_threshold=cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES, effect_analysis=effect_analysis)


@register_predictor("MotifPredictor", reads=(*MOTIFS_CONTEXT_KEYS, *MOTIFS_CLASSIFIER_KEYS, *REBALANCE_KEYS),
                    ignores=("CAUSAL.EFFECT_ANALYSIS",))
def build_motif_predictor(cfg, parts: PredictorParts) -> MotifPredictor:
    """SGB's MotifPredictor. CAUSAL.EFFECT_ANALYSIS, which SGB's relation yaml sets for every predictor, only
    adds unused buffers to SGB's Motifs: accepted and ignored."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    return MotifPredictor(
        motifs_context(cfg, parts), hidden_dim=head.CONTEXT_HIDDEN_DIM, pooling_dim=head.CONTEXT_POOLING_DIM,
        union_channels=parts.union_channels, num_predicates=head.NUM_CLASSES,
        pred_dist=parts.pred_dist if head.PREDICT_USE_BIAS else None, use_vision=head.PREDICT_USE_VISION,
        frequency_bias_dropout=head.FREQUENCY_BIAS_DROPOUT, recipe=build_rebalance_recipe(cfg, parts))
