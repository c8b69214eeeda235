"""Relation predictors, chosen by MODEL.ROI_RELATION_HEAD.PREDICTOR from a registry (see ``registry``)."""
# importing each predictor module registers its predictors
from .context_predictor import ContextPredictor
from .frequency import FrequencyBaselinePredictor
from .registry import PredictorParts, build_predictor, predictor_names, register_predictor

__all__ = ["ContextPredictor", "FrequencyBaselinePredictor", "PredictorParts", "build_predictor", "predictor_names",
           "register_predictor"]
