"""Evaluation: SGB-exact scene-graph metrics, PySGG's Open Images V6 metrics, detector mAP, predicate
confusion matrix, reports.

Never imports ``modeling``: it works on saved predictions (numpy arrays or torch tensors).
See docs/evaluation.md for the definitions and the predictions file format.
"""
from .compaction import compact_prediction, evaluation_mode
from .confusion import PredicateConfusionMatrix, predicate_confusion_matrix
from .detection import compute_detection_map
from .evaluate import detection_input, evaluate_oi_predictions, evaluate_predictions
from .oi import OIEvaluator, compact_oi_prediction, oi_candidates
from .oi_report import format_oi_report, plot_oi_per_predicate, write_oi_report_files
from .predictions_io import load_predictions, save_predictions
from .protocols import (GQA_PROTOCOL, OPEN_IMAGES_PROTOCOL, SGB_PROTOCOL, EvaluationProtocol, OpenImagesProtocol,
                        SGBProtocol)
from .report import format_sgb_report, plot_per_predicate_recall, save_results_json, write_report_files
from .sgg import SGGEvaluator, predicate_groups
from .zeroshot import (compute_zeroshot_triplets, load_zeroshot_triplets, save_zeroshot_triplets,
                       zeroshot_triplets_from_datasets)

__all__ = [
    "EvaluationProtocol", "GQA_PROTOCOL", "OIEvaluator", "OPEN_IMAGES_PROTOCOL", "OpenImagesProtocol", "SGBProtocol",
    "SGB_PROTOCOL",
    "SGGEvaluator", "PredicateConfusionMatrix", "compact_oi_prediction", "compact_prediction",
    "compute_detection_map", "oi_candidates",
    "compute_zeroshot_triplets", "detection_input", "evaluate_oi_predictions", "evaluate_predictions",
    "evaluation_mode", "format_oi_report", "plot_oi_per_predicate", "write_oi_report_files",
    "format_sgb_report", "load_predictions", "load_zeroshot_triplets", "plot_per_predicate_recall",
    "predicate_confusion_matrix", "predicate_groups", "save_predictions", "save_results_json",
    "save_zeroshot_triplets", "write_report_files", "zeroshot_triplets_from_datasets",
]
