"""What bit-exact CPU training costs (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_determinism.py [--data-dir datasets/synthvg] [--iterations 20]
        [--rounds 3] [--config configs/synthetic/relation_HCA_R18_FPN.yaml] [KEY VALUE ...]

1. The pair gather of the predictors alone, forward + backward, at VG150's sizes (8 images of 25 objects,
   1024 pairs each, d = 768): advanced indexing ``head[pairs[:, 0]]`` (the code before the fix; its
   backward adds with atomics in thread order) against ``index_select`` (today's; ordered).
2. Stage-1 training steps of the config's model on the same batches (loaded once; data loading is not
   timed): today's model with DETERMINISTIC False; the same with the gather of before the fix (the
   baseline); and with DETERMINISTIC True. The three alternate over --rounds rounds so that a change in the
   machine's load spreads over all of them; each figure is the median of every timed step.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Callable

import torch

from bench_stage_iteration import time_steps
from rebalance_hca.config import load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.predictors import ContextPredictor
from rebalance_hca.utils.determinism import configure_determinism

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VG_IMAGES, VG_OBJECTS, VG_PAIRS, VG_HIDDEN = 8, 25, 1024, 768


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml"))
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "datasets", "synthvg"))
    parser.add_argument("--iterations", type=int, default=20, help="training steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("opts", nargs="*", default=[])
    return parser.parse_args()


def gather_by_advanced_indexing(self: ContextPredictor, edge_context: torch.Tensor,
                                pairs: torch.Tensor) -> torch.Tensor:
    """The pair gather before the fix (the baseline): edge_context (N, d), pairs (R, 2) -> (R, 2d)."""
    head, tail = self.post_emb(edge_context).split(self.hidden_dim, dim=1)
    return torch.cat([head[pairs[:, 0]], tail[pairs[:, 1]]], dim=1)


def time_gathers(repeat: int = 50) -> dict[str, float]:
    """Median seconds of one forward + backward of each gather at VG150's sizes."""
    generator = torch.Generator().manual_seed(0)
    num_objects = VG_IMAGES * VG_OBJECTS
    head = torch.randn(num_objects, VG_HIDDEN, generator=generator).requires_grad_()
    image_of_pair = torch.arange(VG_IMAGES).repeat_interleave(VG_PAIRS)
    subjects = image_of_pair * VG_OBJECTS + torch.randint(0, VG_OBJECTS, (VG_IMAGES * VG_PAIRS,), generator=generator)
    upstream = torch.randn(len(subjects), VG_HIDDEN, generator=generator)
    gathers: dict[str, Callable[[], torch.Tensor]] = {
        "advanced_indexing": lambda: head[subjects], "index_select": lambda: head.index_select(0, subjects)}
    times: dict[str, list[float]] = {name: [] for name in gathers}
    for _ in range(repeat):
        for name, gather in gathers.items():
            head.grad = None
            start = time.perf_counter()
            gather().backward(upstream)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def time_training(cfg, batches, iterations: int, rounds: int) -> dict[str, float]:
    """Median seconds per stage-1 step of each configuration (module docstring), alternating over rounds."""
    fixed_gather = ContextPredictor.pair_representation
    variants = {"today": (fixed_gather, False), "advanced_indexing_baseline": (gather_by_advanced_indexing, False),
                "deterministic_true": (fixed_gather, True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(rounds):
            for name, (gather, deterministic) in variants.items():
                ContextPredictor.pair_representation = gather
                configure_determinism(deterministic)
                torch.manual_seed(0)
                times[name] += time_steps(build_model(cfg), cfg, batches[:iterations + 1])
    finally:
        ContextPredictor.pair_representation = fixed_gather
        configure_determinism(False)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    args = parse_args()
    gathers = time_gathers()
    with tempfile.TemporaryDirectory() as output:
        cfg = load_config(args.config, ["DATASETS.DATA_DIR", args.data_dir, "GLOVE_DIR",
                                        os.path.join(args.data_dir, "vg"), "OUTPUT_DIR", output, "MODEL.DEVICE", "cpu",
                                        *args.opts])
        loader = make_data_loader(cfg, mode="train")
        batches = [(images, targets) for (images, targets, _), _ in zip(loader, range(args.iterations + 1))]
        steps = time_training(cfg, batches, args.iterations, args.rounds)
    print(f"pair gather at VG150's sizes, forward + backward: advanced indexing "
          f"{gathers['advanced_indexing'] * 1e3:.2f} ms, index_select {gathers['index_select'] * 1e3:.2f} ms")
    print(f"stage-1 step ({cfg.SOLVER.IMS_PER_BATCH} images; median of {args.rounds} x {args.iterations}): today "
          f"{steps['today']:.3f} s, with the gather before the fix {steps['advanced_indexing_baseline']:.3f} s "
          f"({steps['today'] / steps['advanced_indexing_baseline'] - 1:+.1%} today), DETERMINISTIC True "
          f"{steps['deterministic_true']:.3f} s ({steps['deterministic_true'] / steps['today'] - 1:+.1%})")
    print(json.dumps({"gather_seconds": gathers, "step_seconds": steps,
                      "images_per_iteration": cfg.SOLVER.IMS_PER_BATCH, "threads": torch.get_num_threads(),
                      "load_average": os.getloadavg(), "machine": f"{platform.machine()} {os.cpu_count()} cores",
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
