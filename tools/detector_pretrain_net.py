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
from typing import Sequence

from rebalance_hca.engine import launch
from rebalance_hca.engine.detector_runs import check_detector_config, test_detector, train_detector
from rebalance_hca.utils.cli import run_tool


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Detector pretraining (Faster R-CNN on torchvision)", argv)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train (and test unless --skip-test); returns {test dataset name: mAP@0.5} ({} with --skip-test)."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    check_detector_config(cfg)
    with launch.session(cfg) as (device, distributed, _):
        model = train_detector(cfg, device, distributed)
        return {} if args.skip_test else test_detector(cfg, model, device, distributed)


if __name__ == "__main__":
    run_tool(main)
