"""Benchmark: OIEvaluator vs the PySGG-style per-candidate loop reference on OIv6-test-like SGDet inputs.

Inputs (seeded): 3-9 GT objects and 1-5 GT relations per image (OIv6 averages about 2.7), 601 object
classes, 31 predicates; 23 detections (jittered copies of GT boxes, 70% with the right class) and all
their 506 ordered pairs (PySGG's evaluator was timed at about 52 ms/image with about 500 pairs per image,
docs/reference.md#oi-evaluator-cost).
Relation scores are a softmax of noisy logits in which the GT predicate of a pair's
source objects gets a boost; pairs are ranked by obj_s * obj_o * max foreground probability. Scores are
continuous, so exact ties (ordered differently by PySGG's unstable sorts) do not occur.

Both sides do everything PySGG's ``oi_evaluation`` does for relations: the OI block (candidates, R@K,
relation and phrase AP) and the classic block (R@K, ngR@K, mR@K). Prints ms/image for both (add every
image, then summarize; best of several runs, so that other load on the machine inflates the figures
less), the speed-up and whether every number agrees to 1e-12; the last line is one JSON object. Not a
test: run it by hand,

    python benchmarks/bench_oi_evaluator.py [--images 1000] [--reference-images 100] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from eval_common import agree, random_groundtruth, ranked_prediction, run  # noqa: E402
from rebalance_hca.evaluation import OIEvaluator  # noqa: E402
from oi_loop_reference import OILoopReference  # noqa: E402

NUM_CLASSES, NUM_PREDICATES, NUM_DETECTIONS = 602, 31, 23


def make_image(rng: np.random.Generator) -> tuple[dict, dict]:
    """One OIv6-test-like SGDet (groundtruth, prediction) pair."""
    groundtruth = random_groundtruth(rng, num_objects=(3, 10), num_relations=(1, 6), extent=600, box_size=(20, 400),
                                     num_classes=NUM_CLASSES, num_predicates=NUM_PREDICATES, whole_pixels=True)
    gt_boxes, gt_labels, relations = groundtruth["boxes"], groundtruth["labels"], groundtruth["relations"]
    source = rng.integers(0, len(gt_boxes), NUM_DETECTIONS)
    boxes = (gt_boxes[source] + rng.normal(0, 10, (NUM_DETECTIONS, 4))).astype(np.float32)
    labels = np.where(rng.random(NUM_DETECTIONS) < 0.7, gt_labels[source], rng.integers(1, NUM_CLASSES,
                                                                                          NUM_DETECTIONS))
    scores = rng.uniform(0.05, 1, NUM_DETECTIONS).astype(np.float32)
    prediction = ranked_prediction(rng, boxes, labels, scores, source, relations, NUM_PREDICATES,
                                   rel_scores_dtype=np.float32)
    return groundtruth, prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images timed for OIEvaluator")
    parser.add_argument("--reference-images", type=int, default=100, help="images timed for the loop reference")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    rng = np.random.default_rng(0)
    images = [make_image(rng) for _ in range(max(args.images, args.reference_images))]
    fast_ms, _ = run(lambda: OIEvaluator(num_predicates=NUM_PREDICATES), images[:args.images], args.repeats)
    subset = images[:args.reference_images]
    reference_ms, reference = run(lambda: OILoopReference(num_predicates=NUM_PREDICATES), subset, args.repeats)
    _, fast_on_subset = run(lambda: OIEvaluator(num_predicates=NUM_PREDICATES), subset, 1)
    same = agree(fast_on_subset, reference, atol=1e-12)
    speedup = reference_ms / fast_ms
    print(f"OIEvaluator {fast_ms:.3f} ms/image ({args.images} images) | PySGG-style loop reference "
          f"{reference_ms:.2f} ms/image ({args.reference_images} images) | speed-up {speedup:.1f}x | "
          f"same numbers (1e-12): {same}")
    print(f"on the reference images: R@50 {reference['R@50']:.4f} wmAP_rel {reference['wmAP_rel']:.4f} "
          f"wmAP_phr {reference['wmAP_phr']:.4f} score_wtd {reference['score_wtd']:.4f} mR@50 {reference['mR@50']:.4f}")
    print(f"5,322-image OIv6 test set at these rates: OIEvaluator {fast_ms * 5.322:.1f} s, "
          f"loop reference {reference_ms * 5.322:.0f} s")
    print(json.dumps({"benchmark": "oi_evaluator", "ours_ms_per_image": round(fast_ms, 4),
                      "reference_ms_per_image": round(reference_ms, 3), "speedup": round(speedup, 1),
                      "same_numbers": same, "images": args.images, "reference_images": args.reference_images,
                      "pairs_per_image": NUM_DETECTIONS * (NUM_DETECTIONS - 1)}))


if __name__ == "__main__":
    main()
