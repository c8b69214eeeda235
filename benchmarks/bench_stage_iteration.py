"""Stage-1 and stage-2 training-iteration times on the same batches, stage 2 with and without the feature
cache (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_stage_iteration.py [--data-dir datasets/synthvg] [--iterations 20]
        [--config configs/synthetic/relation_HCA_R18_FPN.yaml] [KEY VALUE ...]

Loads --iterations training batches once (so data loading is not timed), then times on those batches a full
training step (forward, backward, SGD step with clipping) of
  * stage 1;
  * stage 2 as before the cache: the frozen part (in eval mode, without autograd) runs on the whole batch;
  * stage 2 image by image without the cache (STAGE2.FEATURE_CACHE False): each image's classifier inputs
    computed alone, for every pair the sampler can draw;
  * the cache pass: the same, each image view's inputs also written to an empty cache (the first epoch of a
    cached run);
  * stage 2 over the cache (every later epoch): each image's inputs read from the cache.
Prints the median seconds per iteration of each (the first batch, a warm-up, excluded), the cache pass's
total against one pass of the batched stage 2 over the same batches, and the cache's size; the last line
is one JSON object.
"""
from __future__ import annotations

import argparse
import glob
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
from rebalance_hca.engine.stage2_cache import ENTRY_SUFFIX, ClassifierInputCache, Stage2InputSource, stage2_cache_key
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
    """Seconds of each training step over ``batches`` (the first one included)."""
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
    return times


def entry_sizes(folder: str) -> list[int]:
    """Bytes of each cache entry under ``folder``."""
    return [os.path.getsize(path) for path in glob.glob(os.path.join(folder, "??", f"*{ENTRY_SUFFIX}"))]


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
        trainable = {f"relation_head.{name}" for name in freeze_for_stage2(stage2)}
        cache = ClassifierInputCache(os.path.join(output, "cache"), stage2_cache_key(stage2_cfg, stage2, trainable))
        cache.open()
        size_divisible = stage2_cfg.DATALOADER.SIZE_DIVISIBILITY
        loader = make_data_loader(stage1_cfg, mode="train")
        batches = [(images, targets) for (images, targets, _), _ in zip(loader, range(args.iterations + 1))]
        seconds = {"stage1": time_steps(stage1, stage1_cfg, batches)}
        sources = [("stage2_batched", None), ("stage2_per_image_uncached", Stage2InputSource(stage2, size_divisible)),
                   ("cache_pass", Stage2InputSource(stage2, size_divisible, cache)),
                   ("stage2_cached", Stage2InputSource(stage2, size_divisible, cache))]
        for name, source in sources:
            stage2.stage2_inputs = source
            seconds[name] = time_steps(stage2, stage2_cfg, batches)
        hits, misses = stage2.stage2_inputs.hits, stage2.stage2_inputs.misses
        sizes = entry_sizes(cache.folder)
    median = {name: statistics.median(times[1:]) for name, times in seconds.items()}
    cache_pass_total, batched_pass_total = sum(seconds["cache_pass"][1:]), sum(seconds["stage2_batched"][1:])
    print(f"{stage1_cfg.SOLVER.IMS_PER_BATCH} images per iteration, median of {args.iterations} iterations on the "
          f"same batches (seconds per iteration):")
    for name, value in median.items():
        print(f"  {name:28s} {value:.4f}  ({median['stage1'] / value:.1f}x faster than stage 1)")
    print(f"cache pass over the {args.iterations} batches: {cache_pass_total:.2f} s; one pass of the batched stage 2 "
          f"over them: {batched_pass_total:.2f} s ({cache_pass_total / batched_pass_total:.2f}x)")
    print(f"cache: {len(sizes)} image views, {sum(sizes) / len(sizes) / 1e6:.3f} MB each on average (last pass: "
          f"{hits} hits, {misses} misses)")
    print(json.dumps({**{f"{name}_seconds_per_iteration": value for name, value in median.items()},
                      "cached_speedup_over_stage1": median["stage1"] / median["stage2_cached"],
                      "cache_pass_seconds": cache_pass_total, "batched_stage2_pass_seconds": batched_pass_total,
                      "cache_pass_over_batched_stage2_pass": cache_pass_total / batched_pass_total,
                      "cache_views": len(sizes), "cache_bytes_per_view": sum(sizes) / len(sizes),
                      "cached_pass_hits": hits,
                      "images_per_iteration": stage1_cfg.SOLVER.IMS_PER_BATCH, "iterations": args.iterations,
                      "threads": torch.get_num_threads(),
                      "machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__}))


if __name__ == "__main__":
    main()
