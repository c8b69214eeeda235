"""Detector speed and memory on this machine's CPU (a benchmark, not a test).

Prints, per case, the inference forward time per image (median over repeats, batch 1, eval mode, no grad,
random weights) and the process's peak resident memory after it; for the small CPU detector also a
training step (forward + backward + SGD, batch 2) per image and the peak memory after that. Each case
runs in its own process so its peak memory is its own.

    .venv/bin/python benchmarks/bench_detector.py            # all cases
    .venv/bin/python benchmarks/bench_detector.py --case r18 --repeats 5
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = {
    # name: (config file, overrides, (height, width) of the resized image, train step measured)
    "r18": ("configs/synthetic/detector_R18_FPN.yaml", [], None, True),
    "r50": ("configs/vg150/e2e_relation_detector_X_101_32_8_FPN_1x.yaml",
            ["MODEL.BACKBONE.CONV_BODY", "R-50-FPN", "MODEL.RESNETS.NUM_GROUPS", "1",
             "MODEL.RESNETS.WIDTH_PER_GROUP", "64", "MODEL.DEVICE", "cpu"], (600, 1000), False),
}


def _peak_rss_mib() -> float:
    """Peak resident memory of this process so far (imports, model and activations included)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _padded(size: int, divisor: int) -> int:
    return int(math.ceil(size / divisor) * divisor) if divisor else size


def run_case(name: str, repeats: int) -> None:
    import torch
    from torchvision.models.detection.image_list import ImageList

    from rebalance_hca.config import load_config
    from rebalance_hca.modeling.detector import build_detector
    from rebalance_hca.solver import make_optimizer

    imports_rss = _peak_rss_mib()
    config_file, overrides, size, with_training = CASES[name]
    cfg = load_config(os.path.join(ROOT, config_file), overrides)
    if size is None:  # SynthVG: the test-time short side, 4:3 landscape, capped by the long side
        short = cfg.INPUT.MIN_SIZE_TEST
        size = (short, min(int(short * 4 / 3), cfg.INPUT.MAX_SIZE_TEST))
    divisor = cfg.DATALOADER.SIZE_DIVISIBILITY
    padded = (_padded(size[0], divisor), _padded(size[1], divisor))
    torch.manual_seed(0)
    model = build_detector(cfg).eval()
    images = ImageList(torch.randn(1, 3, *padded), [size])
    with torch.no_grad():
        model(images)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    parts = [f"{name}: {cfg.MODEL.BACKBONE.CONV_BODY} input {size[0]}x{size[1]} (padded {padded[0]}x{padded[1]}), "
             f"MLP_HEAD_DIM {cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM}, {cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES} classes "
             f"(peak RSS after the imports alone: {imports_rss:.0f} MiB)",
             f"  inference forward: {statistics.median(times) * 1000:.0f} ms/image (median of {repeats}), "
             f"peak RSS {_peak_rss_mib():.0f} MiB"]
    if with_training:
        model.train()
        optimizer = make_optimizer(cfg, model)
        batch = ImageList(torch.randn(2, 3, *padded), [size, size])
        height, width = size
        box = torch.tensor([[10.0, 10.0, width / 2, height / 2], [width / 3, height / 3, width - 5, height - 5]])
        targets = [{"boxes": box, "labels": torch.tensor([1, 2])} for _ in range(2)]
        step_times = []
        for step in range(repeats + 1):
            start = time.perf_counter()
            loss = sum(model(batch, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step:  # the first step is a warm-up
                step_times.append(time.perf_counter() - start)
        step_ms = statistics.median(step_times) / 2 * 1000
        parts.append(f"  training step (fwd+bwd+SGD, batch 2): {step_ms:.0f} ms/image, "
                     f"peak RSS {_peak_rss_mib():.0f} MiB")
    print("\n".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.repeats)
        return
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name in CASES:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--case", name, "--repeats", str(args.repeats)],
                       check=True)


if __name__ == "__main__":
    main()
