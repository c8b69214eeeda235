"""Relation-head speed on this machine's CPU (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_relation_head.py --part context --images 8 --objects 25 --hidden 768 \
        --in-channels 4096 --obj-layers 4 --rel-layers 2 --repeat 5
    .venv/bin/python benchmarks/bench_relation_head.py --part step ...   (same arguments)
    .venv/bin/python benchmarks/bench_relation_head.py --part context --context motifs|vctree|imp --mode sgcls \
        --images 8 --objects 25 --hidden 512 --in-channels 4096 --obj-layers 1 --rel-layers 1 --repeat 5

--part context: the hybrid co-attention context alone, one train-mode forward + backward (PredCls inputs,
random weights). It is timed batched (this project: padded images, one attention call per cell) and
per image (the same cells called once per image, the way RB's SHA_Context loops), and this machine's fp32
matmul throughput is measured in the same run (2048^3 products, best of the repeats, before and after), so
the fraction of the matmul peak each reaches is comparable however loaded the machine is.
--part step: one PredCls training step of the whole relation head (box features, union features with
--pairs-per-image sampled pairs, context, classifier, reweighting loss, backward) on random FPN features of
a 600x1000 image, with the share of each part (each part's forward + backward timed on its own).
--context motifs: SGB's Motifs context (LSTMContext) instead of HCA, in --mode, timed beside SGB's way of
computing it (benchmarks/context_motifs.py), training and testing.
--context vctree: SGB's VCTree context instead of HCA, in --mode, level-batched beside SGB's way of computing
it, one image and one tree node at a time (benchmarks/context_vctree.py), training and testing.
--context imp: SGB's IMP context (SGCls, --pairs-per-image sampled pairs in training, all pairs at test time)
beside SGB's way of computing it, dense incidence-matrix products (benchmarks/context_imp.py).
The last line printed is one JSON object: seconds_per_step (median), peak_rss_mb, gflop,
fraction_of_matmul_peak (and, for context, the per-image figures).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time

import torch

from rebalance_hca.modeling.relation_head.context import (AttentionOptions, ContextInputs, HybridCoAttentionContext,
                                                          ObjectContext)
from rebalance_hca.modeling.relation_head.features import BoxFeatureExtractor, UnionFeatureExtractor
from rebalance_hca.modeling.relation_head.loss import PredicateReweightingLoss
from rebalance_hca.modeling.relation_head.predictors import ContextPredictor, RebalanceRecipe
from rebalance_hca.modeling.detector.roi_heads import build_fpn_roi_pooler

NUM_CLASSES, NUM_PREDICATES, EMBED_DIM = 151, 51, 200
FPN_CHANNELS, FPN_SCALES = 256, (0.25, 0.125, 0.0625, 0.03125)
IMAGE_SIZE = (600, 1000)
MATMUL_SIZE = 2048


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("context", "step"), default="context")
    parser.add_argument("--context", choices=("hca", "motifs", "vctree", "imp"), default="hca")
    parser.add_argument("--mode", choices=("predcls", "sgcls", "sgdet"), default="sgcls",
                        help="the relation mode of --context motifs and vctree (imp runs sgcls)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--objects", type=int, default=25)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--in-channels", type=int, default=4096)
    parser.add_argument("--obj-layers", type=int, default=4)
    parser.add_argument("--rel-layers", type=int, default=2)
    parser.add_argument("--pairs-per-image", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    return parser.parse_args()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(repeat: int) -> float:
    """Best fp32 matmul throughput of ``repeat`` 2048^3 products, GFLOP/s."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    a @ b
    best = float("inf")
    for _ in range(max(repeat, 3)):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIZE ** 3 / best / 1e9


def median_seconds(step, repeat: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def counted_gflop(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def build_context(args: argparse.Namespace) -> HybridCoAttentionContext:
    return HybridCoAttentionContext("predcls", torch.randn(NUM_CLASSES, EMBED_DIM), args.in_channels, args.hidden,
                                    args.obj_layers, args.rel_layers, AttentionOptions(), nms_threshold=0.5).train()


def context_inputs(args: argparse.Namespace, num_objects: list[int]) -> ContextInputs:
    total = sum(num_objects)
    return ContextInputs(torch.randn(total, args.in_channels), torch.rand(total, 9), num_objects,
                         labels=torch.randint(1, NUM_CLASSES, (total,)))


def bench_context(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    context = build_context(args)
    sizes = [args.objects] * args.images
    batched_inputs = context_inputs(args, sizes)
    per_image_inputs = [context_inputs(args, [args.objects]) for _ in range(args.images)]

    def batched() -> None:
        context(batched_inputs).edge_context.sum().backward()

    def per_image() -> None:
        for inputs in per_image_inputs:
            context(inputs).edge_context.sum().backward()

    peak_before = matmul_gflops(args.repeat)
    gflop = counted_gflop(batched)
    seconds = median_seconds(batched, args.repeat)
    per_image_seconds = median_seconds(per_image, args.repeat)
    peak = max(peak_before, matmul_gflops(args.repeat))
    result = {"seconds_per_step": seconds, "gflop": gflop, "achieved_gflops": gflop / seconds,
              "matmul_peak_gflops": peak, "fraction_of_matmul_peak": gflop / seconds / peak,
              "per_image_seconds_per_step": per_image_seconds,
              "per_image_fraction_of_matmul_peak": gflop / per_image_seconds / peak}
    print(f"HCA context, train forward + backward, {args.images} images x {args.objects} objects, d {args.hidden}, "
          f"in {args.in_channels}, {args.obj_layers}+{args.rel_layers} layers: {gflop:.1f} GFLOP")
    print(f"  batched:   {seconds:.3f} s/step, {gflop / seconds:.0f} GFLOP/s, "
          f"{result['fraction_of_matmul_peak']:.0%} of the fp32 matmul peak ({peak:.0f} GFLOP/s)")
    print(f"  per image: {per_image_seconds:.3f} s/step, {gflop / per_image_seconds:.0f} GFLOP/s, "
          f"{result['per_image_fraction_of_matmul_peak']:.0%} of the peak")
    return result


def random_boxes(count: int, generator: torch.Generator) -> torch.Tensor:
    height, width = IMAGE_SIZE
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
    size = 16 + torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.3, height * 0.3])
    return torch.cat([corner, corner + size], dim=1)


def bench_step(args: argparse.Namespace) -> dict:
    """One PredCls training step of the relation head, with per-part shares."""
    from torchvision.models.detection.faster_rcnn import TwoMLPHead

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    pooler = build_fpn_roi_pooler(["0", "1", "2", "3"], 7, 2, FPN_SCALES)
    box_head = TwoMLPHead(FPN_CHANNELS * 49, args.in_channels)
    box_features = BoxFeatureExtractor(pooler, box_head)
    union_features = UnionFeatureExtractor(pooler, box_head, FPN_CHANNELS)
    predictor = ContextPredictor(build_context(args), args.hidden, args.in_channels, args.in_channels,
                                 NUM_PREDICATES, torch.randn(NUM_CLASSES, NUM_CLASSES, NUM_PREDICATES), 0.3,
                                 recipe=RebalanceRecipe()).train()
    loss_function = PredicateReweightingLoss(None)
    features = {str(level): torch.randn(args.images, FPN_CHANNELS, IMAGE_SIZE[0] // 2 ** (level + 2),
                                        IMAGE_SIZE[1] // 2 ** (level + 2)) for level in range(4)}
    sizes = [IMAGE_SIZE] * args.images
    boxes = [random_boxes(args.objects, generator) for _ in range(args.images)]
    all_pairs = torch.cartesian_prod(torch.arange(args.objects), torch.arange(args.objects))
    all_pairs = all_pairs[all_pairs[:, 0] != all_pairs[:, 1]]
    pairs = [all_pairs[torch.randperm(len(all_pairs), generator=generator)[:args.pairs_per_image]]
             for _ in range(args.images)]
    offsets = [index * args.objects for index in range(args.images)]
    flat_pairs = torch.cat([p + offset for p, offset in zip(pairs, offsets)])
    labels = torch.randint(1, NUM_CLASSES, (args.images * args.objects,))
    pair_labels = torch.randint(0, NUM_PREDICATES, (len(flat_pairs),))

    def context_of(roi_features: torch.Tensor) -> ObjectContext:
        return predictor.object_context(ContextInputs(roi_features, torch.rand(len(roi_features), 9),
                                                      [args.objects] * args.images, labels=labels))

    def full_step() -> None:
        roi = box_features(features, boxes, sizes)
        logits = predictor.relation_logits(context_of(roi), flat_pairs, union_features(features, boxes, pairs, sizes))
        loss_function(logits, pair_labels).backward()

    roi_fixed = box_features(features, boxes, sizes).detach()
    union_fixed = union_features(features, boxes, pairs, sizes).detach()
    context_fixed = context_of(roi_fixed)
    context_fixed = ObjectContext(context_fixed.object_logits.detach(), context_fixed.object_labels,
                                  context_fixed.edge_context.detach().requires_grad_(True))
    logits_fixed = predictor.relation_logits(context_fixed, flat_pairs, union_fixed).detach().requires_grad_(True)
    parts = {
        "box features": lambda: box_features(features, boxes, sizes).sum().backward(),
        "union features": lambda: union_features(features, boxes, pairs, sizes).sum().backward(),
        "context": lambda: context_of(roi_fixed).edge_context.sum().backward(),
        "classifier": lambda: predictor.relation_logits(context_fixed, flat_pairs, union_fixed).sum().backward(),
        "loss": lambda: loss_function(logits_fixed, pair_labels).backward(),
    }
    peak_before = matmul_gflops(args.repeat)
    gflop = counted_gflop(full_step)
    seconds = median_seconds(full_step, args.repeat)
    part_seconds = {name: median_seconds(step, args.repeat) for name, step in parts.items()}
    peak = max(peak_before, matmul_gflops(args.repeat))
    total_parts = sum(part_seconds.values())
    print(f"PredCls training step of the relation head: {args.images} images x {args.objects} objects, "
          f"{args.pairs_per_image} pairs per image, d {args.hidden}, D {args.in_channels}, 600x1000 FPN features: "
          f"{seconds:.2f} s/step, {gflop:.0f} GFLOP, {gflop / seconds / peak:.0%} of the fp32 matmul peak "
          f"({peak:.0f} GFLOP/s)")
    for name, value in part_seconds.items():
        print(f"  {name:15s} {value:7.3f} s  {value / total_parts:5.1%}")
    return {"seconds_per_step": seconds, "gflop": gflop, "matmul_peak_gflops": peak,
            "fraction_of_matmul_peak": gflop / seconds / peak,
            "part_seconds": part_seconds, "part_shares": {k: v / total_parts for k, v in part_seconds.items()}}


def main() -> None:
    args = parse_args()
    if args.part == "step":
        result = bench_step(args)
    elif args.context == "motifs":
        from context_motifs import bench_motifs_context

        result = bench_motifs_context(args, counted_gflop, matmul_gflops)
    elif args.context == "vctree":
        from context_vctree import bench_vctree_context

        result = bench_vctree_context(args, counted_gflop, matmul_gflops)
    elif args.context == "imp":
        from context_imp import bench_imp_context

        result = bench_imp_context(args, counted_gflop, matmul_gflops)
    else:
        result = bench_context(args)
    result.update(part=args.part, context=args.context, peak_rss_mb=peak_rss_mb(), threads=torch.get_num_threads(),
                  machine=f"{platform.machine()} {os.cpu_count()} cores", torch=torch.__version__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
