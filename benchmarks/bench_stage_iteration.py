"""Stage-2 against stage-1 training-iteration time on the same batches (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_stage_iteration.py [--data-dir datasets/synthvg] [--iterations 20]
        [--config configs/synthetic/relation_HCA_R18_FPN.yaml] [KEY VALUE ...]

Loads --iterations training batches once (so data loading is not timed), then times, on those batches, a
full training step (forward, backward, SGD step with clipping) of the stage-1 model and of the stage-2 model
built from it (clean classifier trainable, the rest frozen, in eval mode and without autograd). Prints the
median seconds per iteration of each; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

from rebalance_hca.config import load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.engine.stages import freeze_for_stage2, load_stage1_model
from rebalance_hca.modeling import build_model
from rebalance_hca.solver import make_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml"))
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "datasets", "synthvg"))
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("opts", nargs="*", default=[])
    return parser.parse_args()


def time_steps(model: torch.nn.Module, cfg, batches) -> list[float]:
    """Seconds of each training step over ``batches`` (the first, a warm-up, excluded)."""
    optimizer = make_optimizer(cfg, model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    times = []
    for images, targets in batches:
        start = time.perf_counter()
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.SOLVER.GRAD_NORM_CLIP)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as output:
        common = ["DATASETS.DATA_DIR", args.data_dir, "GLOVE_DIR", os.path.join(args.data_dir, "vg"),
                  "OUTPUT_DIR", output, "MODEL.DEVICE", "cpu", *args.opts]
        stage1_cfg = load_config(args.config, common)
        torch.manual_seed(0)
        stage1 = build_model(stage1_cfg)
        path = Checkpointer(stage1, save_dir=output).save("stage1", 0)
        stage2_cfg = load_config(args.config, [*common, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
                                               "MODEL.PRETRAINED_MODEL_CKPT", path])
        stage2 = build_model(stage2_cfg)
        load_stage1_model(stage2, path)
        freeze_for_stage2(stage2)
        loader = make_data_loader(stage1_cfg, mode="train")
        batches = [(images, targets) for (images, targets, _), _ in zip(loader, range(args.iterations + 1))]
        stage1_seconds = statistics.median(time_steps(stage1, stage1_cfg, batches))
        stage2_seconds = statistics.median(time_steps(stage2, stage2_cfg, batches))
    print(f"{stage1_cfg.SOLVER.IMS_PER_BATCH} images per iteration, median of {args.iterations} iterations on the "
          f"same batches: stage 1 {stage1_seconds:.3f} s, stage 2 {stage2_seconds:.3f} s "
          f"({stage2_seconds / stage1_seconds:.0%} of stage 1)")
    print(json.dumps({"stage1_seconds_per_iteration": stage1_seconds, "stage2_seconds_per_iteration": stage2_seconds,
                      "stage2_over_stage1": stage2_seconds / stage1_seconds,
                      "images_per_iteration": stage1_cfg.SOLVER.IMS_PER_BATCH, "threads": torch.get_num_threads(),
                      "machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__}))


if __name__ == "__main__":
    main()
