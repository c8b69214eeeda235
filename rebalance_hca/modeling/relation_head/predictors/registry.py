"""The predictor registry: MODEL.ROI_RELATION_HEAD.PREDICTOR names a builder ``(cfg, parts) -> predictor``.

A predictor is an ``nn.Module`` with
    object_context(ContextInputs) -> ObjectContext
    relation_logits(ObjectContext, pairs (R, 2) int64 flat object indices, union_features (R, D) or None)
        -> (R, P) logits: in training those the loss takes, at test time those that are ranked
    uses_union_features: bool      (False: the head computes no union features)
    requires_training: bool        (False: it can be tested without a relation checkpoint)
    trainable_in_stage2(name) -> bool   (which of its parameters stage 2 trains; see ``stages``)
Adding a predictor: one new file in this package with its module and a builder decorated with
``register_predictor("Name")``, and an import of that file in ``__init__``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from torch import Tensor, nn

PREDICTOR_KEY = "MODEL.ROI_RELATION_HEAD.PREDICTOR"


@dataclass
class PredictorParts:
    """What a predictor builder gets besides the config.

    mode: "predcls" | "sgcls" | "sgdet". object_vectors: (C, EMBED_DIM) GloVe vectors of the object classes.
    pred_dist: (C, C, P) float32 log predicate distribution of the training statistics
    (docs/reference.md#frequency-statistics).
    fg_counts: (C, C, P) int64 relation counts of the training statistics (column 0 unused).
    confusion_matrix: (P, P) predicate confusion counts, or None. box_channels: D of the box features;
    union_channels: D of the union features.
    """

    mode: str
    object_vectors: Tensor
    pred_dist: Tensor
    fg_counts: np.ndarray
    confusion_matrix: np.ndarray | None
    box_channels: int
    union_channels: int


PredictorBuilder = Callable[..., nn.Module]
_BUILDERS: dict[str, PredictorBuilder] = {}


def register_predictor(*names: str) -> Callable[[PredictorBuilder], PredictorBuilder]:
    """Register a builder ``(cfg, parts: PredictorParts) -> predictor`` under each of ``names``."""

    def register(builder: PredictorBuilder) -> PredictorBuilder:
        for name in names:
            if name in _BUILDERS:
                raise ValueError(f"predictor {name!r} is registered twice")
            _BUILDERS[name] = builder
        return builder

    return register


def predictor_names() -> list[str]:
    return sorted(_BUILDERS)


def build_predictor(cfg, parts: PredictorParts) -> nn.Module:
    """The predictor named by MODEL.ROI_RELATION_HEAD.PREDICTOR; an unknown name is a ValueError listing
    the registered ones."""
    name = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR
    if name not in _BUILDERS:
        raise ValueError(f"{PREDICTOR_KEY} {name!r} is not a registered predictor; choose one of "
                         f"{', '.join(predictor_names())}")
    return _BUILDERS[name](cfg, parts)
