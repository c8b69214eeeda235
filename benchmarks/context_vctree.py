"""The VCTree context's part of benchmarks/bench_relation_head.py (``--part context --context vctree``).

Our ``VCTreeContext`` (random weights; VG150's dimensions when given on the command line) is timed beside
tests/vctree_loop_reference.py, which computes the same function with the same weights the way SGB's code
does: one image at a time, the tree grown with node objects and binarised recursively, every tree LSTM run
recursively one node at a time (each node's input projections on its own row).
* training: one train-mode forward + backward of the batch (edge context, object logits and tree-score
  loss), CONTEXT_DROPOUT_RATE 0 so that both compute the same function in PredCls (in SGCls / SGDet the
  decoder samples the labels it hands on in training, so there the agreement is checked at eval only);
* testing: one eval-mode forward of the batch.
The four timings are taken in interleaved rounds (medians).
Two kinds of trees: "trained" (the tree prior and vision prior drawn so that the scores are informative,
as in a trained model) and "initial" (SGB's saturated prior at initialisation: all scores tie and every
image's binary tree is a chain of N levels, the worst case for level batching).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from rebalance_hca.modeling.relation_head.box_geometry import encode_box_info
from rebalance_hca.modeling.relation_head.context import ContextInputs
from rebalance_hca.modeling.relation_head.context.vctree import VCTreeContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from timing_common import interleaved_medians  # noqa: E402
from vctree_loop_reference import reference_context  # noqa: E402

NUM_CLASSES, NUM_PREDICATES, EMBED_DIM = 151, 51, 200
IMAGE_SIZE = (600, 1000)


def _inputs(args: argparse.Namespace, generator: torch.Generator) -> ContextInputs:
    """``args.images`` images of ``args.objects`` random boxes in a 600 x 1000 image, with random features,
    labels (PredCls) or detector logits, and symmetric relation matrices."""
    height, width = IMAGE_SIZE
    count, total = args.objects, args.images * args.objects
    boxes, adjacency = [], []
    for _ in range(args.images):
        corner = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
        boxes.append(torch.cat([corner, corner + 16 + torch.rand(count, 2, generator=generator) * 300], dim=1))
        related = torch.rand(count, count, generator=generator) < 0.05
        adjacency.append((related | related.T).long())
    predcls = args.mode == "predcls"
    return ContextInputs(torch.randn(total, args.in_channels, generator=generator),
                         torch.cat([encode_box_info(b, IMAGE_SIZE) for b in boxes]), [count] * args.images,
                         labels=torch.randint(1, NUM_CLASSES, (total,), generator=generator) if predcls else None,
                         detector_logits=None if predcls else torch.randn(total, NUM_CLASSES, generator=generator),
                         boxes=torch.cat(boxes), image_sizes=[IMAGE_SIZE] * args.images, relation_adjacency=adjacency)


def _context(args: argparse.Namespace, trees: str, generator: torch.Generator) -> VCTreeContext:
    pred_dist = torch.log_softmax(torch.randn(NUM_CLASSES, NUM_CLASSES, NUM_PREDICATES, generator=generator), dim=2)
    context = VCTreeContext(args.mode, torch.randn(NUM_CLASSES, EMBED_DIM, generator=generator),
                            torch.randn(NUM_CLASSES + 1, EMBED_DIM, generator=generator), pred_dist, args.in_channels,
                            args.hidden, args.obj_layers, args.rel_layers, dropout_rate=0.0)
    if trees == "trained":
        with torch.no_grad():
            context.bi_freq_prior.weight.normal_(0.0, 2.0, generator=generator)
            context.vision_prior.weight.normal_(0.0, 0.5, generator=generator)
    return context


def _relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).abs().max() / reference.double().abs().max())


def _bench_trees(args: argparse.Namespace, trees: str, counted_gflop=None) -> dict:
    """Agreement and timings of ours and the reference on one kind of trees."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    context = _context(args, trees, generator)
    inputs = _inputs(args, generator)
    with torch.no_grad():
        ours, reference = context.eval()(inputs), reference_context(context, inputs)
    agreement = {
        "trees_equal": bool(torch.equal(ours.forest.parent, reference.binary_parents)),
        "labels_equal": bool(torch.equal(ours.object_labels, reference.object_labels)),
        "test_max_relative_difference": max(_relative_difference(ours.edge_context, reference.edge_context),
                                            _relative_difference(ours.object_logits, reference.object_logits)),
        "tree_levels": int(ours.forest.depth.max()) + 1,
    }
    if args.mode == "predcls":
        with torch.no_grad():
            ours, reference = context.train()(inputs), reference_context(context.train(), inputs)
        agreement["train_max_relative_difference"] = _relative_difference(ours.edge_context, reference.edge_context)

    def train_ours() -> None:
        output = context.train()(inputs)
        (output.edge_context.sum() + output.object_logits.sum() + output.binary_loss).backward()

    def train_reference() -> None:
        output = reference_context(context.train(), inputs)
        loss = torch.stack([F.binary_cross_entropy_with_logits(logits, target.float()) for logits, target in
                            zip(output.pair_score_logits, inputs.relation_adjacency)]).mean()
        (output.edge_context.sum() + output.object_logits.sum() + loss).backward()

    def test(function) -> None:
        with torch.no_grad():
            function(context.eval(), inputs)

    timings = dict(zip(("seconds_per_step", "reference_seconds_per_step", "test_seconds", "reference_test_seconds"),
                       interleaved_medians([train_ours, train_reference, lambda: test(VCTreeContext.__call__),
                                            lambda: test(reference_context)], args.repeat)))
    if counted_gflop is not None:
        timings["gflop"] = counted_gflop(train_ours)
    return {**agreement, **timings}


def bench_vctree_context(args: argparse.Namespace, counted_gflop, matmul_gflops) -> dict:
    """Timings of ours and the reference on trained-like and on initial (chain) trees, their agreement, and
    the matmul peak. The top-level figures are the trained-like trees'."""
    peak_before = matmul_gflops(args.repeat)
    trained = _bench_trees(args, "trained", counted_gflop)
    initial = _bench_trees(args, "initial")
    peak = max(peak_before, matmul_gflops(args.repeat))
    seconds, gflop = trained["seconds_per_step"], trained["gflop"]
    result = {**trained, "achieved_gflops": gflop / seconds, "matmul_peak_gflops": peak,
              "fraction_of_matmul_peak": gflop / seconds / peak,
              "speedup": trained["reference_seconds_per_step"] / seconds,
              "initial_trees": {**initial, "speedup": initial["reference_seconds_per_step"] / initial["seconds_per_step"]}}
    print(f"VCTree context ({args.mode}), {args.images} images x {args.objects} objects, H {args.hidden}, "
          f"D {args.in_channels}, {args.obj_layers}+{args.rel_layers} tree-LSTM layers: {gflop:.1f} GFLOP per train "
          f"step; {peak:.0f} GFLOP/s fp32 matmul peak")
    for name, figures in (("trained-like trees", trained), ("initial trees (chains)", initial)):
        print(f"  {name}, {figures['tree_levels']} levels: train forward + backward ours {figures['seconds_per_step']:.3f} s, "
              f"SGB's node-by-node way {figures['reference_seconds_per_step']:.3f} s "
              f"({figures['reference_seconds_per_step'] / figures['seconds_per_step']:.1f}x); test forward ours "
              f"{figures['test_seconds']:.3f} s, SGB's way {figures['reference_test_seconds']:.3f} s "
              f"({figures['reference_test_seconds'] / figures['test_seconds']:.1f}x)")
        print(f"    agreement: trees equal {figures['trees_equal']}, labels equal {figures['labels_equal']}, largest "
              f"relative difference test {figures['test_max_relative_difference']:.1e}"
              + (f", train {figures['train_max_relative_difference']:.1e}" if "train_max_relative_difference" in figures
                 else ""))
    return result
