"""Importing an SGB checkpoint of SGB's VG detector size (a benchmark, not a test).

Builds the VG150 detector (configs/vg150/e2e_relation_detector_X_101_32_8_FPN_1x.yaml: ResNeXt-101 32x8d
FPN, 151 classes, MLP 4096, random weights), writes its weights as SGB's multi-GPU apex run would save them
(SGB key names, ``module.`` prefix, float16 FrozenBatchNorm buffers, cell anchors, legacy serialisation,
no optimizer) and reports the key counts and the time of

* ``torch.load`` of the SGB file alone (the floor),
* ``load_model_weights(detector, sgb_file)``: read + recognise + map + check + load,
* ``load_model_weights(detector, converted_file)`` of our format (the baseline),
* ``checkpoint_box_convention`` on both files (the peek that MODEL.BOX_CONVENTION "" makes).

    .venv/bin/python benchmarks/bench_sgb_import.py [--conv-body R-50-FPN] [--repeats 3]

The last line is one JSON object. Needs about 4x the model's size in memory (≈ 2.6 GB for X-101).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rebalance_hca.config import load_config  # noqa: E402
from rebalance_hca.modeling.sgb_checkpoint import ours_to_sgb  # noqa: E402
from rebalance_hca.modeling.weights import checkpoint_box_convention, load_model_weights  # noqa: E402
from rebalance_hca.modeling.detector import build_detector  # noqa: E402

CONFIG = os.path.join(ROOT, "configs/vg150/e2e_relation_detector_X_101_32_8_FPN_1x.yaml")


def sgb_file_of(detector, path: str) -> int:
    """Write ``detector``'s weights as SGB's 4-GPU apex run saves them; returns the number of keys."""
    state = {}
    for name, tensor in detector.state_dict().items():
        frozen_norm = name.startswith("backbone.body.") and name.rsplit(".", 1)[-1] in (
            "weight", "bias", "running_mean", "running_var") and tensor.dim() == 1
        state[f"module.{ours_to_sgb(name)}"] = tensor.half() if frozen_norm else tensor
    for level, anchors in enumerate(detector.rpn.anchor_generator.inclusive_cell_anchors()):
        state[f"module.rpn.anchor_generator.cell_anchors.{level}"] = anchors
    torch.save({"model": state, "iteration": 50000}, path, _use_new_zipfile_serialization=False)
    return len(state)


def timed(function, repeats: int) -> float:
    """Median wall time of ``function()`` in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conv-body", default="", help="e.g. R-50-FPN (NUM_GROUPS 1, WIDTH 64) instead of X-101")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    opts = ["MODEL.DEVICE", "cpu", "MODEL.BOX_CONVENTION", "sgb"]
    if args.conv_body:
        opts += ["MODEL.BACKBONE.CONV_BODY", args.conv_body, "MODEL.RESNETS.NUM_GROUPS", "1",
                 "MODEL.RESNETS.WIDTH_PER_GROUP", "64"]
    detector = build_detector(load_config(CONFIG, opts))
    with tempfile.TemporaryDirectory() as folder:
        sgb_path, ours_path = os.path.join(folder, "sgb.pth"), os.path.join(folder, "ours.pth")
        sgb_keys = sgb_file_of(detector, sgb_path)
        torch.save({"model": detector.state_dict(), "box_convention": "sgb"}, ours_path)
        results = {
            "conv_body": args.conv_body or "X-101-32x8d-FPN",
            "sgb_keys": sgb_keys,
            "project_keys": len(detector.state_dict()),
            "values_millions": round(sum(t.numel() for t in detector.state_dict().values()) / 1e6, 1),
            "sgb_file_mib": round(os.path.getsize(sgb_path) / 2 ** 20, 1),
            "torch_load_sgb_s": timed(lambda: torch.load(sgb_path, map_location="cpu", weights_only=True),
                                      args.repeats),
            "import_sgb_s": timed(lambda: load_model_weights(detector, sgb_path), args.repeats),
            "load_ours_s": timed(lambda: load_model_weights(detector, ours_path), args.repeats),
            "peek_sgb_legacy_s": timed(lambda: checkpoint_box_convention(sgb_path), args.repeats),
            "peek_ours_zip_s": timed(lambda: checkpoint_box_convention(ours_path), args.repeats),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads",
        }
    for key, value in results.items():
        print(f"{key:>20}: {value:.3f}" if isinstance(value, float) else f"{key:>20}: {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
