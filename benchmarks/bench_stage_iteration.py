"""Stage-1 and stage-2 training-iteration times on the same batches, stage 2 with and without the feature
cache, and the cost of filling the cache (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_stage_iteration.py [--data-dir datasets/synthvg] [--iterations 20]
        [--rounds 2] [--config configs/synthetic/relation_HCA_R18_FPN.yaml] [KEY VALUE ...]

Loads --iterations training batches once (so data loading is not timed), runs one untimed pass of each kind
of forward over them (the math libraries prepare their kernels for each new input shape, which costs
seconds per shape and would fall on whichever pass meets a shape first), then, --rounds times, times on
those batches
  * stage 1: a full training step (forward, backward, SGD step with clipping);
  * stage 2 as before the cache: the frozen part (in eval mode, without autograd) runs on the whole batch;
  * stage 2 image by image without the cache (STAGE2.FEATURE_CACHE False): each image's classifier inputs
    computed alone, for every pair the sampler can draw;
  * the cache pass: the same, each image view's inputs also written to an empty cache (the first epoch of a
    cached run that nothing filled before);
  * stage 2 over the cache (every later epoch): each image's inputs read from the cache;
  * the confusion-matrix pass of the stage-1 model (test-time forward, image by image) without the cache
    and filling an empty one, and stage 2 then reading what that pass filled (the reuse: the confusion
    pass is the cache pass of the unflipped views).
Prints the median seconds per iteration of each (every iteration of every round), each pass's total (the
median over the rounds) against one pass of the batched and of the per-image stage 2, and the cache's
size; the last line is one JSON object.
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
from collections import defaultdict

import torch

from rebalance_hca.config import load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.engine.batch_invariance import predict_batch
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
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (after one untimed warm-up pass)")
    parser.add_argument("opts", nargs="*", default=[])
    return parser.parse_args()


def time_steps(model: torch.nn.Module, cfg, batches) -> list[float]:
    """Seconds of each training step over ``batches``."""
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


@torch.no_grad()
def time_eval(model: torch.nn.Module, size_divisible: int, batches) -> list[float]:
    """Seconds of the test-time forward (image by image, as TEST.BATCH_INVARIANT runs it) of each batch."""
    model.eval()
    times = []
    for images, targets in batches:
        start = time.perf_counter()
        predict_batch(model, images, targets, True, size_divisible)
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
        freeze_for_stage2(stage2)
        size_divisible = stage2_cfg.DATALOADER.SIZE_DIVISIBILITY
        loader = make_data_loader(stage1_cfg, mode="train")
        batches = [(images, targets) for (images, targets, _), _ in zip(loader, range(args.iterations))]

        def new_cache(name: str) -> ClassifierInputCache:
            cache = ClassifierInputCache(os.path.join(output, name), stage2_cache_key(stage2_cfg, stage2, "train"))
            cache.open()
            return cache

        def stage2_steps(source: Stage2InputSource | None) -> list[float]:
            stage2.stage2_inputs = source
            return time_steps(stage2, stage2_cfg, batches)

        def confusion_pass(source: Stage2InputSource | None) -> list[float]:
            stage1.stage2_inputs = source
            return time_eval(stage1, size_divisible, batches)

        time_steps(stage1, stage1_cfg, batches)
        stage2_steps(Stage2InputSource(stage2, size_divisible))
        confusion_pass(None)
        seconds, totals, reuse_hits = defaultdict(list), defaultdict(list), []
        for round_index in range(args.rounds):
            cache, filled_by_confusion = new_cache(f"cache{round_index}"), new_cache(f"confusion{round_index}")
            passes = [("stage1", lambda: time_steps(stage1, stage1_cfg, batches)),
                      ("stage2_batched", lambda: stage2_steps(None)),
                      ("stage2_per_image_uncached", lambda: stage2_steps(Stage2InputSource(stage2, size_divisible))),
                      ("cache_pass", lambda: stage2_steps(Stage2InputSource(stage2, size_divisible, cache))),
                      ("stage2_cached", lambda: stage2_steps(Stage2InputSource(stage2, size_divisible, cache))),
                      ("confusion_pass", lambda: confusion_pass(None)),
                      ("confusion_pass_filling_cache",
                       lambda: confusion_pass(Stage2InputSource(stage1, size_divisible, filled_by_confusion))),
                      ("stage2_over_confusion_filled_cache",
                       lambda: stage2_steps(Stage2InputSource(stage2, size_divisible, filled_by_confusion)))]
            for name, run in passes:
                times = run()
                seconds[name].extend(times)
                totals[name].append(sum(times))
            reuse_hits.append(stage2.stage2_inputs.hits)
        sizes = entry_sizes(cache.folder)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    total = {name: statistics.median(values) for name, values in totals.items()}
    print(f"{stage1_cfg.SOLVER.IMS_PER_BATCH} images per iteration, {args.iterations} iterations x {args.rounds} "
          f"rounds on the same batches after an untimed warm-up pass, median seconds per iteration:")
    for name, value in median.items():
        print(f"  {name:36s} {value:.4f}  ({median['stage1'] / value:.1f}x faster than stage 1)")
    ratios = {name: {base: total[name] / total[base] for base in ("stage2_batched", "stage2_per_image_uncached")}
              for name in ("cache_pass", "confusion_pass_filling_cache")}
    for name, ratio in ratios.items():
        print(f"{name} over the {args.iterations} batches: {total[name]:.2f} s = {ratio['stage2_batched']:.2f}x one "
              f"pass of the batched stage 2 ({total['stage2_batched']:.2f} s), "
              f"{ratio['stage2_per_image_uncached']:.2f}x one of the per-image uncached stage 2 "
              f"({total['stage2_per_image_uncached']:.2f} s)")
    print(f"filling the cache in the confusion-matrix pass costs {total['confusion_pass_filling_cache']:.2f} s "
          f"against {total['confusion_pass']:.2f} s without "
          f"({total['confusion_pass_filling_cache'] / total['confusion_pass']:.2f}x); stage 2 then read "
          f"{min(reuse_hits)} of {args.iterations * stage1_cfg.SOLVER.IMS_PER_BATCH} views from it")
    print(f"cache: {len(sizes)} image views, {sum(sizes) / len(sizes) / 1e6:.3f} MB each on average")
    print(json.dumps({**{f"{name}_seconds_per_iteration": value for name, value in median.items()},
                      **{f"{name}_pass_seconds": value for name, value in total.items()},
                      "cached_speedup_over_stage1": median["stage1"] / median["stage2_cached"],
                      "cache_pass_over_batched_stage2_pass": ratios["cache_pass"]["stage2_batched"],
                      "cache_pass_over_per_image_stage2_pass": ratios["cache_pass"]["stage2_per_image_uncached"],
                      "confusion_fill_over_batched_stage2_pass":
                          ratios["confusion_pass_filling_cache"]["stage2_batched"],
                      "confusion_fill_over_confusion_pass":
                          total["confusion_pass_filling_cache"] / total["confusion_pass"],
                      "stage2_hits_after_confusion_pass": min(reuse_hits),
                      "cache_views": len(sizes), "cache_bytes_per_view": sum(sizes) / len(sizes),
                      "images_per_iteration": stage1_cfg.SOLVER.IMS_PER_BATCH, "iterations": args.iterations,
                      "rounds": args.rounds, "threads": torch.get_num_threads(),
                      "machine": f"{platform.machine()} {os.cpu_count()} cores",
                      "load_average_1min": os.getloadavg()[0], "torch": torch.__version__}))


if __name__ == "__main__":
    main()
