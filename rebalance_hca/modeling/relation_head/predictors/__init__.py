"""Relation predictors, chosen by MODEL.ROI_RELATION_HEAD.PREDICTOR from a registry (the interface: ``registry``)."""
# importing each predictor module registers its predictors
from .base import PredictorOutput, RelationPredictor
from .causal import CausalAnalysisPredictor
from .context_predictor import ContextPredictor
from .frequency import FrequencyBaselinePredictor
from .imp import IMPPredictor
from .motifs import MotifPredictor
from .rebalance import RebalancedPredictor, RebalanceRecipe, build_rebalance_recipe
from .registry import PREDICTOR_OPTION_KEYS, PredictorParts, build_predictor, predictor_names, register_predictor
from .vctree import VCTreePredictor

__all__ = ["PREDICTOR_OPTION_KEYS", "CausalAnalysisPredictor", "ContextPredictor", "FrequencyBaselinePredictor",
           "IMPPredictor", "MotifPredictor", "PredictorOutput", "PredictorParts", "RebalanceRecipe",
           "RebalancedPredictor", "RelationPredictor", "VCTreePredictor", "build_predictor", "build_rebalance_recipe",
           "predictor_names", "register_predictor"]
