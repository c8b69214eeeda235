"""Relation training (SGB's ``tools/relation_train_net.py``), torchrun-ready, both ReBalance-HCA stages.

    torchrun --nproc_per_node=4 tools/relation_train_net.py \
        --config-file configs/vg150/e2e_relation_X_101_32_8_FPN_1x_hca.yaml \
        MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL True \
        SOLVER.IMS_PER_BATCH 16 OUTPUT_DIR ./checkpoints/hca_predcls_stage1

Stage 1 (WITH_CLEAN_CLASSIFIER False) trains the relation head over the frozen detector
(MODEL.PRETRAINED_DETECTOR_CKPT). Stage 2 (WITH_CLEAN_CLASSIFIER True) needs the stage-1 model in
MODEL.PRETRAINED_MODEL_CKPT and trains the clean classifier alone on the rebalanced split (with
MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX for the loss). Validation (graph-constrained R@100 on
DATASETS.VAL) every SOLVER.VAL_PERIOD, the best model kept as model_best.pth; checkpoints every
SOLVER.CHECKPOINT_PERIOD; a rerun with the same OUTPUT_DIR resumes from its last_checkpoint unless
--no-resume; then the test on DATASETS.TEST unless --skip-test. The run's wall time (setup and iterations, not
the test) goes to OUTPUT_DIR/training_time.json. See docs/training.md.
"""
from __future__ import annotations

import argparse
import time
from typing import Sequence

import torch

from rebalance_hca.data import make_data_loader
from rebalance_hca.engine import launch
from rebalance_hca.engine.relation_runs import (check_relation_config, prepare_training, relation_validator,
                                                run_description, test_relation_model)
from rebalance_hca.engine.trainer import (BestCheckpointHook, CheckpointHook, LoggingHook, ProgressBarHook, Trainer,
                                          amp_dtype_from_config)
from rebalance_hca.engine.training_time import TrainingTimeHook
from rebalance_hca.utils.cli import run_tool, user_errors

LOG_PERIOD = 20


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-resume", dest="no_resume", action="store_true",
                        help="start from iteration 0 even when OUTPUT_DIR has a last_checkpoint (it is overwritten)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Relation training (ReBalance-HCA, both stages)", argv, extra_arguments)


def train(cfg, device: torch.device, distributed: bool, resume: bool) -> tuple[torch.nn.Module, str]:
    """Train; returns the (possibly DDP-wrapped) model and the final checkpoint's path ("" on other ranks). The
    run's wall time goes to OUTPUT_DIR/training_time.json (``TrainingTimeHook``)."""
    started = time.perf_counter()
    with user_errors("setting up relation training"):
        run = prepare_training(cfg, device, resume=resume)
        data_loader = make_data_loader(cfg, mode="train", is_distributed=distributed, start_iter=run.start_iter)
    model = run.model
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    checkpointer = run.state.checkpointer
    if run.start_iter >= cfg.SOLVER.MAX_ITER:
        return model, checkpointer.last_checkpoint() if checkpointer.has_checkpoint() else ""
    trainer = Trainer(
        model, data_loader, run.state.optimizer, run.state.scheduler, device, max_iter=cfg.SOLVER.MAX_ITER,
        start_iter=run.start_iter, amp_dtype=amp_dtype_from_config(cfg.DTYPE), grad_scaler=run.state.grad_scaler,
        grad_clip_norm=cfg.SOLVER.GRAD_NORM_CLIP, grad_log_period=cfg.SOLVER.PRINT_GRAD_FREQ,
        validator=relation_validator(cfg, distributed, device) if cfg.SOLVER.TO_VAL else None,
        val_period=cfg.SOLVER.VAL_PERIOD, pre_validate=cfg.SOLVER.PRE_VAL, best_metric=run.best_metric,
        hooks=[BestCheckpointHook(checkpointer), CheckpointHook(checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD),
               LoggingHook(LOG_PERIOD, tensorboard_dir=cfg.OUTPUT_DIR), ProgressBarHook(),
               TrainingTimeHook(cfg.OUTPUT_DIR, started)],
    )
    trainer.train()
    return model, checkpointer.last_checkpoint() if checkpointer.has_checkpoint() else ""


def main(argv: Sequence[str] | None = None) -> dict:
    """Train (and test unless --skip-test); returns the test evaluation on rank 0 ({} otherwise)."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    check_relation_config(cfg)
    with launch.session(cfg, config_header=run_description(cfg)) as (device, distributed, _):
        model, weights = train(cfg, device, distributed, resume=not args.no_resume)
        return {} if args.skip_test else test_relation_model(cfg, model, device, distributed, weights)


if __name__ == "__main__":
    run_tool(main)
