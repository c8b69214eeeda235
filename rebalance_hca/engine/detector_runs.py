"""Detector pretraining and testing runs for tools/detector_pretrain_net.py (SGB's detector_pretrain_net.py),
beside the relation runs: the config check, training with validation mAP@0.5, and the test pass with its
file (docs/detector.md).
"""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from ..data import make_data_loader
from ..data.build import dataset_name
from ..modeling.detector import build_detector
from ..utils.cli import UserInputError, user_errors
from ..utils.comm import synchronize
from .detector_inference import inference_and_map
from .trainer import CheckpointHook, LoggingHook, Trainer, amp_dtype_from_config, make_training_state

logger = logging.getLogger(__name__)

LOG_PERIOD = 20  # SGB's detector trainer logs every 20 iterations


def check_detector_config(cfg) -> None:
    """Refuse configs that cannot pretrain the detector, before anything is built."""
    if cfg.MODEL.RELATION_ON:
        raise UserInputError("detector pretraining needs MODEL.RELATION_ON False (every image with boxes is used); "
                             "pass MODEL.RELATION_ON False")


def detector_validator(cfg, distributed: bool, device: torch.device, amp_dtype: torch.dtype | None):
    """validator(model) -> mAP@0.5 on DATASETS.VAL (the loader is built once, on first use)."""
    loaders = {}

    def validate(model: nn.Module) -> float:
        if "val" not in loaders:
            with user_errors("building the val split"):
                loaders["val"] = make_data_loader(cfg, mode="val", is_distributed=distributed)
        return inference_and_map(model, loaders["val"], device, amp_dtype,
                                 batch_invariant=cfg.TEST.BATCH_INVARIANT)

    return validate


def train_detector(cfg, device: torch.device, distributed: bool) -> nn.Module:
    """Build the detector, resume from OUTPUT_DIR's last checkpoint or initialise from MODEL.WEIGHT, and
    train it to SOLVER.MAX_ITER (validation every SOLVER.VAL_PERIOD with SOLVER.TO_VAL, checkpoints every
    SOLVER.CHECKPOINT_PERIOD); returns the (possibly DDP-wrapped) model."""
    with user_errors("setting up detector training"):
        model = build_detector(cfg).to(device)
        state = make_training_state(cfg, model, device)
        amp_dtype = amp_dtype_from_config(cfg.DTYPE)
        start_iter = state.checkpointer.resume_or_load(cfg.MODEL.WEIGHT)["iteration"]
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if start_iter >= cfg.SOLVER.MAX_ITER:
        logger.info("Checkpoint iteration %d >= SOLVER.MAX_ITER %d: nothing to train", start_iter,
                    cfg.SOLVER.MAX_ITER)
        return model
    with user_errors("setting up detector training"):
        data_loader = make_data_loader(cfg, mode="train", is_distributed=distributed, start_iter=start_iter)
    trainer = Trainer(
        model, data_loader, state.optimizer, state.scheduler, device,
        max_iter=cfg.SOLVER.MAX_ITER, start_iter=start_iter, amp_dtype=amp_dtype, grad_scaler=state.grad_scaler,
        grad_clip_norm=None,  # SGB's detector script does no gradient clipping (docs/reference.md#detector-pretraining)
        validator=detector_validator(cfg, distributed, device, amp_dtype) if cfg.SOLVER.TO_VAL else None,
        val_period=cfg.SOLVER.VAL_PERIOD, pre_validate=cfg.SOLVER.PRE_VAL,
        hooks=[CheckpointHook(state.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD),
               LoggingHook(LOG_PERIOD, tensorboard_dir=cfg.OUTPUT_DIR)],
    )
    trainer.train()
    return model


def test_detector(cfg, model: nn.Module, device: torch.device, distributed: bool) -> dict[str, float]:
    """{DATASETS.TEST's dataset name: mAP@0.5}, written to OUTPUT_DIR/inference/<dataset>/detection_map.json."""
    name = dataset_name(cfg, "test")
    output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", name) if cfg.OUTPUT_DIR else ""
    with user_errors("building the test split"):
        loader = make_data_loader(cfg, mode="test", is_distributed=distributed)
    result = {name: inference_and_map(model, loader, device, amp_dtype_from_config(cfg.DTYPE), output_folder,
                                      batch_invariant=cfg.TEST.BATCH_INVARIANT)}
    synchronize()
    return result
