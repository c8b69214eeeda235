"""SGB's ``VCTreePredictor`` (docs/reference.md#vctree, docs/relation_head.md#vctree).

For a pair (s, o) with the VCTree context's edge context e (H) and union feature u (D):
    head, tail = split(ReLU(post_emb(e)))          H -> 2H, N(0, 10/sqrt(H)) weight, zero bias
    visual_rep = post_cat([head_s ; tail_o]) ⊙ up_dim(u)   post_cat 2H -> CONTEXT_POOLING_DIM (xavier);
                                                           up_dim only when that differs from D
    logits     = ctx_compress(visual_rep) + freq_bias[label_s, label_o]      (``VCTreeClassifier``)
and in training the extra loss ``binary_loss`` of the context's tree scores. The union product and the bias
are always applied, as in SGB (``PREDICT_USE_VISION`` / ``PREDICT_USE_BIAS`` False are refused).
The classifier head (ctx_compress + frequency bias) is the recipe's (``RebalancedPredictor``): general,
clean in stage 2 (WITH_CLEAN_CLASSIFIER), transfer map at test time (WITH_TRANSFER_CLASSIFIER).
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import FrequencyBias, xavier_linear
from ..context import ContextInputs
from ..context.vctree import VCTreeContext, VCTreeObjectContext
from .base import PredictorOutput
from .rebalance import GENERAL_CLASSIFIER, REBALANCE_KEYS, RebalancedPredictor, RebalanceRecipe, build_rebalance_recipe
from .registry import PredictorParts, register_predictor

BINARY_LOSS = "binary_loss"
"""SGB's name of the tree-score loss in the loss dict."""
VCTREE_CONTEXT_KEYS = ("CONTEXT_HIDDEN_DIM", "CONTEXT_DROPOUT_RATE", "CONTEXT_OBJ_LAYER", "CONTEXT_REL_LAYER")
"""The MODEL.ROI_RELATION_HEAD keys ``vctree_context`` reads."""
VCTREE_PREDICTOR_KEYS = (*VCTREE_CONTEXT_KEYS, "CONTEXT_POOLING_DIM", "FREQUENCY_BIAS_DROPOUT", *REBALANCE_KEYS)
"""The MODEL.ROI_RELATION_HEAD keys ``build_vctree_predictor`` reads."""


class VCTreeClassifier(nn.Module):
    """VCTree's classifier head: visual_rep (R, pooling_dim), pair_labels (R, 2) -> (R, P) =
    ctx_compress(visual_rep) + freq_bias[label_s, label_o]. pred_dist: (C, C, P) initial bias."""

    def __init__(self, pooling_dim: int, num_predicates: int, pred_dist: Tensor,
                 frequency_bias_dropout: float = 0.0) -> None:
        super().__init__()
        self.ctx_compress = xavier_linear(pooling_dim, num_predicates)
        self.freq_bias = FrequencyBias(pred_dist, frequency_bias_dropout)

    def forward(self, visual_rep: Tensor, pair_labels: Tensor) -> Tensor:
        return self.ctx_compress(visual_rep) + self.freq_bias(pair_labels)


class VCTreePredictor(RebalancedPredictor):
    """context: a ``VCTreeContext`` of width hidden_dim. pooling_dim: CONTEXT_POOLING_DIM; union_channels: D
    of the union features; pred_dist: (C, C, P) initial frequency bias; recipe: the clean classifier and the
    transfer map."""

    uses_relation_adjacency = True

    def __init__(self, context: VCTreeContext, hidden_dim: int, pooling_dim: int, union_channels: int,
                 num_predicates: int, pred_dist: Tensor, frequency_bias_dropout: float,
                 recipe: RebalanceRecipe) -> None:
        super().__init__()
        self.context = context
        self.hidden_dim = hidden_dim
        self.post_emb = nn.Linear(hidden_dim, 2 * hidden_dim)
        nn.init.normal_(self.post_emb.weight, 0.0, 10.0 / math.sqrt(hidden_dim))
        nn.init.zeros_(self.post_emb.bias)
        self.post_cat = xavier_linear(2 * hidden_dim, pooling_dim)
        self.up_dim = xavier_linear(union_channels, pooling_dim) if union_channels != pooling_dim else None
        self.add_classifiers(lambda: VCTreeClassifier(pooling_dim, num_predicates, pred_dist, frequency_bias_dropout),
                             recipe)

    def object_context(self, inputs: ContextInputs) -> VCTreeObjectContext:
        return self.context(inputs)

    def relation_logits(self, context: VCTreeObjectContext, pairs: Tensor, union_features: Tensor) -> Tensor:
        """(R, P) logits of the pairs (R, 2) flat object indices with union features (R, D)."""
        head, tail = F.relu(self.post_emb(context.edge_context)).split(self.hidden_dim, dim=1)
        pair_rep = torch.cat([head.index_select(0, pairs[:, 0]), tail.index_select(0, pairs[:, 1])], dim=1)
        if self.up_dim is not None:
            union_features = self.up_dim(union_features)
        visual_rep = self.post_cat(pair_rep) * union_features
        return self.classify(visual_rep, context.object_labels[pairs])

    def training_outputs(self, context: VCTreeObjectContext, pairs: Tensor, union_features: Tensor,
                         pair_labels: Tensor) -> PredictorOutput:
        """The relation logits and ``binary_loss`` (0 when the tree scores get no gradient, e.g. stage 2)."""
        return PredictorOutput(self.relation_logits(context, pairs, union_features),
                               {BINARY_LOSS: context.binary_loss})

    @classmethod
    def from_sgb_state(cls, sgb_state: Mapping[str, Tensor], recipe_prefix: str = GENERAL_CLASSIFIER,
                       mode: str | None = None) -> dict[str, Tensor]:
        """SGB's ``VCTreePredictor`` state (keys relative to SGB's ``roi_heads.relation.predictor.``) as this
        predictor's (keys relative to it), its classifier head under ``recipe_prefix``.

        Dropped: the ``context_layer.untreated_*`` averages SGB keeps when its yaml sets
        CAUSAL.EFFECT_ANALYSIS (unused by this predictor), and with ``mode`` "predcls" the label decoder SGB
        builds but never runs (ours does not exist there); with "sgcls" / "sgdet" the decoder is required;
        with None it is mapped when present. SGB's decoder registers its label table and output layer twice
        (``decoder_rnn.obj_embed`` / ``out`` and ``decoder_rnn.decoderLSTM.embed_layer`` /
        ``embed_out_layer``, the same tensors): the second names must equal the first and are dropped.
        Raises ValueError naming every SGB key that maps to nothing, every alias that differs from its
        original, and every key of the predictor the state implies (its tree-LSTM depths, decoder and
        ``up_dim``, read from the SGB keys) that the state does not fill.
        """
        mapped, unknown, differing = rename_sgb_vctree_keys(sgb_state, recipe_prefix, mode, keep_averages=False)
        with_decoder = mode in ("sgcls", "sgdet") or (
            mode is None and any(key.startswith("context.decoder_rnn.") for key in mapped))
        expected = _implied_keys(mapped, recipe_prefix, with_decoder)
        unfilled = sorted(expected - set(mapped))
        unknown += sorted(set(mapped) - expected)
        problems = []
        if unknown:
            problems.append(f"SGB keys that map to no VCTreePredictor entry: {sorted(unknown)}")
        if differing:
            problems.append(f"SGB decoder aliases that differ from the tensors they repeat: {differing}")
        if unfilled:
            problems.append(f"VCTreePredictor entries the SGB state does not fill: {unfilled}")
        if problems:
            raise ValueError("; ".join(problems))
        return mapped


def rename_sgb_vctree_keys(sgb_state: Mapping[str, Tensor], recipe_prefix: str, mode: str | None,
                           keep_averages: bool) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """SGB's VCTree keys (those of its ``VCTreePredictor``, or the ``context_layer.*`` of its causal predictor
    on CAUSAL.CONTEXT_LAYER vctree) renamed to ours, without any check of completeness.

    mode: as in ``VCTreePredictor.from_sgb_state`` ("predcls" drops SGB's unused label decoder);
    keep_averages: map SGB's ``context_layer.untreated_*`` averages to ``context.untreated_*`` (the causal
    predictor reads them) instead of dropping them. SGB's duplicate decoder registrations are dropped after
    a check that they equal the tensors they repeat. Returns (the renamed state, the SGB keys that map to
    nothing, the duplicates that differ).
    """
    if mode not in (None, "predcls", "sgcls", "sgdet"):
        raise ValueError(f"mode must be None, 'predcls', 'sgcls' or 'sgdet', got {mode!r}")
    dropped = (*(() if keep_averages else ("context_layer.untreated_",)),
               *(("context_layer.decoder_rnn.",) if mode == "predcls" else ()))
    mapped, unknown, differing = {}, [], []
    for key, value in sgb_state.items():
        if key.startswith(dropped):
            continue
        alias = _SGB_DECODER_ALIASES.get(key)
        if alias is not None:
            if alias not in sgb_state or not torch.equal(sgb_state[alias], value):
                differing.append(key)
            continue
        ours = _our_key(key, recipe_prefix)
        if ours is None:
            unknown.append(key)
        else:
            mapped[ours] = value
    return mapped, unknown, differing


_SGB_DECODER_ALIASES = {
    "context_layer.decoder_rnn.decoderLSTM.embed_layer.weight": "context_layer.decoder_rnn.obj_embed.weight",
    "context_layer.decoder_rnn.decoderLSTM.embed_out_layer.weight": "context_layer.decoder_rnn.out.weight",
    "context_layer.decoder_rnn.decoderLSTM.embed_out_layer.bias": "context_layer.decoder_rnn.out.bias",
}
_SGB_RENAMES = (
    (re.compile(r"^context_layer\.(obj|edge)_ctx_rnn\.multi_layer_lstm\.(\d+)\.treeLSTM_foreward\.treeLSTM\."),
     r"context.\1_ctx_rnn.layers.\2.up."),
    (re.compile(r"^context_layer\.(obj|edge)_ctx_rnn\.multi_layer_lstm\.(\d+)\.treeLSTM_backward\.treeLSTM\."),
     r"context.\1_ctx_rnn.layers.\2.down."),
    (re.compile(r"^context_layer\.decoder_rnn\.decoderLSTM\."), "context.decoder_rnn.cell."),
    (re.compile(r"^context_layer\."), "context."),
    (re.compile(r"^(post_emb|post_cat|up_dim)\."), r"\1."),
)


def _our_key(sgb_key: str, recipe_prefix: str) -> str | None:
    """The name of SGB's ``sgb_key`` in this predictor, or None when it has no place here."""
    if sgb_key.startswith(("ctx_compress.", "freq_bias.")):
        return f"{recipe_prefix}.{sgb_key}"
    for pattern, replacement in _SGB_RENAMES:
        if pattern.match(sgb_key):
            return pattern.sub(replacement, sgb_key, count=1)
    return None


def _implied_keys(mapped: Mapping[str, Tensor], recipe_prefix: str, with_decoder: bool) -> set[str]:
    """Every state key of a VCTreePredictor with the structure the mapped keys show (tree-LSTM depths,
    up_dim) and ``with_decoder``, its classifier under ``recipe_prefix``, from a tiny instance (the one
    source of the names)."""
    def layer_count(stack: str) -> int:
        indices = [int(match.group(1)) for key in mapped
                   for match in [re.match(rf"context\.{stack}\.layers\.(\d+)\.", key)] if match]
        return max(indices, default=0) + 1

    with torch.random.fork_rng(devices=[]):  # the tiny instance's initialisation leaves the global RNG alone
        keys = _tiny_predictor_keys("sgcls" if with_decoder else "predcls", layer_count("obj_ctx_rnn"),
                                    layer_count("edge_ctx_rnn"), "up_dim.weight" in mapped)
    general = f"{GENERAL_CLASSIFIER}."
    return {f"{recipe_prefix}.{key[len(general):]}" if key.startswith(general) else key for key in keys}


def _tiny_predictor_keys(mode: str, obj_layers: int, rel_layers: int, with_up_dim: bool) -> list[str]:
    """The state keys of a VCTreePredictor of that structure, built with the smallest sizes."""
    num_classes, embed_dim, hidden_dim, channels = 2, 1, 2, 1
    pred_dist = torch.zeros(num_classes, num_classes, 2)
    context = VCTreeContext(mode, torch.zeros(num_classes, embed_dim), torch.zeros(num_classes + 1, embed_dim),
                            pred_dist, channels, hidden_dim, obj_layers, rel_layers, 0.0)
    predictor = VCTreePredictor(context, hidden_dim, channels, channels + 1 if with_up_dim else channels, 2,
                                pred_dist, 0.0, RebalanceRecipe())
    return list(predictor.state_dict())


def vctree_context(cfg, parts: PredictorParts, effect_analysis: bool = False) -> VCTreeContext:
    """The ``VCTreeContext`` of VCTREE_CONTEXT_KEYS; effect_analysis: keep the untreated averages (SGB's causal
    predictor, CAUSAL.CONTEXT_LAYER vctree)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    for key in ("CONTEXT_OBJ_LAYER", "CONTEXT_REL_LAYER"):
        if head[key] < 1:
            raise ValueError(f"MODEL.ROI_RELATION_HEAD.{key} must be at least 1 for the VCTree context, got {head[key]}")
    if head.CONTEXT_HIDDEN_DIM % 2:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM must be even for VCTree's tree LSTMs (two "
                         f"passes of half of it), got {head.CONTEXT_HIDDEN_DIM}")
    decoder_vectors = None
    if parts.mode != "predcls":
        if parts.decoder_vectors is None:
            raise ValueError(f"the VCTree context in {parts.mode} needs the word vectors of its label decoder "
                             "(PredictorParts.decoder_vectors)")
        decoder_vectors = parts.decoder_vectors()
    return VCTreeContext(parts.mode, parts.object_vectors, decoder_vectors, parts.pred_dist, parts.box_channels,
                         hidden_dim=head.CONTEXT_HIDDEN_DIM, obj_layers=head.CONTEXT_OBJ_LAYER,
                         rel_layers=head.CONTEXT_REL_LAYER, dropout_rate=head.CONTEXT_DROPOUT_RATE,
                         effect_analysis=effect_analysis)


@register_predictor("VCTreePredictor", reads=VCTREE_PREDICTOR_KEYS, ignores=("CAUSAL.EFFECT_ANALYSIS",))
def build_vctree_predictor(cfg, parts: PredictorParts) -> VCTreePredictor:
    """SGB's VCTreePredictor with the recipe's classifiers. CAUSAL.EFFECT_ANALYSIS, which SGB's relation yaml
    sets for every predictor, only adds unused buffers to SGB's VCTree: accepted and ignored."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    return VCTreePredictor(vctree_context(cfg, parts), hidden_dim=head.CONTEXT_HIDDEN_DIM,
                           pooling_dim=head.CONTEXT_POOLING_DIM, union_channels=parts.union_channels,
                           num_predicates=head.NUM_CLASSES, pred_dist=parts.pred_dist,
                           frequency_bias_dropout=head.FREQUENCY_BIAS_DROPOUT, recipe=build_rebalance_recipe(cfg, parts))
