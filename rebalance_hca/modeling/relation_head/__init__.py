"""The relation head: pair sampling, box and union features, context (hybrid co-attention | Transformer),
predictors with general / clean / transfer classifiers and the frequency bias, losses, post-processing.
Module map and shapes: docs/relation_head.md."""
from .build import build_relation_head, build_relation_loss
from .context import ContextInputs, HybridCoAttentionContext, ObjectContext, TransformerContext
from .loss import ClassBalancedCrossEntropy, PredicateReweightingLoss
from .predictors import build_predictor, predictor_names, register_predictor
from .relation_head import ImageObjects, RelationHead
from .sampling import RelationPairSampler, all_ordered_pairs

__all__ = ["ClassBalancedCrossEntropy", "ContextInputs", "HybridCoAttentionContext", "ImageObjects",
           "ObjectContext", "PredicateReweightingLoss", "RelationHead", "RelationPairSampler", "TransformerContext",
           "all_ordered_pairs", "build_predictor", "build_relation_head", "build_relation_loss", "predictor_names",
           "register_predictor"]
