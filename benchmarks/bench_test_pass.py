"""The cost of batch-invariant testing: the test pass's model time per image, one image at a time
(TEST.BATCH_INVARIANT True, the default) against one forward per padded batch (False), in the same run
(a benchmark, not a test).

    .venv/bin/python benchmarks/bench_test_pass.py [--data-dir datasets/synthvg] [--images 16] [--repeats 3]
        [--modes predcls sgdet] [--config configs/synthetic/relation_HCA_R18_FPN.yaml] [KEY VALUE ...]

Loads the first --images images of the test split in batches of TEST.IMS_PER_BATCH (the config's; a KEY VALUE
pair changes it) once, so data loading is not timed, then times the model over those batches both ways,
alternating which goes first, --repeats times; a model built with seed 0 (untrained: the time does not depend
on the weights, SGDet's detections per image aside). Without --data-dir a 60-image SynthVG is generated in a
temporary folder. The rest of a test pass (loading, compaction, evaluation) is the same both ways, so the
ratio printed is an upper bound of the cost on the whole pass. The last line is one JSON object.

On a GPU: MODEL.DEVICE cuda. At VG150 scale on SynthVG images: --config
configs/vg150/e2e_relation_X_101_32_8_FPN_1x_hca.yaml MODEL.PRETRAINED_DETECTOR_CKPT "" MODEL.ROI_BOX_HEAD.NUM_CLASSES
23 MODEL.ROI_RELATION_HEAD.NUM_CLASSES 22 (SynthVG's vocabulary; images resized to 600 x 1000 as VG's are).
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
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg
from rebalance_hca.engine.batch_invariance import predict_batch
from rebalance_hca.engine.trainer import move_batch_to_device
from rebalance_hca.modeling import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("predcls", "sgdet")  # GT boxes and labels, or detections: USE_GT_BOX = USE_GT_OBJECT_LABEL = (mode == predcls)
GENERATED_IMAGES = 60
GENERATED_VAL_IMAGES = 10  # of the generated SynthVG's 42 train-pool images (the config's may ask for more)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml"))
    parser.add_argument("--data-dir", default="", help="a SynthVG (or VG150) data root; default: generate one")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("opts", nargs="*", default=[])
    return parser.parse_args()


def time_pass(model: torch.nn.Module, batches: list, batch_invariant: bool, size_divisible: int,
              device: torch.device) -> float:
    """Seconds of the model over every batch, one image at a time or one forward per padded batch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        for images, targets in batches:
            predict_batch(model, images, targets, batch_invariant, size_divisible)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure_mode(args: argparse.Namespace, data_opts: list[str], output: str, mode: str) -> dict:
    """Median seconds per image of each path over ``args.repeats`` alternated passes, for ``mode``."""
    ground_truth = str(mode == "predcls")
    cfg = load_config(args.config, [
        *data_opts, "OUTPUT_DIR", output,
        "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", ground_truth, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", ground_truth,
        "MODEL.WEIGHT", "", *args.opts])
    device = torch.device(cfg.MODEL.DEVICE)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    loader = make_data_loader(cfg, mode="test")
    batches, loaded = [], 0
    for images, targets, _ in loader:
        if loaded >= args.images:
            break
        batches.append(move_batch_to_device(images, targets, device))
        loaded += len(targets)
    size_divisible = loader.collate_fn.size_divisible
    time_pass(model, batches[:1], True, size_divisible, device)  # warm-up (allocator, kernels)
    seconds = {True: [], False: []}
    for repeat in range(args.repeats):
        for batch_invariant in ((True, False) if repeat % 2 == 0 else (False, True)):
            seconds[batch_invariant].append(time_pass(model, batches, batch_invariant, size_divisible, device)
                                            / loaded)
    per_image, batched = statistics.median(seconds[True]), statistics.median(seconds[False])
    return {"images": loaded, "ims_per_batch": cfg.TEST.IMS_PER_BATCH, "device": str(device),
            "per_image_seconds_per_image": per_image, "padded_batch_seconds_per_image": batched,
            "per_image_over_padded_batch": per_image / batched}


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as output:
        data_dir = args.data_dir or os.path.join(output, "synthvg")
        data_opts = ["DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg")]
        if not args.data_dir:
            write_synthvg(data_dir, SynthVGOptions(num_images=GENERATED_IMAGES, seed=0))
            data_opts += ["DATASETS.NUM_VAL_IM", str(GENERATED_VAL_IMAGES)]
        results = {mode: measure_mode(args, data_opts, output, mode) for mode in args.modes}
    for mode, figures in results.items():
        print(f"{mode}: {figures['images']} test images in batches of {figures['ims_per_batch']} on "
              f"{figures['device']}, median of {args.repeats}: one image at a time "
              f"{figures['per_image_seconds_per_image']:.3f} s/image, padded batches "
              f"{figures['padded_batch_seconds_per_image']:.3f} s/image "
              f"({figures['per_image_over_padded_batch'] - 1:+.0%})")
    print(json.dumps({**results, "threads": torch.get_num_threads(),
                      "machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__}))


if __name__ == "__main__":
    main()
