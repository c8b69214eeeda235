"""Detector pretraining on a VG-format dataset (SGB's ``tools/detector_pretrain_net.py``), torchrun-ready.

    torchrun --nproc_per_node=4 tools/detector_pretrain_net.py \
        --config-file configs/vg150/e2e_relation_detector_X_101_32_8_FPN_1x.yaml \
        SOLVER.IMS_PER_BATCH 8 TEST.IMS_PER_BATCH 4 OUTPUT_DIR ./checkpoints/pretrained_faster_rcnn

Trains with validation mAP@0.5 every SOLVER.VAL_PERIOD, checkpoints every SOLVER.CHECKPOINT_PERIOD and
``model_final.pth`` at the end, resumes from OUTPUT_DIR's ``last_checkpoint`` when there is one, then
tests on DATASETS.TEST unless ``--skip-test``.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Sequence

import torch

from rebalance_hca.data import make_data_loader
from rebalance_hca.data.build import dataset_name
from rebalance_hca.engine import launch
from rebalance_hca.engine.detector_inference import inference_and_map
from rebalance_hca.engine.trainer import (CheckpointHook, LoggingHook, Trainer, amp_dtype_from_config,
                                          make_training_state)
from rebalance_hca.modeling.detector import build_detector
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors
from rebalance_hca.utils.comm import synchronize

LOG_PERIOD = 20  # SGB's detector trainer logs every 20 iterations


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Detector pretraining (Faster R-CNN on torchvision)", argv)


def validator_for(cfg, distributed: bool, device: torch.device, amp_dtype):
    """validator(model) -> mAP@0.5 on DATASETS.VAL (the loader is built once, on first use)."""
    loaders = {}

    def validate(model) -> float:
        if "val" not in loaders:
            with user_errors("building the val split"):
                loaders["val"] = make_data_loader(cfg, mode="val", is_distributed=distributed)
        return inference_and_map(model, loaders["val"], device, amp_dtype,
                                 batch_invariant=cfg.TEST.BATCH_INVARIANT)

    return validate


def train(cfg, device: torch.device, distributed: bool, logger: logging.Logger) -> torch.nn.Module:
    """Build, resume or initialise, and train the detector; returns the (possibly DDP-wrapped) model."""
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
        validator=validator_for(cfg, distributed, device, amp_dtype) if cfg.SOLVER.TO_VAL else None,
        val_period=cfg.SOLVER.VAL_PERIOD, pre_validate=cfg.SOLVER.PRE_VAL,
        hooks=[CheckpointHook(state.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD),
               LoggingHook(LOG_PERIOD, tensorboard_dir=cfg.OUTPUT_DIR)],
    )
    trainer.train()
    return model


def test(cfg, model: torch.nn.Module, device: torch.device, distributed: bool) -> dict[str, float]:
    """mAP@0.5 on DATASETS.TEST, written to OUTPUT_DIR/inference/<dataset>/detection_map.json."""
    name = dataset_name(cfg, "test")
    output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", name) if cfg.OUTPUT_DIR else ""
    with user_errors("building the test split"):
        loader = make_data_loader(cfg, mode="test", is_distributed=distributed)
    result = {name: inference_and_map(model, loader, device, amp_dtype_from_config(cfg.DTYPE), output_folder,
                                      batch_invariant=cfg.TEST.BATCH_INVARIANT)}
    synchronize()
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train (and test unless --skip-test); returns {test dataset name: mAP@0.5} ({} with --skip-test)."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    if cfg.MODEL.RELATION_ON:
        raise UserInputError("detector pretraining needs MODEL.RELATION_ON False (every image with boxes is used); "
                         "pass MODEL.RELATION_ON False")
    with launch.session(cfg) as (device, distributed, logger):
        model = train(cfg, device, distributed, logger)
        return {} if args.skip_test else test(cfg, model, device, distributed)


if __name__ == "__main__":
    run_tool(main)
