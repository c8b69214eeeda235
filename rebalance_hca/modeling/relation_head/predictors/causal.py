"""SGB's CausalAnalysisPredictor: causal TDE and its relatives (docs/reference.md#causal-tde,
docs/relation_head.md#causal-tde), with the ReBalance recipe's classifiers.

R pairs (s, o), H = CONTEXT_HIDDEN_DIM, Pd = CONTEXT_POOLING_DIM (= D, the union width), P predicates.

Factual pass (training, and the test logits of EFFECT_TYPE "none"):
    c_f = ctx(edge context) ⊙ spt_emb(geometry)         (the product with SPATIAL_FOR_VISION)
          ctx: post_cat([head_s ; tail_o]) (ReLU after post_cat) for motifs; head_s − tail_o (post_emb H -> 2Pd,
          no post_cat) for vtranse; geometry: the 32-d ``pair_box_info``
    L(v, c, b) = vis_compress(v) + ctx_compress(c) + b                       (FUSION_TYPE sum)
               = ctx_compress(c) · σ(vis_compress(v) + b + ctx_gate_fc(c))   (FUSION_TYPE gate)
    logits = L(union, c_f, freq_bias[label_s, label_o])
Counterfactual pass (test time with an effect): the context reruns with its averages
(``context.counterfactual``), c_a = ctx(that pass's edge context) ⊙ spt_emb(untreated_spt), and with
B(p) the expected frequency bias under the pair's independent class probabilities p (softmax of the
factual object logits) and q (of the counterfactual ones):
    TDE = L(union, c_f, B(p)) − L(union, c_a, B(p));  NIE = L(union, c_a, B(p)) − L(union, c_a, B(q));
    TE  = L(union, c_f, B(p)) − L(union, c_a, B(q)).
With sum fusion the terms equal on both sides cancel and are not computed (TDE = ctx_compress(c_f) −
ctx_compress(c_a)); SGB computes both sums and subtracts, which differs by float rounding only.
The transfer map of the recipe applies to the effect logits. Training adds SGB's auxiliary losses
``auxiliary_ctx`` = CE(ctx_compress(c_f)), ``auxiliary_vis`` = CE(vis_compress(union)), ``auxiliary_frq`` =
CE(freq_bias[labels]) (the last two not with gate fusion), and keeps the moving averages (train mode only):
untreated_spt (geometry), avg_post_ctx (c_f), untreated_feat (union); the context keeps its own. On the
vctree layer training also returns the context's tree-score loss ``binary_loss``, as SGB's does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..box_geometry import normalized_box_info, pair_box_info
from ..classifier import FrequencyBias, head_tail_pairs, post_embedding, xavier_linear
from ..context import ContextInputs, ObjectContext
from ..context.counterfactual import register_average, untrained_averages, update_moving_average
from ..context.vtranse import VTransEContext
from .base import PredictorOutput
from .motifs import MOTIFS_CONTEXT_KEYS, motifs_context
from .rebalance import GENERAL_CLASSIFIER, REBALANCE_KEYS, RebalancedPredictor, RebalanceRecipe, build_rebalance_recipe
from .registry import PredictorParts, non_default_options, option_settings, register_predictor
from .sgb_names import decoder_rule, rename_sgb_state
from .vctree import BINARY_LOSS, VCTREE_CONTEXT_KEYS, rename_sgb_vctree_keys, vctree_context

CAUSAL_KEY = "MODEL.ROI_RELATION_HEAD.CAUSAL"
SGB_VCTREE_CONTEXT_KEY = "context_layer.bi_freq_prior.weight"
"""A key that only SGB's VCTree context has: it marks an SGB causal state of CAUSAL.CONTEXT_LAYER vctree."""
EFFECT_TYPES = ("none", "TDE", "NIE", "TE")
FUSION_TYPES = ("sum", "gate")
GEOMETRY_DIM = 32
EFFECT_SIDES = {"TDE": (("factual", "factual"), ("average", "factual")),
                "NIE": (("average", "factual"), ("average", "counterfactual")),
                "TE": (("factual", "factual"), ("average", "counterfactual"))}
"""Per effect type: its two logit terms, each (context representation, class probabilities) named by the
pass they come from; the effect is the first term minus the second."""


@dataclass
class CausalContextLayer:
    """A context the predictor runs on (CAUSAL.CONTEXT_LAYER): ``build(cfg, parts, effect_analysis)`` returns
    a module that follows the counterfactual protocol (``context.counterfactual``), configured by ``keys``
    (MODEL.ROI_RELATION_HEAD option keys); ``pairs_by_difference``: SGB's vtranse layout (post_emb H -> 2Pd,
    head − tail, no post_cat, ctx_compress without bias and with PyTorch's default initialisation);
    ``scores_trees``: the context learns tree scores from each image's relation matrix in training (VCTree:
    its output carries ``binary_loss``, which the predictor returns)."""

    build: Callable[..., nn.Module]
    keys: tuple[str, ...]
    pairs_by_difference: bool = False
    scores_trees: bool = False


def vtranse_context(cfg, parts: PredictorParts, effect_analysis: bool) -> VTransEContext:
    """SGB's VTransEFeature of CONTEXT_HIDDEN_DIM."""
    return VTransEContext(parts.object_vectors, parts.box_channels, cfg.MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM,
                          effect_analysis)


CAUSAL_CONTEXT_LAYERS: dict[str, CausalContextLayer] = {
    "motifs": CausalContextLayer(motifs_context, MOTIFS_CONTEXT_KEYS),
    "vctree": CausalContextLayer(vctree_context, VCTREE_CONTEXT_KEYS, scores_trees=True),
    "vtranse": CausalContextLayer(vtranse_context, ("CONTEXT_HIDDEN_DIM",), pairs_by_difference=True),
}
"""CAUSAL.CONTEXT_LAYER -> its context. Another context that follows the protocol is one more entry."""


@dataclass
class CausalObjectContext(ObjectContext):
    """The factual context plus what the pair stage needs, per object (N objects, C classes, P predicates).

    box_info: (N, 8) ``normalized_box_info``. probabilities: (N, C) softmax of the factual object logits.
    At test time with an effect: counterfactual_edge_context (N, d) and counterfactual_probabilities (N, C)
    of the counterfactual pass, and, where the frequency term does not cancel, subject_bias /
    counterfactual_subject_bias (N, C, P): Σ_x p_s[x] · bias[x, y, :] per object, under p and q.
    binary_loss: scalar, the factual pass's tree-score loss of a context that scores trees (vctree), else None.
    """

    box_info: Tensor | None = None
    probabilities: Tensor | None = None
    counterfactual_edge_context: Tensor | None = None
    counterfactual_probabilities: Tensor | None = None
    subject_bias: Tensor | None = None
    counterfactual_subject_bias: Tensor | None = None
    binary_loss: Tensor | None = None


class CausalClassifier(nn.Module):
    """The fused classifier head: ``vis_compress``, ``ctx_compress``, ``freq_bias`` (and ``ctx_gate_fc`` for
    gate fusion), SGB's names. forward(union (R, Pd), context_rep (R, Pd), pair_labels (R, 2)) -> (R, P)
    L(union, context_rep, freq_bias[labels]) of the module docstring.

    pooling_dim: Pd; pred_dist: (C, C, P) initial bias; fusion: "sum" | "gate"; context_bias_free: SGB's
    vtranse ctx_compress (no bias, default init) instead of a xavier one.
    """

    def __init__(self, pooling_dim: int, num_predicates: int, pred_dist: Tensor, fusion: str,
                 context_bias_free: bool = False, frequency_bias_dropout: float = 0.0) -> None:
        super().__init__()
        self.fusion = fusion
        if context_bias_free:
            self.ctx_compress = nn.Linear(pooling_dim, num_predicates, bias=False)
        else:
            self.ctx_compress = xavier_linear(pooling_dim, num_predicates)
        self.vis_compress = xavier_linear(pooling_dim, num_predicates)
        self.ctx_gate_fc = xavier_linear(pooling_dim, num_predicates) if fusion == "gate" else None
        self.freq_bias = FrequencyBias(pred_dist, frequency_bias_dropout)

    def fuse(self, visual_logits: Tensor, context_rep: Tensor, frequency_logits: Tensor) -> Tensor:
        """L from vis_compress(union) (R, P), the context representation (R, Pd) and a bias (R, P)."""
        context_logits = self.ctx_compress(context_rep)
        if self.fusion == "gate":
            return context_logits * torch.sigmoid(visual_logits + frequency_logits + self.ctx_gate_fc(context_rep))
        return visual_logits + context_logits + frequency_logits

    def forward(self, union: Tensor, context_rep: Tensor, pair_labels: Tensor) -> Tensor:
        return self.fuse(self.vis_compress(union), context_rep, self.freq_bias(pair_labels))

    def subject_bias(self, probabilities: Tensor) -> Tensor:
        """(N, C) class probabilities -> (N, C, P): Σ_x p[x] · bias[x, y, :] for every object class y."""
        num_classes = self.freq_bias.num_classes
        table = self.freq_bias.obj_baseline.weight.reshape(num_classes, -1)
        return (probabilities @ table).reshape(len(probabilities), num_classes, -1)

    @staticmethod
    def expected_bias(subject_bias: Tensor, object_probabilities: Tensor, pairs: Tensor) -> Tensor:
        """The bias expected under independent subject and object classes, Σ_{x,y} p_s[x] p_o[y] bias[x, y]:
        subject_bias (N, C, P) of ``subject_bias``, object_probabilities (N, C), pairs (R, 2) -> (R, P)."""
        return torch.bmm(object_probabilities[pairs[:, 1], None, :], subject_bias[pairs[:, 0]]).squeeze(1)


class CausalAnalysisPredictor(RebalancedPredictor):
    """SGB's CausalAnalysisPredictor (see the module docstring).

    context: a context of ``CAUSAL_CONTEXT_LAYERS``; hidden_dim: H; pooling_dim: Pd (= the union width D);
    pred_dist: (C, C, P); effect_analysis, spatial_for_vision, fusion, effect_type: CAUSAL.EFFECT_ANALYSIS,
    SPATIAL_FOR_VISION, FUSION_TYPE, EFFECT_TYPE; pairs_by_difference: the vtranse layout, scores_trees: a
    context whose output carries a tree-score ``binary_loss`` (vctree; the head then passes each image's
    relation matrix, ``uses_relation_adjacency``) (``CausalContextLayer``); recipe: the clean classifier and
    the transfer map.

    Buffers (SGB's, zero at init): untreated_spt (32), untreated_conv_spt (Pd; kept for SGB's checkpoints,
    always zero: SEPARATE_SPATIAL is refused), avg_post_ctx (Pd), untreated_feat (Pd). A test-time effect
    from weights whose averages are still zero is refused, at loading and at the forward.
    """

    def __init__(self, context: nn.Module, hidden_dim: int, pooling_dim: int, num_predicates: int,
                 pred_dist: Tensor, effect_analysis: bool, spatial_for_vision: bool, fusion: str, effect_type: str,
                 pairs_by_difference: bool, frequency_bias_dropout: float, recipe: RebalanceRecipe,
                 scores_trees: bool = False) -> None:
        super().__init__()
        if fusion not in FUSION_TYPES:
            raise ValueError(f"{CAUSAL_KEY}.FUSION_TYPE must be one of {FUSION_TYPES}, got {fusion!r}")
        if effect_type not in EFFECT_TYPES:
            raise ValueError(f"{CAUSAL_KEY}.EFFECT_TYPE must be one of {EFFECT_TYPES}, got {effect_type!r}")
        if effect_type != "none" and not effect_analysis:
            raise ValueError(f"{CAUSAL_KEY}.EFFECT_TYPE {effect_type!r} needs {CAUSAL_KEY}.EFFECT_ANALYSIS True "
                             "(the averages and the counterfactual pass)")
        self.context = context
        self.effect_analysis, self.spatial_for_vision = effect_analysis, spatial_for_vision
        self.fusion, self.effect_type = fusion, effect_type
        self.pairs_by_difference = pairs_by_difference
        self.uses_relation_adjacency = scores_trees
        if pairs_by_difference:
            self.post_emb = post_embedding(hidden_dim, 2 * pooling_dim)
            self.post_cat = None
        else:
            self.post_emb = post_embedding(hidden_dim, 2 * hidden_dim)
            self.post_cat = nn.Sequential(xavier_linear(2 * hidden_dim, pooling_dim), nn.ReLU(inplace=True))
        self.add_classifiers(lambda: CausalClassifier(pooling_dim, num_predicates, pred_dist, fusion,
                                                      pairs_by_difference, frequency_bias_dropout), recipe)
        self.spt_emb = None
        if spatial_for_vision:
            self.spt_emb = nn.Sequential(xavier_linear(GEOMETRY_DIM, hidden_dim), nn.ReLU(inplace=True),
                                         xavier_linear(hidden_dim, pooling_dim), nn.ReLU(inplace=True))
        register_average(self, "untreated_spt", GEOMETRY_DIM)
        register_average(self, "untreated_conv_spt", pooling_dim)
        register_average(self, "avg_post_ctx", pooling_dim)
        register_average(self, "untreated_feat", pooling_dim)
        self.register_load_state_dict_post_hook(_refuse_untrained_test_averages)

    # ------------------------------------------------------------------ the averages a test-time effect needs
    def untrained_test_averages(self) -> list[str]:
        """The averages (names relative to this predictor) that the test-time effect reads and that are still
        at their zero initialisation; [] for EFFECT_TYPE none."""
        if self.effect_type == "none":
            return []
        names = [f"context.{name}" for name in self.context.averages_used_by_counterfactual()]
        return untrained_averages(self, names + (["untreated_spt"] if self.spatial_for_vision else []))

    def check_test_averages(self) -> None:
        """ValueError naming the averages ``untrained_test_averages`` finds, if any."""
        missing = self.untrained_test_averages()
        if missing:
            raise ValueError(
                f"{CAUSAL_KEY}.EFFECT_TYPE {self.effect_type!r} needs the moving averages that training with "
                f"{CAUSAL_KEY}.EFFECT_ANALYSIS True keeps, and these are still at their zero initialisation "
                f"(never trained): {', '.join(missing)}; load weights trained with EFFECT_ANALYSIS True (SGB's "
                "causal yaml sets it) or test with EFFECT_TYPE none")

    # ------------------------------------------------------------------ objects
    def object_context(self, inputs: ContextInputs) -> CausalObjectContext:
        if inputs.boxes is None or inputs.image_sizes is None:
            raise ValueError("CausalAnalysisPredictor needs the boxes and image sizes (ContextInputs.boxes, "
                             "ContextInputs.image_sizes) for its pair geometry")
        factual = self.context(inputs)
        box_info = torch.cat([normalized_box_info(boxes, size) for boxes, size in
                              zip(inputs.boxes.split(inputs.num_objects), inputs.image_sizes)])
        probabilities = F.softmax(factual.object_logits.detach().float(), dim=1)
        result = CausalObjectContext(factual.object_logits, factual.object_labels, factual.edge_context,
                                     box_info=box_info, probabilities=probabilities,
                                     binary_loss=factual.binary_loss if self.uses_relation_adjacency else None)
        if self.training or self.effect_type == "none":
            return result
        self.check_test_averages()
        with torch.no_grad():
            counterfactual = self.context(inputs, counterfactual=True)
            result.counterfactual_edge_context = counterfactual.edge_context
            result.counterfactual_probabilities = F.softmax(counterfactual.object_logits.float(), dim=1)
            if self.fusion == "gate" or self.effect_type != "TDE":
                classifier = self.active_classifier
                result.subject_bias = classifier.subject_bias(probabilities)
                result.counterfactual_subject_bias = classifier.subject_bias(result.counterfactual_probabilities)
        return result

    # ------------------------------------------------------------------ pairs
    def pair_context(self, edge_context: Tensor, pairs: Tensor) -> Tensor:
        """(R, Pd) context representation of the pairs (R, 2) before the spatial product: post_cat of
        [head_s ; tail_o], or head_s − tail_o (vtranse)."""
        edge_rep = self.post_emb(edge_context)
        if self.pairs_by_difference:
            head, tail = edge_rep.chunk(2, dim=1)
            return head.index_select(0, pairs[:, 0]) - tail.index_select(0, pairs[:, 1])
        return self.post_cat(head_tail_pairs(edge_rep, pairs))

    def factual_context(self, context: CausalObjectContext, pairs: Tensor) -> tuple[Tensor, Tensor]:
        """(c_f (R, Pd), pair geometry (R, 32)) of the pairs (R, 2)."""
        geometry = pair_box_info(context.box_info[pairs[:, 0]], context.box_info[pairs[:, 1]])
        context_rep = self.pair_context(context.edge_context, pairs)
        if self.spt_emb is not None:
            context_rep = context_rep * self.spt_emb(geometry)
        return context_rep, geometry

    def relation_logits(self, context: CausalObjectContext, pairs: Tensor, union_features: Tensor) -> Tensor:
        """(R, P) factual logits L(union, c_f, freq_bias[labels]) of the pairs (R, 2)."""
        context_rep, _ = self.factual_context(context, pairs)
        return self.classify(union_features, context_rep, context.object_labels[pairs])

    def training_outputs(self, context: CausalObjectContext, pairs: Tensor, union_features: Tensor,
                         pair_labels: Tensor) -> PredictorOutput:
        """The factual logits, SGB's auxiliary losses and on the vctree layer ``binary_loss`` (every call), and
        in train mode the averages' update."""
        context_rep, geometry = self.factual_context(context, pairs)
        labels = context.object_labels[pairs]
        classifier = self.active_classifier
        logits = self.classify(union_features, context_rep, labels)
        losses = {"auxiliary_ctx": F.cross_entropy(classifier.ctx_compress(context_rep).float(), pair_labels)}
        if self.fusion != "gate":
            losses["auxiliary_vis"] = F.cross_entropy(classifier.vis_compress(union_features).float(), pair_labels)
            losses["auxiliary_frq"] = F.cross_entropy(classifier.freq_bias(labels).float(), pair_labels)
        if self.uses_relation_adjacency:
            losses[BINARY_LOSS] = context.binary_loss
        if self.training:
            if self.spatial_for_vision:
                update_moving_average(self.untreated_spt, geometry)
            update_moving_average(self.avg_post_ctx, context_rep)
            update_moving_average(self.untreated_feat, union_features)
        return PredictorOutput(logits, losses)

    def eval_logits(self, context: CausalObjectContext, pairs: Tensor, union_features: Tensor) -> Tensor:
        """(R, P) test-time logits: the EFFECT_TYPE's effect (the factual logits for none), then the
        recipe's transfer map."""
        if self.effect_type == "none":
            return self.transfer_logits(self.relation_logits(context, pairs, union_features))
        return self.transfer_logits(self.effect_logits(context, pairs, union_features))

    def effect_logits(self, context: CausalObjectContext, pairs: Tensor, union_features: Tensor) -> Tensor:
        """(R, P) the EFFECT_TYPE of the module docstring for the pairs (R, 2)."""
        classifier = self.active_classifier
        factual_rep, _ = self.factual_context(context, pairs)
        average_rep = self.pair_context(context.counterfactual_edge_context, pairs)
        if self.spt_emb is not None:
            average_rep = average_rep * self.spt_emb(self.untreated_spt.view(1, -1))
        representations = {"factual": factual_rep, "average": average_rep}
        biases = {"factual": context.subject_bias, "counterfactual": context.counterfactual_subject_bias}
        probabilities = {"factual": context.probabilities, "counterfactual": context.counterfactual_probabilities}
        (first_rep, first_bias), (second_rep, second_bias) = EFFECT_SIDES[self.effect_type]

        def bias(side: str) -> Tensor:
            return classifier.expected_bias(biases[side], probabilities[side], pairs)

        if self.fusion == "sum":
            logits = 0.0
            if first_rep != second_rep:
                logits = (classifier.ctx_compress(representations[first_rep])
                          - classifier.ctx_compress(representations[second_rep]))
            if first_bias != second_bias:
                logits = logits + (bias(first_bias) - bias(second_bias))
            return logits
        visual = classifier.vis_compress(union_features)
        return (classifier.fuse(visual, representations[first_rep], bias(first_bias))
                - classifier.fuse(visual, representations[second_rep], bias(second_bias)))

    # ------------------------------------------------------------------ SGB checkpoints
    @classmethod
    def from_sgb_state(cls, sgb_state: Mapping[str, Tensor], recipe_prefix: str = GENERAL_CLASSIFIER,
                       mode: str | None = None) -> dict[str, Tensor]:
        """SGB's CausalAnalysisPredictor state (keys relative to ``roi_heads.relation.predictor.``) as ours:
        ``context_layer.*`` -> ``context.*`` (its untreated averages included; a state of the vctree layer,
        recognised by ``SGB_VCTREE_CONTEXT_KEY``, with VCTree's renames of ``rename_sgb_vctree_keys``),
        ``vis_compress``, ``ctx_compress``, ``ctx_gate_fc`` and ``freq_bias`` under ``recipe_prefix``, the rest
        (post_emb, post_cat, spt_emb, the four averages) by name. With ``mode`` "predcls" SGB's unused label
        decoder is dropped (the context's own parts are not checked here: they differ per
        CAUSAL.CONTEXT_LAYER). ValueError naming every SGB key that does not map and every part of ours left
        unfilled."""
        decoder_dropped, _ = decoder_rule(mode)
        classifier_parts = ("vis_compress", "ctx_compress", "ctx_gate_fc", "freq_bias")
        averages = ("untreated_spt", "untreated_conv_spt", "avg_post_ctx", "untreated_feat")
        renames = [*((f"{name}.", f"{recipe_prefix}.{name}.") for name in classifier_parts),
                   *((f"{name}.", f"{name}.") for name in ("post_emb", "post_cat", "spt_emb")),
                   *((name, name) for name in averages)]
        required = ["post_emb.", f"{recipe_prefix}.vis_compress.", f"{recipe_prefix}.ctx_compress.",
                    f"{recipe_prefix}.freq_bias.", *averages]
        if SGB_VCTREE_CONTEXT_KEY not in sgb_state:
            return rename_sgb_state(sgb_state, renames=[("context_layer.", "context."), *renames],
                                    dropped=decoder_dropped, required=["context.", *required],
                                    predictor="CausalAnalysisPredictor")
        context_state, unknown, differing = rename_sgb_vctree_keys(
            {key: value for key, value in sgb_state.items() if key.startswith("context_layer.")}, recipe_prefix,
            mode, keep_averages=True)
        if differing:
            raise ValueError("SGB CausalAnalysisPredictor state does not map onto ours; its VCTree decoder "
                             f"duplicates differ from the tensors they repeat: {', '.join(differing)}")
        rest = rename_sgb_state({key: value for key, value in sgb_state.items()
                                 if not key.startswith("context_layer.") or key in unknown},
                                renames=renames, dropped=(), required=required, predictor="CausalAnalysisPredictor")
        return {**context_state, **rest}


def _refuse_untrained_test_averages(predictor: CausalAnalysisPredictor, incompatible_keys) -> None:
    """Load-state-dict post hook: weights without the averages the test-time effect needs are refused."""
    predictor.check_test_averages()


CAUSAL_KEYS = ("CAUSAL.EFFECT_ANALYSIS", "CAUSAL.SPATIAL_FOR_VISION", "CAUSAL.SEPARATE_SPATIAL", "CAUSAL.FUSION_TYPE",
               "CAUSAL.CONTEXT_LAYER", "CAUSAL.EFFECT_TYPE")
CONTEXT_LAYER_KEYS = tuple(dict.fromkeys(key for layer in CAUSAL_CONTEXT_LAYERS.values() for key in layer.keys))
"""Every option key some context layer reads; those the chosen layer does not read are refused."""


@register_predictor("CausalAnalysisPredictor", reads=(*CAUSAL_KEYS, *CONTEXT_LAYER_KEYS, "CONTEXT_POOLING_DIM",
                                                      "FREQUENCY_BIAS_DROPOUT", *REBALANCE_KEYS))
def build_causal_predictor(cfg, parts: PredictorParts) -> CausalAnalysisPredictor:
    """SGB's CausalAnalysisPredictor on CAUSAL.CONTEXT_LAYER. It always applies the union features and the
    frequency bias (PREDICT_USE_VISION / PREDICT_USE_BIAS are not its options)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    causal = head.CAUSAL
    if causal.CONTEXT_LAYER not in CAUSAL_CONTEXT_LAYERS:
        raise ValueError(f"{CAUSAL_KEY}.CONTEXT_LAYER must be one of {', '.join(CAUSAL_CONTEXT_LAYERS)}, "
                         f"got {causal.CONTEXT_LAYER!r}")
    if causal.SEPARATE_SPATIAL:
        raise ValueError(f"{CAUSAL_KEY}.SEPARATE_SPATIAL True is not supported: this project's union features "
                         "add the box-mask features before fc6/fc7 (SGB's default) and have no separate spatial "
                         "branch")
    if head.CONTEXT_POOLING_DIM != parts.union_channels:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM ({head.CONTEXT_POOLING_DIM}) must equal the "
                         f"union feature width MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM ({parts.union_channels}) for "
                         "CausalAnalysisPredictor (as SGB asserts)")
    layer = CAUSAL_CONTEXT_LAYERS[causal.CONTEXT_LAYER]
    foreign = non_default_options(cfg, [key for key in CONTEXT_LAYER_KEYS if key not in layer.keys])
    if foreign:
        raise ValueError(f"{option_settings(cfg, foreign)}: not an option of {CAUSAL_KEY}.CONTEXT_LAYER "
                         f"{causal.CONTEXT_LAYER!r} (it reads {', '.join(layer.keys)}); leave the default")
    return CausalAnalysisPredictor(
        layer.build(cfg, parts, causal.EFFECT_ANALYSIS), hidden_dim=head.CONTEXT_HIDDEN_DIM,
        pooling_dim=head.CONTEXT_POOLING_DIM, num_predicates=head.NUM_CLASSES, pred_dist=parts.pred_dist,
        effect_analysis=causal.EFFECT_ANALYSIS, spatial_for_vision=causal.SPATIAL_FOR_VISION,
        fusion=causal.FUSION_TYPE, effect_type=causal.EFFECT_TYPE, pairs_by_difference=layer.pairs_by_difference,
        frequency_bias_dropout=head.FREQUENCY_BIAS_DROPOUT, recipe=build_rebalance_recipe(cfg, parts),
        scores_trees=layer.scores_trees)
