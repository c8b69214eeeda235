"""Relation training and testing runs, shared by tools/relation_train_net.py, relation_test_net.py and
compute_confusion_matrix.py: what to build, which weights to load, validation, and the test pass with its
files (docs/reference.md#two-stage-recipe, #sgb-evaluation-protocol; docs/training.md).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config.digest import config_digest
from ..data import family_of, make_data_loader
from ..data.build import build_dataset, dataset_name
from ..evaluation import EvaluationProtocol, PredicateConfusionMatrix
from ..modeling import build_model, relation_mode
from ..modeling.relation_head.build import relation_loss_type
from ..modeling.weights import load_model_weights, unwrap_model
from ..utils.cli import UserInputError, user_errors
from ..utils.comm import broadcast_object, get_world_size, is_main_process
from .checkpoint import Checkpointer
from .relation_inference import (evaluate_split, evaluate_split_file, groundtruth_for_evaluation, predict_split,
                                 predict_split_to_file, train_split_inputs, usable_cached_predictions)
from .stage2_cache import frozen_input_source, frozen_inputs, setup_stage2_inputs
from .stages import freeze_for_stage2, is_stage2, load_stage1_model
from .trainer import TrainingState, amp_dtype_from_config, make_training_state

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.npz"
# Config sections whose values change what a model predicts (for the predictions cache).
PREDICTION_SECTIONS = ("MODEL", "INPUT", "DATASETS")


def run_description(cfg) -> str:
    """What a run is, for the header of its saved config.yml: mode, predictor, stage, relation loss, confusion
    matrix."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    lines = [f"{relation_mode(cfg)} with {head.PREDICTOR}"]
    if is_stage2(cfg):
        lines.append(f"stage 2 (informative finetuning of the clean classifier on the rebalanced split) from "
                     f"MODEL.PRETRAINED_MODEL_CKPT {cfg.MODEL.PRETRAINED_MODEL_CKPT or '(not set)'}")
    else:
        lines.append("stage 1 (the common model on the full train split)")
    lines.append(f"relation loss (MODEL.ROI_RELATION_HEAD.LOSS.TYPE {head.LOSS.TYPE!r}): {relation_loss_type(cfg)}")
    lines.append(f"confusion matrix (MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX): {head.CONFUSION_MATRIX or '(none)'}")
    lines.append(f"transfer classifier at test time: {head.WITH_TRANSFER_CLASSIFIER} ({head.TRANSFER_MATRIX})")
    return "\n".join(lines)


def check_relation_config(cfg) -> None:
    """Refuse configs that cannot train or test relations, before anything is built."""
    if not cfg.MODEL.RELATION_ON:
        raise UserInputError("relation training and testing need MODEL.RELATION_ON True")
    if not cfg.TEST.RELATION.MULTIPLE_PREDS:
        return
    with user_errors("reading the config"):
        protocol = family_of(dataset_name(cfg, "val")).protocol
    if protocol.multiple_preds_metric is None:
        raise UserInputError(f"TEST.RELATION.MULTIPLE_PREDS True selects ng-R@100 as the validation metric of the VG "
                             f"protocol; the {protocol.name} protocol validates with {protocol.validation_metrics[0]} "
                             f"(leave it False)")


def validation_metric_name(cfg, protocol: EvaluationProtocol) -> str:
    """The metric that validation returns (model_best, the plateau schedule): the protocol's first validation
    metric (SGB's graph-constrained "R@100" on VG), or with TEST.RELATION.MULTIPLE_PREDS its
    ``multiple_preds_metric`` (the VG protocol's no-graph-constraint "ng-R@100": several predicates per pair,
    what the key meant in neural-motifs; SGB declares it and never reads it)."""
    if cfg.TEST.RELATION.MULTIPLE_PREDS and protocol.multiple_preds_metric is not None:
        return protocol.multiple_preds_metric
    return protocol.validation_metrics[0]


@dataclass
class TrainingRun:
    """Everything a relation training run needs, built and loaded (``prepare_training``)."""

    model: nn.Module
    state: TrainingState
    start_iter: int
    best_metric: float | None


def prepare_training(cfg, device: torch.device, resume: bool = True) -> TrainingRun:
    """Build the model, load what the stage needs (stage 2: the stage-1 model, then train the clean
    classifier only), make the optimizer and schedule over the trainable parameters, and resume from
    OUTPUT_DIR's last checkpoint (unless ``resume`` is False) or initialise from MODEL.WEIGHT. Stage 2 then
    takes its classifier inputs image by image, cached per STAGE2.FEATURE_CACHE (``setup_stage2_inputs``)."""
    model = build_model(cfg)
    if not model.requires_training:
        raise UserInputError(f"{cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR} needs no training; test it with "
                             "tools/relation_test_net.py")
    if is_stage2(cfg):
        load_stage1_model(model, cfg.MODEL.PRETRAINED_MODEL_CKPT)
        trainable = freeze_for_stage2(model)
        logger.info("Stage 2 trains %d parameter tensors: %s", len(trainable), ", ".join(trainable))
        if not cfg.MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX:
            logger.warning("Stage 2 without MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX: the reweighting loss has no "
                           "predicate correlation (tools/compute_confusion_matrix.py writes the matrix)")
    elif cfg.MODEL.PRETRAINED_MODEL_CKPT:
        load_model_weights(model, cfg.MODEL.PRETRAINED_MODEL_CKPT, key="MODEL.PRETRAINED_MODEL_CKPT")
        logger.info("Initialised the model from MODEL.PRETRAINED_MODEL_CKPT %s", cfg.MODEL.PRETRAINED_MODEL_CKPT)
    state = make_training_state(cfg, model.to(device), device)
    if not resume and state.checkpointer.has_checkpoint():
        logger.warning("Not resuming (--no-resume): the checkpoints in %s will be overwritten", cfg.OUTPUT_DIR)
    extra = state.checkpointer.resume_or_load(cfg.MODEL.WEIGHT, resume=resume)
    if is_stage2(cfg):
        setup_stage2_inputs(cfg, model)
    return TrainingRun(model, state, extra["iteration"], extra.get("best_metric"))


def frozen_weights_file(cfg, weights: str) -> str:
    """The weights file of the frozen part of a model whose tested weights are ``weights``: in stage 2 the
    stage-1 model (MODEL.PRETRAINED_MODEL_CKPT), else ``weights`` (where the feature cache goes,
    ``stage2_cache.stage2_cache_folder``)."""
    return cfg.MODEL.PRETRAINED_MODEL_CKPT if is_stage2(cfg) else weights


def relation_validator(cfg, distributed: bool, device: torch.device):
    """validator(model) -> the validation metric of DATASETS.VAL's evaluation protocol on every rank
    (``validation_metric_name``: SGB's graph-constrained R@100, ng-R@100 with TEST.RELATION.MULTIPLE_PREDS,
    PySGG's score_wtd on Open Images), logged with the protocol's other validation metrics; the loader is
    built on first use. In stage 2, whose frozen part does not change, the passes go through the feature
    cache (STAGE2.FEATURE_CACHE): the first fills it, the later ones read it."""
    loaders, sources = {}, {}
    mode = relation_mode(cfg)

    def validate(model: nn.Module) -> float:
        if "val" not in loaders:
            with user_errors("building the val split"):
                loaders["val"] = make_data_loader(cfg, mode="val", is_distributed=distributed)
            sources["val"] = (frozen_input_source(cfg, model, "val", cfg.MODEL.PRETRAINED_MODEL_CKPT)
                              if is_stage2(cfg) else None)
        loader = loaders["val"]
        protocol = family_of(dataset_name(cfg, "val")).protocol
        with frozen_inputs(model, sources["val"]):
            predictions = predict_split(model, loader, device, amp_dtype_from_config(cfg.DTYPE), mode,
                                        cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES, description="validation",
                                        protocol=protocol, batch_invariant=cfg.TEST.BATCH_INVARIANT)
        metric = None
        if predictions is not None:
            evaluation = evaluate_split(loader.dataset, predictions, mode, zeroshot=None, predicate_counts=None,
                                        iou_threshold=cfg.TEST.RELATION.IOU_THRESHOLD, with_detection=False,
                                        protocol=protocol)
            metric, line = protocol.validation_metric(evaluation, validation_metric_name(cfg, protocol))
            logger.info("%s", line)
        return broadcast_object(metric)

    return validate


def load_weights_for_testing(cfg, model: nn.Module) -> str:
    """Load the weights to test and return their file: MODEL.WEIGHT when set, else OUTPUT_DIR's last
    checkpoint; "" for a predictor that needs no training and has neither. Says what it loaded."""
    path = cfg.MODEL.WEIGHT
    if not path:
        checkpointer = Checkpointer(model, save_dir=cfg.OUTPUT_DIR)
        path = checkpointer.last_checkpoint() if checkpointer.has_checkpoint() else ""
    if not path:
        if unwrap_model(model).requires_training:
            raise UserInputError(f"nothing to test: set MODEL.WEIGHT or point OUTPUT_DIR at a training run "
                                 f"(no last_checkpoint in {cfg.OUTPUT_DIR!r})")
        logger.info("%s needs no trained weights; testing it as built", cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR)
        return ""
    load_model_weights(model, path, key="MODEL.WEIGHT" if cfg.MODEL.WEIGHT else "checkpoint")
    logger.info("Testing the weights of %s", path)
    return path


def _file_fingerprint(path: str) -> list[Any]:
    if not path:
        return []
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


def batching_description(cfg) -> str:
    """How the test pass fed images to the model: "per image" (TEST.BATCH_INVARIANT, the predictions do not
    depend on the batch), else the padded batches, which the predictions depend on."""
    if cfg.TEST.BATCH_INVARIANT:
        return "per image"
    return f"padded batches of {cfg.TEST.IMS_PER_BATCH // get_world_size()} on each of {get_world_size()} processes"


def prediction_metadata(cfg, weights: str, split: str, dataset_size: int) -> dict[str, Any]:
    """What a predictions file was computed from; a cached file is reused only when all of it matches."""
    name = dataset_name(cfg, split)
    return {"split": split, "dataset": name, "evaluation_protocol": family_of(name).protocol.name,
            "dataset_size": dataset_size, "batching": batching_description(cfg),
            "mode": relation_mode(cfg), "predictor": cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR,
            "weights": _file_fingerprint(weights),
            "confusion_matrix": _file_fingerprint(cfg.MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX),
            "config_digest": config_digest(cfg, PREDICTION_SECTIONS)}


def test_relation_model(cfg, model: nn.Module, device: torch.device, distributed: bool, weights: str,
                        zeroshot_file: str | None = None) -> dict:
    """Test on DATASETS.TEST (DATASETS.VAL with TEST.VAL_FLAG) with its family's evaluation protocol:
    predictions file, the protocol's report (printed and logged), results JSON and per-predicate PNG in
    OUTPUT_DIR/inference/<dataset>/ (SGB's report and recall PNG; on Open Images PySGG's OI report and AP
    PNG). Reuses a cached predictions file of the same weights, data and config with
    TEST.ALLOW_LOAD_FROM_CACHE. With STAGE2.FEATURE_CACHE the pass goes through the feature cache of the
    frozen part (``frozen_input_source``), bit-identical to the usual forward. Returns the evaluation dict on
    rank 0 and {} elsewhere."""
    split = "val" if cfg.TEST.VAL_FLAG else "test"
    protocol = family_of(dataset_name(cfg, split)).protocol
    mode = relation_mode(cfg)
    num_predicates = cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES
    with user_errors(f"building the {split} split"):
        loader = make_data_loader(cfg, mode=split, is_distributed=distributed)
    dataset = loader.dataset
    folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name(cfg, split))
    path = os.path.join(folder, PREDICTIONS_FILE)
    metadata = prediction_metadata(cfg, weights, split, len(dataset))
    cached = cfg.TEST.ALLOW_LOAD_FROM_CACHE and is_main_process() and usable_cached_predictions(path, metadata)
    if not broadcast_object(cached):
        with frozen_inputs(model, frozen_input_source(cfg, model, split, frozen_weights_file(cfg, weights))):
            predict_split_to_file(model, loader, device, amp_dtype_from_config(cfg.DTYPE), mode, num_predicates,
                                  path, metadata, protocol=protocol, batch_invariant=cfg.TEST.BATCH_INVARIANT)
    if not is_main_process():
        return {}
    evaluation, paths = evaluate_predictions_file(cfg, protocol, dataset, split, path, folder, zeroshot_file,
                                                  extra={"weights": weights})
    logger.info("%s", evaluation["report"])
    logger.info("Wrote %s", ", ".join([path, *paths.values()]))
    return evaluation


def evaluate_predictions_file(cfg, protocol: EvaluationProtocol, dataset, split: str, predictions_path: str,
                              output_dir: str, zeroshot_file: str | None = None, with_detection: bool = True,
                              whole_split: bool = True,
                              extra: dict[str, Any] | None = None) -> tuple[dict, dict[str, str]]:
    """Evaluate the predictions file of ``split`` (``dataset``) with ``protocol`` and write its report files
    to ``output_dir``; shared by the test pass and tools/evaluate_predictions.py.

    The protocol's train-split inputs (zero-shot triplets from ``zeroshot_file`` or computed, the train
    split's predicate counts) are read first; the file is evaluated a chunk at a time (``evaluate_split_file``:
    ``whole_split`` asks for one prediction per image in index order), in the mode of the config
    (MODEL.ROI_RELATION_HEAD.USE_GT_BOX / USE_GT_OBJECT_LABEL) and with TEST.RELATION.IOU_THRESHOLD. The
    results JSON records {"split", **extra, "predictions", and the train-split metadata}. Returns (the
    evaluation dict, {kind: path} of the files written)."""
    with user_errors("reading the zero-shot triplets and the train split's predicate counts"):
        zeroshot, predicate_counts, train_metadata = train_split_inputs(cfg, protocol, dataset, split,
                                                                        len(dataset.ind_to_predicates),
                                                                        zeroshot_file)
    evaluation = evaluate_split_file(dataset, predictions_path, relation_mode(cfg), zeroshot, predicate_counts,
                                     iou_threshold=cfg.TEST.RELATION.IOU_THRESHOLD, with_detection=with_detection,
                                     protocol=protocol, whole_split=whole_split)
    paths = protocol.write_report_files(output_dir, split, evaluation, dataset.ind_to_predicates, predicate_counts,
                                        extra={"split": split, **(extra or {}), "predictions": predictions_path,
                                               **train_metadata})
    return evaluation, paths


def confusion_matrix_of_train_split(cfg, model: nn.Module, device: torch.device, distributed: bool,
                                    weights: str) -> tuple[np.ndarray, list[str]] | None:
    """(P, P) float32 predicate confusion counts of ``model`` (loaded from ``weights``) over every GT pair
    of the train split without stage-2 rebalancing and with test-time transforms
    (docs/reference.md#confusion-matrix): row = GT predicate, column = the top-1 foreground prediction.
    PredCls or SGCls only. With STAGE2.FEATURE_CACHE the pass goes through the feature cache beside
    ``weights`` (bit-identical to the usual forward), whose train entries the stage 2 of this model then
    reads. Returns (matrix, predicate names) on rank 0, None elsewhere."""
    mode = relation_mode(cfg)
    if mode == "sgdet":
        raise UserInputError("the confusion matrix needs GT boxes (predcls or sgcls): SGDet pairs do not index "
                             "the GT objects")
    dataset = build_dataset(cfg, "train", augment=False, rebalance=False)
    loader = make_data_loader(cfg, mode="test", is_distributed=distributed, dataset=dataset)
    num_predicates = cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES
    with frozen_inputs(model, frozen_input_source(cfg, model, "train", frozen_weights_file(cfg, weights))):
        predictions = predict_split(model, loader, device, amp_dtype_from_config(cfg.DTYPE), mode, num_predicates,
                                    description="confusion matrix over the train split",
                                    batch_invariant=cfg.TEST.BATCH_INVARIANT)
    if predictions is None:
        return None
    accumulator = PredicateConfusionMatrix(num_predicates, mode)
    for index in sorted(predictions):
        accumulator.add(groundtruth_for_evaluation(dataset, index), predictions[index])
    return accumulator.matrix, list(dataset.ind_to_predicates)
