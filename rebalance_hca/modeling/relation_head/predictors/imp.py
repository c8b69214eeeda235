"""SGB's IMPPredictor (iterative message passing) with the ReBalance recipe's classifiers
(docs/relation_head.md#imp).

The context (``IMPContext``) passes messages over the very pairs to be classified, so this predictor asks
the head for them before the context (``uses_pair_context``). For a pair k with union feature u (D):
    e_k    = the IMP context's final state of pair k, from up_dim(u) (xavier, only when Pd != D)
    logits = rel_fc(e_k)        (h -> P, Kaiming-uniform a = 1, zero bias: SGB's ``context_layer.rel_fc``)
No frequency bias (SGB hard-codes it off). The classifier head is the recipe's
(``rebalance.RebalancedPredictor``): rel_fc is the general classifier, a second one is the clean classifier
in stage 2, and the transfer map applies at test time.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from torch import Tensor

from ..classifier import kaiming_fc, xavier_linear
from ..context import ContextInputs
from ..context.imp import IMP_HIDDEN_DIM, IMPContext, PairContext
from .rebalance import GENERAL_CLASSIFIER, REBALANCE_KEYS, RebalancedPredictor, RebalanceRecipe, build_rebalance_recipe
from .registry import PredictorParts, register_predictor
from .sgb_names import rename_sgb_state

IMP_CONTEXT_PARTS = ("obj_unary", "edge_unary", "edge_gru", "node_gru", "sub_vert_w_fc", "obj_vert_w_fc",
                     "out_edge_w_fc", "in_edge_w_fc")
"""The IMP context's submodules in every mode (``obj_fc`` besides outside PredCls), SGB's names."""


class IMPPredictor(RebalancedPredictor):
    """SGB's IMPPredictor (see the module docstring).

    context: an ``IMPContext`` whose pair inputs are Pd wide; union_channels: D of the union features;
    pooling_dim: Pd (CONTEXT_POOLING_DIM); num_predicates: P; recipe: the clean classifier and transfer map.
    """

    uses_pair_context = True

    def __init__(self, context: IMPContext, union_channels: int, pooling_dim: int, num_predicates: int,
                 recipe: RebalanceRecipe) -> None:
        super().__init__()
        self.context = context
        self.up_dim = xavier_linear(union_channels, pooling_dim) if union_channels != pooling_dim else None
        self.add_classifiers(lambda: kaiming_fc(context.hidden_dim, num_predicates), recipe)

    def object_context(self, inputs: ContextInputs) -> PairContext:
        """The IMP context over ``inputs.pairs`` (R, 2) with their union features (R, D)."""
        if self.up_dim is not None and inputs.union_features is not None:
            inputs = replace(inputs, union_features=self.up_dim(inputs.union_features))
        return self.context(inputs)

    def relation_logits(self, context: PairContext, pairs: Tensor, union_features: Tensor | None) -> Tensor:
        """(R, P) logits of ``pairs`` (R, 2), which must be among the context's pairs (their union features
        were used there already)."""
        return self.classify(context.states_of(pairs))

    @classmethod
    def from_sgb_state(cls, sgb_state: Mapping[str, Tensor], recipe_prefix: str = GENERAL_CLASSIFIER,
                       mode: str | None = None) -> dict[str, Tensor]:
        """SGB's IMPPredictor state (keys relative to ``roi_heads.relation.predictor.``) as ours: SGB's
        ``context_layer.rel_fc`` is the classifier under ``recipe_prefix``, the rest of ``context_layer.*``
        our ``context.*`` (same names inside), ``up_dim`` keeps its name. With ``mode`` "predcls" SGB's
        ``obj_fc``, built but never run there, is dropped (ours does not exist); with "sgcls" / "sgdet" it is
        required; with None it is mapped when present. ValueError naming every SGB key that does not map and
        every part of ours left unfilled."""
        if mode not in (None, "predcls", "sgcls", "sgdet"):
            raise ValueError(f"mode must be None, 'predcls', 'sgcls' or 'sgdet', got {mode!r}")
        return rename_sgb_state(
            sgb_state,
            renames=[("context_layer.rel_fc.", f"{recipe_prefix}."), ("context_layer.", "context."),
                     ("up_dim.", "up_dim.")],
            dropped=["context_layer.obj_fc."] if mode == "predcls" else [],
            required=[*(f"context.{name}." for name in IMP_CONTEXT_PARTS),
                      *(["context.obj_fc."] if mode in ("sgcls", "sgdet") else []), f"{recipe_prefix}."],
            predictor="IMPPredictor")


IMP_IGNORED_KEYS = ("CONTEXT_HIDDEN_DIM", "PREDICT_USE_VISION", "PREDICT_USE_BIAS", "FREQUENCY_BIAS_DROPOUT",
                    "CAUSAL.EFFECT_ANALYSIS")
"""Keys SGB's IMP accepts without effect: its width is hard-coded, it always uses the union features, has no
frequency bias and no TDE buffers (SGB's relation yaml sets some of them for every predictor)."""


@register_predictor("IMPPredictor", reads=("CONTEXT_POOLING_DIM", *REBALANCE_KEYS), ignores=IMP_IGNORED_KEYS)
def build_imp_predictor(cfg, parts: PredictorParts) -> IMPPredictor:
    """SGB's IMPPredictor: width IMP_HIDDEN_DIM and IMP_ITERATIONS rounds, as SGB hard-codes them."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    num_classes = parts.object_vectors.shape[0]
    context = IMPContext(parts.mode, in_channels=parts.box_channels, pair_channels=head.CONTEXT_POOLING_DIM,
                         num_classes=num_classes, hidden_dim=IMP_HIDDEN_DIM)
    return IMPPredictor(context, union_channels=parts.union_channels, pooling_dim=head.CONTEXT_POOLING_DIM,
                        num_predicates=head.NUM_CLASSES, recipe=build_rebalance_recipe(cfg, parts))
