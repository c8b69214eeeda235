"""The IMP context's part of benchmarks/bench_relation_head.py (``--part context --context imp``).

Our ``IMPContext`` (random weights; VG150's dimensions when given on the command line: D = --in-channels,
Pd = 4096 union width, h = 512 and 3 rounds as SGB hard-codes them) is timed beside a reference that computes
the same function with the same weights the way SGB's model_msg_passing.py does: it builds dense (N, R)
subject-to-pair and object-to-pair incidence matrices with a Python loop over the images, and gathers each
object's messages with two dense (N, R) @ (R, h) products per round; ours sums them with ``index_add_``.
Both run the whole batch at once, in training and at test time (SGB's IMP has no per-image test path).
* training: one train-mode forward + backward of the batch, --pairs-per-image sampled pairs per image;
* testing: one eval-mode forward of the batch over every ordered pair of each image (N_b (N_b - 1)).
The four timings are taken in interleaved rounds (medians); the largest relative difference of the pair and
object states is printed (the two sums add the same terms in another order).
"""
from __future__ import annotations

import argparse
import types

import torch

from rebalance_hca.modeling.relation_head.context import ContextInputs
from rebalance_hca.modeling.relation_head.context.imp import IMPContext, PairContext

from timing_common import interleaved_medians

UNION_CHANNELS = 4096


def sgb_style_forward(context: IMPContext, inputs: ContextInputs) -> PairContext:
    """``IMPContext.forward`` as SGB's loop computes it: dense incidence matrices built image by image, the
    object messages as (N, R) @ (R, h) products."""
    node_input = context.obj_unary(inputs.roi_features)
    edge_input = torch.relu(context.edge_unary(inputs.union_features))
    num_objects, num_pairs = node_input.shape[0], edge_input.shape[0]
    subject_to_pair = torch.zeros(num_objects, num_pairs)
    object_to_pair = torch.zeros(num_objects, num_pairs)
    image_of_object = torch.repeat_interleave(torch.arange(len(inputs.num_objects)),
                                              torch.tensor(inputs.num_objects))
    image_of_pair = image_of_object[inputs.pairs[:, 0]]
    for image in range(len(inputs.num_objects)):
        rows = (image_of_pair == image).nonzero().flatten()
        subject_to_pair[inputs.pairs[rows, 0], rows] = 1.0
        object_to_pair[inputs.pairs[rows, 1], rows] = 1.0
    subjects, objects = inputs.pairs[:, 0], inputs.pairs[:, 1]
    nodes = context.node_gru(node_input, node_input.new_zeros(num_objects, context.hidden_dim))
    edges = context.edge_gru(edge_input, edge_input.new_zeros(num_pairs, context.hidden_dim))
    for _ in range(context.iterations):
        edge_message, outgoing, incoming = context.gated_messages(nodes, edges, subjects, objects)
        node_message = subject_to_pair @ outgoing + object_to_pair @ incoming
        edges = context.edge_gru(edge_message, edges)
        nodes = context.node_gru(node_message, nodes)
    return PairContext(context.obj_fc(nodes), nodes.new_zeros(num_objects, dtype=torch.int64), nodes,
                       pairs=inputs.pairs, pair_states=edges)


def _pairs(num_objects: list[int], per_image: int | None, generator: torch.Generator) -> torch.Tensor:
    """(R, 2) flat (subject, object) indices: every ordered pair of each image, or ``per_image`` of them drawn
    at random (the sampled pairs of a training batch)."""
    pairs, offset = [], 0
    for count in num_objects:
        grid = torch.cartesian_prod(torch.arange(count), torch.arange(count))
        grid = grid[grid[:, 0] != grid[:, 1]]
        if per_image is not None and per_image < len(grid):
            grid = grid[torch.randperm(len(grid), generator=generator)[:per_image]]
        pairs.append(grid + offset)
        offset += count
    return torch.cat(pairs)


def _inputs(args: argparse.Namespace, num_classes: int, per_image: int | None,
            generator: torch.Generator) -> ContextInputs:
    """SGCls-like inputs of ``args.images`` images of ``args.objects`` objects with their pairs' union
    features."""
    num_objects = [args.objects] * args.images
    pairs = _pairs(num_objects, per_image, generator)
    total = sum(num_objects)
    return ContextInputs(torch.randn(total, args.in_channels, generator=generator), torch.rand(total, 9),
                         num_objects, detector_logits=torch.randn(total, num_classes, generator=generator),
                         pairs=pairs, union_features=torch.randn(len(pairs), UNION_CHANNELS, generator=generator))


def _relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).abs().max() / reference.double().abs().max())


def bench_imp_context(args: argparse.Namespace, counted_gflop, matmul_gflops) -> dict:
    """Timings of ours and the reference (training and testing), their agreement and the matmul peak."""
    num_classes = 151
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    context = IMPContext("sgcls", args.in_channels, UNION_CHANNELS, num_classes)
    reference = IMPContext("sgcls", args.in_channels, UNION_CHANNELS, num_classes)
    reference.load_state_dict(context.state_dict())
    reference.forward = types.MethodType(sgb_style_forward, reference)
    train_inputs = _inputs(args, num_classes, args.pairs_per_image, generator)
    test_inputs = _inputs(args, num_classes, None, generator)

    def train_step(module) -> None:
        output = module.train()(train_inputs)
        (output.pair_states.sum() + output.object_logits.sum()).backward()

    def test_step(module) -> PairContext:
        with torch.no_grad():
            return module.eval()(test_inputs)

    ours, theirs = test_step(context), test_step(reference)
    agreement = {"test_max_relative_difference": max(
        _relative_difference(ours.pair_states, theirs.pair_states),
        _relative_difference(ours.edge_context, theirs.edge_context),
        _relative_difference(ours.object_logits, theirs.object_logits))}
    peak_before = matmul_gflops(args.repeat)
    gflop = counted_gflop(lambda: train_step(context))
    seconds, reference_seconds, test_seconds, reference_test_seconds = interleaved_medians(
        [lambda: train_step(context), lambda: train_step(reference), lambda: test_step(context),
         lambda: test_step(reference)], args.repeat)
    peak = max(peak_before, matmul_gflops(args.repeat))
    result = {"seconds_per_step": seconds, "gflop": gflop, "achieved_gflops": gflop / seconds,
              "matmul_peak_gflops": peak, "fraction_of_matmul_peak": gflop / seconds / peak,
              "reference_seconds_per_step": reference_seconds, "test_seconds": test_seconds,
              "reference_test_seconds": reference_test_seconds, "train_pairs": len(train_inputs.pairs),
              "test_pairs": len(test_inputs.pairs), **agreement}
    print(f"IMP context (sgcls), {args.images} images x {args.objects} objects, D {args.in_channels}, "
          f"Pd {UNION_CHANNELS}, h {context.hidden_dim}, {context.iterations} rounds; {len(train_inputs.pairs)} "
          f"train pairs, {len(test_inputs.pairs)} test pairs: {gflop:.1f} GFLOP per train step")
    print(f"  train forward + backward: ours {seconds:.3f} s, SGB's dense incidence products "
          f"{reference_seconds:.3f} s ({reference_seconds / seconds:.2f}x); {result['fraction_of_matmul_peak']:.0%} "
          f"of the fp32 matmul peak ({peak:.0f} GFLOP/s)")
    print(f"  test forward: ours {test_seconds:.3f} s, SGB's {reference_test_seconds:.3f} s "
          f"({reference_test_seconds / test_seconds:.2f}x)")
    print(f"  agreement at test: {agreement['test_max_relative_difference']:.1e} (largest relative difference)")
    return result
