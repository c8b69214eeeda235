"""The ReBalance recipe's classifiers for any predictor: general, clean and transfer (docs/training.md).

A predictor's *classifier head* is its final layer(s), the module that maps its pair representation to
relation logits (R, P): for ReBalance-HCA and the Transformer rel_compress + ctx_compress + frequency bias
(``PairClassifier``), for a predictor of SGB's Motifs kind rel_compress + frequency bias, for IMP a single
linear layer. ``RebalancedPredictor`` holds
    general_classifier  that head, trained in stage 1;
    clean_classifier    a second, same-shaped instance (WITH_CLEAN_CLASSIFIER, stage 2) that starts as a copy
                        of the trained general one and is the only thing stage 2 trains; when it exists its
                        logits are the output;
    transfer            the fixed (P, P) map A from the confusion matrix (WITH_TRANSFER_CLASSIFIER), applied
                        at test time only: logits @ Aᵀ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from ..confusion import TRANSFER_MATRIX_FORMS, TRANSFER_MATRIX_KEY, transfer_matrix
from ..context import ObjectContext
from .base import RelationPredictor
from .registry import PredictorParts

GENERAL_CLASSIFIER = "general_classifier"
CLEAN_CLASSIFIER = "clean_classifier"
REBALANCE_KEYS = ("WITH_CLEAN_CLASSIFIER", "WITH_TRANSFER_CLASSIFIER", "TRANSFER_MATRIX")
"""The MODEL.ROI_RELATION_HEAD keys ``build_rebalance_recipe`` reads (for a builder's ``reads``)."""


@dataclass
class RebalanceRecipe:
    """with_clean_classifier: build the clean classifier (stage 2). transfer: (P, P) float32 test-time map A,
    or None."""

    with_clean_classifier: bool = False
    transfer: Tensor | None = None


def build_rebalance_recipe(cfg, parts: PredictorParts) -> RebalanceRecipe:
    """The recipe of MODEL.ROI_RELATION_HEAD.{WITH_CLEAN_CLASSIFIER, WITH_TRANSFER_CLASSIFIER, TRANSFER_MATRIX};
    the transfer map needs ``parts.confusion_matrix`` (MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    transfer = None
    if head.WITH_TRANSFER_CLASSIFIER:
        if parts.confusion_matrix is None:
            raise ValueError("MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER needs a confusion matrix: set "
                             "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX (tools/compute_confusion_matrix.py writes it)")
        if head.TRANSFER_MATRIX not in TRANSFER_MATRIX_FORMS:
            raise ValueError(f"{TRANSFER_MATRIX_KEY} must be one of {TRANSFER_MATRIX_FORMS}, "
                             f"got {head.TRANSFER_MATRIX!r}")
        transfer = torch.from_numpy(transfer_matrix(parts.confusion_matrix, head.TRANSFER_MATRIX))
    return RebalanceRecipe(with_clean_classifier=bool(head.WITH_CLEAN_CLASSIFIER), transfer=transfer)


class RebalancedPredictor(RelationPredictor):
    """A predictor with the recipe's classifiers (see the module docstring). A subclass calls
    ``add_classifiers`` in its ``__init__`` where it creates its final layers (creation order decides the
    random initialisation), computes its training logits with ``classify`` in ``relation_logits`` (or, better,
    implements ``classifier_inputs`` and sets ``exposes_classifier_inputs``, so that stage 2 can run over
    cached features), and gets the test-time transfer, the stage-2 initialisation and the stage-2 trainable
    parameters from here.
    A subclass that overrides ``eval_logits`` applies ``transfer_logits`` itself."""

    general_classifier: nn.Module
    clean_classifier: nn.Module | None
    transfer: Tensor | None
    classifier_state_prefixes = (f"{GENERAL_CLASSIFIER}.", f"{CLEAN_CLASSIFIER}.")

    def add_classifiers(self, make_classifier: Callable[[], nn.Module], recipe: RebalanceRecipe) -> None:
        """Create the general classifier, then with ``recipe.with_clean_classifier`` the clean one, each by
        calling ``make_classifier()``, and keep ``recipe.transfer`` as a non-persistent buffer."""
        self.general_classifier = make_classifier()
        self.clean_classifier = make_classifier() if recipe.with_clean_classifier else None
        self.register_buffer("transfer", recipe.transfer, persistent=False)

    @property
    def active_classifier(self) -> nn.Module:
        """The classifier head in use: the clean one when it exists (stage 2), else the general one."""
        return self.clean_classifier if self.clean_classifier is not None else self.general_classifier

    def classify(self, *inputs: Tensor) -> Tensor:
        """(R, P) logits of the active classifier head on ``inputs``. In stage 2 the general classifier is
        loaded but not evaluated."""
        return self.active_classifier(*inputs)

    def relation_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None) -> Tensor:
        """(R, P) training-time logits: the active classifier head on ``classifier_inputs`` (a subclass with
        ``exposes_classifier_inputs`` needs no other ``relation_logits``)."""
        return self.classify(*self.classifier_inputs(context, pairs, union_features))

    def transfer_logits(self, logits: Tensor) -> Tensor:
        """(R, P) -> (R, P): logits @ Aᵀ with the transfer map A, or ``logits`` when there is none."""
        if self.transfer is None:
            return logits
        return logits @ self.transfer.to(logits.dtype).T

    def eval_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None) -> Tensor:
        """The training-time logits mapped by the transfer classifier (test time only)."""
        return self.transfer_logits(self.relation_logits(context, pairs, union_features))

    def eval_classify(self, *inputs: Tensor) -> Tensor:
        """``eval_logits`` from ``classifier_inputs``' tensors: ``classify`` mapped by the transfer classifier."""
        return self.transfer_logits(self.classify(*inputs))

    def complete_stage2_state(self, stage1_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Every clean-classifier entry missing from ``stage1_state`` becomes a copy of the general
        classifier's entry of the same name. Raises KeyError naming a general entry that is missing."""
        state = dict(stage1_state)
        if self.clean_classifier is None:
            return state
        for name in self.clean_classifier.state_dict():
            key, source = f"{CLEAN_CLASSIFIER}.{name}", f"{GENERAL_CLASSIFIER}.{name}"
            if key in state:
                continue
            if source not in state:
                raise KeyError(f"the stage-1 state has no predictor entry {source} to initialise {key}")
            state[key] = state[source].clone()
        return state

    def stage2_parameter_names(self) -> list[str]:
        """The clean classifier's parameters (none without one)."""
        if self.clean_classifier is None:
            return []
        return [f"{CLEAN_CLASSIFIER}.{name}" for name, _ in self.clean_classifier.named_parameters()]
