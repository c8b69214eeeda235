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

from rebalance_hca.config import load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.data.build import dataset_name
from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.engine.detector_inference import inference_and_map
from rebalance_hca.engine.trainer import CheckpointHook, LoggingHook, Trainer, amp_dtype_from_config
from rebalance_hca.modeling.detector import build_detector
from rebalance_hca.solver import make_lr_scheduler, make_optimizer
from rebalance_hca.utils.atomic import atomic_write
from rebalance_hca.utils.comm import (cleanup_distributed, get_rank, init_distributed, is_main_process,
                                      select_device, synchronize)
from rebalance_hca.utils.logging import setup_logger
from rebalance_hca.utils.seed import seed_everything

LOG_PERIOD = 20  # SGB's detector trainer logs every 20 iterations


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Detector pretraining (Faster R-CNN on torchvision)")
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the yaml config")
    parser.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=0,
                        help="accepted for torch.distributed.launch; torchrun's LOCAL_RANK is what is used")
    parser.add_argument("--skip-test", dest="skip_test", action="store_true",
                        help="do not test the final model on DATASETS.TEST")
    parser.add_argument("opts", nargs="*", default=[], help="config overrides as KEY VALUE pairs")
    args, unknown = parser.parse_known_args(argv)
    args.opts = [*args.opts, *unknown]  # flags may also follow the overrides
    return args


def setup(cfg) -> tuple[torch.device, bool, logging.Logger]:
    """Device, process group, logger, seeds, and the merged config saved to OUTPUT_DIR/config.yml."""
    device = select_device(cfg.MODEL.DEVICE)
    distributed = init_distributed(device)
    if cfg.OUTPUT_DIR and is_main_process():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with atomic_write(os.path.join(cfg.OUTPUT_DIR, "config.yml"), binary=False) as stream:
            stream.write(cfg.dump())
    logger = setup_logger("rebalance_hca", cfg.OUTPUT_DIR, get_rank())
    logger.info("Running with config:\n%s", cfg.dump())
    seed_everything(cfg.SEED + get_rank())
    return device, distributed, logger


def validator_for(cfg, distributed: bool, device: torch.device, amp_dtype):
    """validator(model) -> mAP@0.5 on DATASETS.VAL (the loader is built once, on first use)."""
    loaders = {}

    def validate(model) -> float:
        if "val" not in loaders:
            loaders["val"] = make_data_loader(cfg, mode="val", is_distributed=distributed)
        return inference_and_map(model, loaders["val"], device, amp_dtype)

    return validate


def train(cfg, device: torch.device, distributed: bool, logger: logging.Logger) -> torch.nn.Module:
    """Build, resume or initialise, and train the detector; returns the (possibly DDP-wrapped) model."""
    model = build_detector(cfg).to(device)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    amp_dtype = amp_dtype_from_config(cfg.DTYPE)
    grad_scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    checkpointer = Checkpointer(model, optimizer, scheduler, grad_scaler, cfg.OUTPUT_DIR,
                                save_to_disk=is_main_process())
    start_iter = checkpointer.resume_or_load(cfg.MODEL.WEIGHT)["iteration"]
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if start_iter >= cfg.SOLVER.MAX_ITER:
        logger.info("Checkpoint iteration %d >= SOLVER.MAX_ITER %d: nothing to train", start_iter,
                    cfg.SOLVER.MAX_ITER)
        return model
    data_loader = make_data_loader(cfg, mode="train", is_distributed=distributed, start_iter=start_iter)
    trainer = Trainer(
        model, data_loader, optimizer, scheduler, device,
        max_iter=cfg.SOLVER.MAX_ITER, start_iter=start_iter, amp_dtype=amp_dtype, grad_scaler=grad_scaler,
        grad_clip_norm=None,  # SGB's detector script does no gradient clipping (SPEC §9.2)
        validator=validator_for(cfg, distributed, device, amp_dtype) if cfg.SOLVER.TO_VAL else None,
        val_period=cfg.SOLVER.VAL_PERIOD, pre_validate=cfg.SOLVER.PRE_VAL,
        hooks=[CheckpointHook(checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD),
               LoggingHook(LOG_PERIOD, tensorboard_dir=cfg.OUTPUT_DIR)],
    )
    trainer.train()
    return model


def test(cfg, model: torch.nn.Module, device: torch.device, distributed: bool) -> dict[str, float]:
    """mAP@0.5 on DATASETS.TEST, written to OUTPUT_DIR/inference/<dataset>/detection_map.json."""
    name = dataset_name(cfg, "test")
    output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", name) if cfg.OUTPUT_DIR else ""
    loader = make_data_loader(cfg, mode="test", is_distributed=distributed)
    result = {name: inference_and_map(model, loader, device, amp_dtype_from_config(cfg.DTYPE), output_folder)}
    synchronize()
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train (and test unless --skip-test); returns {test dataset name: mAP@0.5} ({} with --skip-test)."""
    args = parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    if cfg.MODEL.RELATION_ON:
        raise ValueError("detector pretraining needs MODEL.RELATION_ON False (every image with boxes is used); "
                         "pass MODEL.RELATION_ON False")
    device, distributed, logger = setup(cfg)
    try:
        model = train(cfg, device, distributed, logger)
        return {} if args.skip_test else test(cfg, model, device, distributed)
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main()
