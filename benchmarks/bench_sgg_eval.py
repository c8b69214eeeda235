"""Benchmark: SGGEvaluator vs the SGB-style per-pair loop reference on VG-test-like inputs.

Inputs (seeded): ~11 GT objects and 6 GT relations per image, 150 object classes, 51 predicates.
PredCls ranks all ordered GT pairs (~110); SGDet has 80 detections (jittered copies of GT boxes, 60%
with the right class) and all 6,320 ordered pairs. Relation scores are a softmax of noisy logits in
which the GT predicate of a pair's source objects gets a boost; pairs are ranked by obj_s * obj_o *
max foreground probability, as SGB's post-processor does.

Prints ms/image for both implementations (add every image, then summarize; best of several runs, so
that other load on the machine inflates the figures less), the speed-up and whether every metric agrees
to 1e-9. Not a test: run it by hand,

    python benchmarks/bench_sgg_eval.py [--images 300] [--reference-images 60] [--repeats 5]
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from eval_common import agree, random_groundtruth, ranked_prediction, run  # noqa: E402
from rebalance_hca.evaluation import SGGEvaluator  # noqa: E402
from sgg_loop_reference import LoopReferenceEvaluator  # noqa: E402

NUM_CLASSES, NUM_PREDICATES = 151, 51


def make_image(rng: np.random.Generator, mode: str) -> tuple[dict, dict]:
    """One VG-test-like (groundtruth, prediction) pair."""
    groundtruth = random_groundtruth(rng, num_objects=(8, 15), num_relations=(3, 10), extent=500, box_size=(10, 300),
                                     num_classes=NUM_CLASSES, num_predicates=NUM_PREDICATES)
    gt_boxes, gt_labels, relations = groundtruth["boxes"], groundtruth["labels"], groundtruth["relations"]
    num_objects = len(gt_boxes)
    if mode == "predcls":
        source = np.arange(num_objects)
        boxes, labels, scores = gt_boxes, gt_labels, np.ones(num_objects, dtype=np.float32)
    else:
        source = rng.integers(0, num_objects, 80)
        boxes = (gt_boxes[source] + rng.normal(0, 8, (80, 4))).astype(np.float32)
        labels = np.where(rng.random(80) < 0.6, gt_labels[source], rng.integers(1, NUM_CLASSES, 80))
        scores = rng.random(80).astype(np.float32)
    prediction = ranked_prediction(rng, boxes, labels, scores, source, relations, NUM_PREDICATES)
    return groundtruth, prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="images timed for SGGEvaluator")
    parser.add_argument("--reference-images", type=int, default=60, help="images timed for the loop reference")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs; the best is reported (the reference gets half as many)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    zeroshot = np.random.default_rng(1).integers(1, [NUM_CLASSES, NUM_CLASSES, NUM_PREDICATES], (6000, 3))
    for mode in ("predcls", "sgdet"):
        rng = np.random.default_rng(0)
        images = [make_image(rng, mode) for _ in range(max(args.images, args.reference_images))]
        fast_ms, _ = run(lambda: SGGEvaluator(mode, zeroshot_triplets=zeroshot), images[:args.images], args.repeats)
        subset = images[:args.reference_images]
        reference_ms, reference = run(lambda: LoopReferenceEvaluator(mode, zeroshot_triplets=zeroshot), subset,
                                      max(1, args.repeats // 2))
        _, fast_on_subset = run(lambda: SGGEvaluator(mode, zeroshot_triplets=zeroshot), subset, 1)
        same = agree(fast_on_subset, reference, atol=1e-9)
        print(f"{mode:8s} SGGEvaluator {fast_ms:7.3f} ms/image | SGB-style loop reference {reference_ms:8.2f} ms/image"
              f" | speed-up {reference_ms / fast_ms:6.1f}x | same numbers (1e-9): {same}"
              f" | R@100 {fast_on_subset['R@100']:.4f} mR@100 {fast_on_subset['mR@100']:.4f}"
              f" ng-R@100 {fast_on_subset['ng-R@100']:.4f}"
              + (f" zR@100 {fast_on_subset['zR@100']:.4f}" if not math.isnan(fast_on_subset['zR@100']) else ""))


if __name__ == "__main__":
    main()
