"""The predictor interface: what the relation head asks of every predictor (docs/relation_head.md, "The
predictor interface").

B images, N = ΣN_b objects, R pairs, C object classes, P predicates (background included), D feature width.

``RelationPredictor`` is the base class; a predictor implements ``object_context`` and ``relation_logits``
(abstract) and overrides, where it needs to, the other methods, whose defaults suit a predictor without
extra losses, without a separate test-time computation and without a stage 2.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping

from torch import Tensor, nn

from ..context import ContextInputs, ObjectContext


@dataclass
class PredictorOutput:
    """A predictor's training output for R pairs.

    relation_logits: (R, P) the logits the relation loss (``loss_rel``) takes.
    losses: the predictor's own extra losses, scalar tensors under its own key names (e.g. a tree score's
    binary loss, auxiliary classifiers' losses). The relation head adds them to its loss dict beside
    ``loss_rel`` and ``loss_refine_obj``; the key set must be the same at every call (a zero when a loss does
    not apply), as the trainer averages the dict across ranks.
    """

    relation_logits: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)


class RelationPredictor(nn.Module, ABC):
    """The base of every predictor. Class attributes:

    uses_union_features: False when the predictor reads no union features (the head then computes none and
        passes None).
    requires_training: False when the predictor can be tested as built, without a relation checkpoint.
    uses_relation_adjacency: True when its context needs, in training, each image's symmetric relation
        matrix over its objects (``ContextInputs.relation_adjacency``, e.g. VCTree's tree-score loss).
    uses_pair_context: True when its object context is computed over the pairs it will classify (IMP's
        message passing): the head then computes the union features before the context and gives both in
        ``ContextInputs.pairs`` / ``union_features`` (the sampled pairs in training, every ordered pair at
        test time), and asks the logits of exactly those pairs (at test time all at once, not in chunks).
    exposes_classifier_inputs: True when the predictor implements ``classifier_inputs`` and ``classify``
        (and ``eval_classify`` gives its ``eval_logits``), so that stage 2 can compute (and cache) the frozen
        part's output once per image (docs/training.md#stage-2-over-cached-features) with ``loss_rel`` alone
        and test over it; False keeps stage 2 on the full forward (needed when the predictor's extra losses
        reach its stage-2 parameters).
    """

    uses_union_features: bool = True
    requires_training: bool = True
    uses_relation_adjacency: bool = False
    uses_pair_context: bool = False
    exposes_classifier_inputs: bool = False
    classifier_state_prefixes: tuple[str, ...] = ()
    """State-dict prefixes (relative to the predictor) of its classifier head(s), which ``classifier_inputs``
    does not read: a cache of the frozen part's outputs is valid whatever their values."""
    registered_name: str | None = None
    """The MODEL.ROI_RELATION_HEAD.PREDICTOR it was built as (set by ``registry.build_predictor``)."""

    @abstractmethod
    def object_context(self, inputs: ContextInputs) -> ObjectContext:
        """The objects' context: refined logits (N, C), labels (N,) and whatever the relation stage needs.

        A predictor may return a subclass of ``ObjectContext`` with more fields (e.g. a counterfactual edge
        context computed at eval time); the head reads only ``object_logits`` and ``object_labels`` and hands
        the object back to ``training_outputs`` / ``eval_logits`` unchanged. Eval-time test pairs are
        classified in chunks, so whatever is per object or per image belongs here, computed once."""

    @abstractmethod
    def relation_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None) -> Tensor:
        """(R, P) training-time logits of ``pairs`` (R, 2) int64, flat object indices into ``context``
        (subject, object), with their union features (R, D) (None when ``uses_union_features`` is False)."""

    def training_outputs(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None,
                         pair_labels: Tensor) -> PredictorOutput:
        """Training forward of the sampled ``pairs`` (R, 2) with their predicate labels (R,) int64 (0 =
        background): the logits ``loss_rel`` takes and any extra losses. Default: ``relation_logits``, no
        extra loss."""
        return PredictorOutput(self.relation_logits(context, pairs, union_features))

    def eval_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None) -> Tensor:
        """(R, P) test-time logits, ranked by the post-processor (a chunk of the test pairs at a time).
        Default: ``relation_logits``; a predictor whose test-time output differs (a transfer map, a
        counterfactual effect) overrides it."""
        return self.relation_logits(context, pairs, union_features)

    def complete_stage2_state(self, stage1_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """This predictor's stage-1 state dict (keys relative to the predictor) completed with the entries
        that exist only in its stage-2 form, derived from stage-1 ones (e.g. a clean classifier starting as
        its general one). Default: the state unchanged."""
        return dict(stage1_state)

    def stage2_parameter_names(self) -> list[str]:
        """Names (relative to the predictor) of the parameters stage 2 trains; every other parameter of the
        model is frozen. Default: none (the predictor has no stage 2)."""
        return []

    def classifier_inputs(self, context: ObjectContext, pairs: Tensor, union_features: Tensor | None
                          ) -> tuple[Tensor, ...]:
        """What the stage-2 classifier reads for ``pairs`` (R, 2), flat object indices into ``context``, with
        their union features (R, D): a tuple of tensors whose first dimension is R, computed by the frozen
        part only (no parameter ``stage2_parameter_names`` lists), such that ``classify(*inputs)`` gives the
        training-time logits of ``relation_logits``. Rows of different pairs are independent, so a subset of
        the rows is the inputs of that subset of pairs. Only for ``exposes_classifier_inputs``."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its classifier inputs")

    def classify(self, *inputs: Tensor) -> Tensor:
        """(R, P) training-time logits from ``classifier_inputs``' tensors (R rows each). Only for
        ``exposes_classifier_inputs``."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its classifier inputs")

    def eval_classify(self, *inputs: Tensor) -> Tensor:
        """(R, P) test-time logits (``eval_logits``) from ``classifier_inputs``' tensors (R rows each). Only
        for ``exposes_classifier_inputs``; default: ``classify``."""
        return self.classify(*inputs)
