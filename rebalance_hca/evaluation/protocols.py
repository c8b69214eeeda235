"""Evaluation protocols: what a dataset family is scored with, as one object per protocol that the engine and
tools call without knowing which protocol it is (docs/evaluation.md).

Each dataset family names its protocol (``rebalance_hca.data.DatasetFamily.protocol``):

* ``SGB_PROTOCOL`` — SGB's ``do_vg_evaluation`` (R, ng-R, zR, ng-zR, mR, ng-mR, A, F, head/body/tail) with
  the zero-shot triplets and predicate counts of the train split; validation selects on R@100.
* ``GQA_PROTOCOL`` — the same metrics for GQA-200 (SHA-GCL's ``do_gqa_evaluation`` runs SGB's VG metric code
  over its 100 predicates), zero-shot triplets and head/body/tail groups from GQA-200's own train split;
  validation selects on mR@100, SHA-GCL's default (GLOBAL_SETTING.CHOOSE_BEST_MODEL_BY_METRIC
  ``'_mean_recall'``).
* ``OPEN_IMAGES_PROTOCOL`` — PySGG's ``oi_evaluation`` (R@50, wmAP_rel, wmAP_phr, score_wtd, mR@50);
  validation selects on score_wtd.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .compaction import compact_prediction
from .evaluate import evaluate_oi_predictions, evaluate_predictions
from .oi import compact_oi_prediction, is_oi_compact
from .oi_report import write_oi_report_files
from .report import write_report_files

__all__ = ["EvaluationProtocol", "GQA_PROTOCOL", "OPEN_IMAGES_PROTOCOL", "OpenImagesProtocol", "SGBProtocol",
           "SGB_PROTOCOL"]


class EvaluationProtocol(ABC):
    """How predictions of one dataset family are reduced, scored, reported and validated.

    name: recorded in predictions files (metadata ``evaluation_protocol``); results_key: the key of the
    metrics dict in ``evaluate``'s output; validation_metrics: metric names of that dict, the first one
    selects the best checkpoint, all are logged; multiple_preds_metric: the metric selected instead with
    TEST.RELATION.MULTIPLE_PREDS (None: the key does not apply to this protocol); uses_train_split: whether ``evaluate`` reads the train
    split's zero-shot triplets and predicate counts (``engine.relation_inference.train_split_statistics``).
    """

    name: str
    results_key: str
    validation_metrics: tuple[str, ...]
    multiple_preds_metric: str | None
    uses_train_split: bool

    @abstractmethod
    def compact(self, prediction: Mapping[str, Any], groundtruth: Mapping[str, Any], mode: str,
                num_predicates: int, max_k: int, where: str) -> dict:
        """The compact form of one full prediction that ``evaluate`` needs (a few KB per image)."""

    @abstractmethod
    def evaluate(self, groundtruths: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]],
                 mode: str, predicate_names: Sequence[str], class_names: Sequence[str] | None = None,
                 image_ids: Sequence[int] | None = None, zeroshot_triplets: Any = None, predicate_counts: Any = None,
                 iou_threshold: float = 0.5, with_detection: bool = True) -> dict:
        """The evaluation of one split: {results_key: metrics, "detection": mAP dict or None, "report": text}."""

    @abstractmethod
    def write_report_files(self, output_dir: str | os.PathLike, prefix: str, evaluation: Mapping[str, Any],
                           predicate_names: Sequence[str], predicate_counts: Any = None,
                           extra: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Write ``<prefix>_report.txt``, ``<prefix>_results.json`` and a per-predicate PNG; {kind: path}."""

    @abstractmethod
    def unusable_predictions(self, predictions: Iterable[Mapping[str, Any]]) -> str | None:
        """What a saved predictions file lacks for this protocol, or None when it can be evaluated
        (``predictions`` may be a generator over the file: it is read once, at most)."""

    def validation_metric(self, evaluation: Mapping[str, Any], selected: str | None = None) -> tuple[float, str]:
        """(the metric validation selects on, the log line with it first and every validation metric);
        ``selected``: that metric's name, by default the first of ``validation_metrics``."""
        results = evaluation[self.results_key]
        selected = selected or self.validation_metrics[0]
        names = dict.fromkeys((selected, *self.validation_metrics))
        line = "Validation " + "  ".join(f"{name} {results[name]:.4f}" for name in names)
        return results[selected], line


@dataclass(frozen=True)
class SGBProtocol(EvaluationProtocol):
    """SGB's VG protocol (``evaluate_predictions``, ``write_report_files``)."""

    name: str = "vg"
    results_key: str = "sgg"
    validation_metrics: tuple[str, ...] = ("R@100", "mR@100")
    multiple_preds_metric: str | None = "ng-R@100"
    uses_train_split: bool = True

    def compact(self, prediction, groundtruth, mode, num_predicates, max_k, where):
        return compact_prediction(prediction, groundtruth, mode, num_predicates, max_k, where=where)

    def evaluate(self, groundtruths, predictions, mode, predicate_names, class_names=None, image_ids=None,
                 zeroshot_triplets=None, predicate_counts=None, iou_threshold=0.5, with_detection=True):
        return evaluate_predictions(groundtruths, predictions, mode, predicate_names, class_names=class_names,
                                    image_ids=image_ids, zeroshot_triplets=zeroshot_triplets,
                                    predicate_counts=predicate_counts, iou_threshold=iou_threshold,
                                    with_detection=with_detection)

    def write_report_files(self, output_dir, prefix, evaluation, predicate_names, predicate_counts=None, extra=None):
        return write_report_files(output_dir, prefix, evaluation, predicate_names, predicate_counts, extra=extra)

    def unusable_predictions(self, predictions):
        return None


@dataclass(frozen=True)
class OpenImagesProtocol(EvaluationProtocol):
    """PySGG's Open Images V6 protocol (``evaluate_oi_predictions``, ``write_oi_report_files``); it uses
    neither zero-shot triplets nor predicate counts."""

    name: str = "oi"
    results_key: str = "oi"
    validation_metrics: tuple[str, ...] = ("score_wtd", "R@50", "mR@50")
    multiple_preds_metric: str | None = None
    uses_train_split: bool = False

    def compact(self, prediction, groundtruth, mode, num_predicates, max_k, where):
        return compact_oi_prediction(prediction, groundtruth, mode, num_predicates, max_k, where=where)

    def evaluate(self, groundtruths, predictions, mode, predicate_names, class_names=None, image_ids=None,
                 zeroshot_triplets=None, predicate_counts=None, iou_threshold=0.5, with_detection=True):
        return evaluate_oi_predictions(groundtruths, predictions, mode, predicate_names, class_names=class_names,
                                       image_ids=image_ids, iou_threshold=iou_threshold,
                                       with_detection=with_detection)

    def write_report_files(self, output_dir, prefix, evaluation, predicate_names, predicate_counts=None, extra=None):
        return write_oi_report_files(output_dir, prefix, evaluation, predicate_names, extra=extra)

    def unusable_predictions(self, predictions):
        if all(is_oi_compact(prediction) for prediction in predictions):
            return None
        return "no Open Images candidates ('oi_triplets'), which the OI protocol needs"


SGB_PROTOCOL = SGBProtocol()
GQA_PROTOCOL = SGBProtocol(name="gqa", validation_metrics=("mR@100", "R@100"))
OPEN_IMAGES_PROTOCOL = OpenImagesProtocol()
