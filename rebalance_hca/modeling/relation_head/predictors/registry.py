"""The predictor registry: MODEL.ROI_RELATION_HEAD.PREDICTOR names a builder ``(cfg, parts) -> predictor``.

The predictor interface (``base.RelationPredictor``; docs/relation_head.md#the-predictor-interface).
B images, N = ΣN_b objects, R pairs, C object classes, P predicates, D feature width.

Inputs. ``object_context(ContextInputs)``: roi_features (N, D), box_info (N, 9), boxes (N, 4) xyxy in the
    detector's input frame, image_sizes [(h, w)] per image, num_objects [N_b], and per mode the GT labels
    (N,) (PredCls), the detector's logits (N, C) (SGCls / SGDet) and every class's boxes (N, C, 4) (SGDet).
    Pair stage: pairs (R, 2) int64 flat object indices (subject, object) and union_features (R, D), the
    latter only when the class attribute ``uses_union_features`` is True (else None, and none are computed).
Training. ``training_outputs(context, pairs, union_features, pair_labels (R,))`` -> ``PredictorOutput``:
    relation_logits (R, P) for ``loss_rel`` and a dict of extra scalar losses under the predictor's own key
    names, merged by the relation head into its loss dict (a name the head uses itself is refused).
    The default returns ``relation_logits(context, pairs, union_features)`` and no extra loss.
Test. ``eval_logits(context, pairs, union_features)`` -> (R, P), called on chunks of every ordered pair;
    default ``relation_logits``. A predictor whose test-time output differs overrides it.
Stage 2. ``complete_stage2_state(stage1_state)`` -> the predictor's stage-1 state dict (keys relative to
    the predictor) completed with its stage-2-only entries; ``stage2_parameter_names()`` -> the names
    (relative to the predictor) that stage 2 trains, everything else frozen. ``rebalance.RebalancedPredictor``
    implements both for the recipe's general / clean / transfer classifiers.
``requires_training`` (class attribute): False when the predictor is tested as built (no checkpoint).

Config. A builder reads the MODEL.ROI_RELATION_HEAD keys it declares in ``register_predictor(...,
reads=...)``, names relative to MODEL.ROI_RELATION_HEAD from ``PREDICTOR_OPTION_KEYS``. Before it runs,
``build_predictor`` refuses every option key whose value differs from its default and that the predictor
neither reads nor declares in ``ignores`` (keys it accepts at any value without reading them, e.g. the sizes
of a trained model's config reused to test a predictor that learns nothing).

Adding a predictor: one new file in this package with its module and a builder decorated with
``register_predictor("Name", reads=(...))``, and an import of that file in ``__init__``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from torch import Tensor

from ....config import get_cfg_defaults
from .base import RelationPredictor

PREDICTOR_KEY = "MODEL.ROI_RELATION_HEAD.PREDICTOR"
HEAD_KEY = "MODEL.ROI_RELATION_HEAD"

PREDICTOR_OPTION_KEYS = (
    "CONTEXT_HIDDEN_DIM", "CONTEXT_POOLING_DIM", "CONTEXT_DROPOUT_RATE", "CONTEXT_OBJ_LAYER", "CONTEXT_REL_LAYER",
    "PREDICT_USE_VISION", "PREDICT_USE_BIAS", "FREQUENCY_BIAS_DROPOUT",
    "WITH_CLEAN_CLASSIFIER", "WITH_TRANSFER_CLASSIFIER", "TRANSFER_MATRIX",
    "TRANSFORMER.DROPOUT_RATE", "TRANSFORMER.OBJ_LAYER", "TRANSFORMER.REL_LAYER", "TRANSFORMER.NUM_HEAD",
    "TRANSFORMER.INNER_DIM", "TRANSFORMER.KEY_DIM", "TRANSFORMER.VAL_DIM",
    "CAUSAL.EFFECT_ANALYSIS", "CAUSAL.SPATIAL_FOR_VISION", "CAUSAL.SEPARATE_SPATIAL", "CAUSAL.FUSION_TYPE",
    "CAUSAL.CONTEXT_LAYER", "CAUSAL.EFFECT_TYPE",
)
"""The MODEL.ROI_RELATION_HEAD keys that configure a predictor (not the head, sampler, loss or data): each
registered predictor reads or ignores some of them, and a non-default value of any other is refused."""


@dataclass
class PredictorParts:
    """What a predictor builder gets besides the config.

    mode: "predcls" | "sgcls" | "sgdet". object_vectors: (C, EMBED_DIM) GloVe vectors of the object classes.
    pred_dist: (C, C, P) float32 log predicate distribution of the training statistics
    (docs/reference.md#frequency-statistics).
    fg_counts: (C, C, P) int64 relation counts of the training statistics (column 0 unused).
    confusion_matrix: (P, P) predicate confusion counts, or None. box_channels: D of the box features;
    union_channels: D of the union features.
    decoder_vectors: () -> (C + 1, EMBED_DIM) word vectors of "start" followed by the object classes, for
    the label decoders' own tables (each call a fresh random draw for names without a vector); None when
    the caller has no word vectors to give.
    """

    mode: str
    object_vectors: Tensor
    pred_dist: Tensor
    fg_counts: np.ndarray
    confusion_matrix: np.ndarray | None
    box_channels: int
    union_channels: int
    decoder_vectors: Callable[[], Tensor] | None = None


PredictorBuilder = Callable[..., RelationPredictor]


@dataclass(frozen=True)
class RegisteredPredictor:
    """A builder with the option keys it reads and those it ignores (names relative to MODEL.ROI_RELATION_HEAD)."""

    builder: PredictorBuilder
    reads: frozenset[str]
    ignores: frozenset[str]


_REGISTRY: dict[str, RegisteredPredictor] = {}


def register_predictor(*names: str, reads: Iterable[str], ignores: Iterable[str] = ()
                       ) -> Callable[[PredictorBuilder], PredictorBuilder]:
    """Register a builder ``(cfg, parts: PredictorParts) -> RelationPredictor`` under each of ``names``.

    reads: the ``PREDICTOR_OPTION_KEYS`` the builder reads; ignores: those it accepts at any value without
    reading them. Raises ValueError for a name registered twice or a key that is not an option key."""
    entry_reads, entry_ignores = frozenset(reads), frozenset(ignores)
    unknown = sorted((entry_reads | entry_ignores) - set(PREDICTOR_OPTION_KEYS))
    if unknown:
        raise ValueError(f"predictor {names[0]!r} declares keys that are not predictor option keys: {unknown}")

    def register(builder: PredictorBuilder) -> PredictorBuilder:
        for name in names:
            if name in _REGISTRY:
                raise ValueError(f"predictor {name!r} is registered twice")
            _REGISTRY[name] = RegisteredPredictor(builder, entry_reads, entry_ignores)
        return builder

    return register


def predictor_names() -> list[str]:
    return sorted(_REGISTRY)


def _option_value(node, key: str):
    for part in key.split("."):
        node = node[part]
    return node


def non_default_options(cfg, keys: Iterable[str]) -> list[str]:
    """Those of ``keys`` (relative to MODEL.ROI_RELATION_HEAD) whose value in ``cfg`` differs from the
    default, in the order given."""
    head, default = cfg.MODEL.ROI_RELATION_HEAD, get_cfg_defaults().MODEL.ROI_RELATION_HEAD
    return [key for key in keys if _option_value(head, key) != _option_value(default, key)]


def option_settings(cfg, keys: Iterable[str]) -> str:
    """"MODEL.ROI_RELATION_HEAD.KEY = value, ..." of ``keys`` in ``cfg``, for error messages."""
    return ", ".join(f"{HEAD_KEY}.{key} = {_option_value(cfg.MODEL.ROI_RELATION_HEAD, key)!r}" for key in keys)


def inapplicable_options(cfg, name: str) -> list[str]:
    """The option keys (relative to MODEL.ROI_RELATION_HEAD) set to a non-default value in ``cfg`` that the
    registered predictor ``name`` neither reads nor ignores, in ``PREDICTOR_OPTION_KEYS`` order."""
    entry = _REGISTRY[name]
    return non_default_options(cfg, [key for key in PREDICTOR_OPTION_KEYS
                                      if key not in entry.reads and key not in entry.ignores])


def build_predictor(cfg, parts: PredictorParts) -> RelationPredictor:
    """The predictor named by MODEL.ROI_RELATION_HEAD.PREDICTOR. An unknown name is a ValueError listing the
    registered ones; an option key that does not apply to it (``inapplicable_options``) a ValueError naming
    the key, its value and the predictor."""
    name = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR
    if name not in _REGISTRY:
        raise ValueError(f"{PREDICTOR_KEY} {name!r} is not a registered predictor; choose one of "
                         f"{', '.join(predictor_names())}")
    refused = inapplicable_options(cfg, name)
    if refused:
        raise ValueError(f"{option_settings(cfg, refused)}: not an option of {PREDICTOR_KEY} {name!r} (it reads "
                         f"{', '.join(sorted(_REGISTRY[name].reads)) or 'none of them'}); leave the default")
    predictor = _REGISTRY[name].builder(cfg, parts)
    predictor.registered_name = name
    return predictor
