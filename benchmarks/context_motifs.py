"""The Motifs context's part of benchmarks/bench_relation_head.py (``--part context --context motifs``).

Our ``LSTMContext`` (random weights, VG150's dimensions by default) is timed beside a reference that computes
the same function the way SGB's code does, with the same weights:
* training (one train-mode forward + backward of a batch): SGB packs the images' sequences into one batch as
  we do, but its decoder concatenates each step's input row with the previous label's embedding and
  multiplies the concatenation by ``input_linearity`` at every step (the reference's decoder does that);
* testing (one eval-mode forward of the same images): SGB tests one image per forward (its decoder asserts a
  single sequence per step), so the reference calls the context once per image with that decoder; ours runs
  the batch at once.
The four timings are taken in interleaved rounds (medians). Training is compared with CONTEXT_DROPOUT_RATE 0 so that both compute exactly the same function; the
outputs' largest relative difference is printed (float rounding of the split input projection).
"""
from __future__ import annotations

import argparse
import types

import torch

from rebalance_hca.modeling.relation_head.box_geometry import encode_box_info
from rebalance_hca.modeling.relation_head.context import ContextInputs, LSTMContext

from timing_common import interleaved_medians

IMAGE_SIZE = (600, 1000)


def sgb_style_decoder_forward(decoder, sequence, batch_sizes, target_labels=None):
    """``DecoderRNN.forward`` as SGB's loop computes it: per step cat([row, embedding]) @ input_linearity."""
    num_sequences = int(batch_sizes[0])
    state = sequence.new_zeros(num_sequences, decoder.hidden_dim)
    memory = torch.zeros_like(state)
    previous_embedding = decoder.obj_embed.weight[0, None].expand(num_sequences, -1)
    dists, labels, start = [], [], 0
    for size in batch_sizes.tolist():
        rows = slice(start, start + size)
        start += size
        step_input = torch.cat([sequence[rows], previous_embedding[:size]], dim=1)
        state, memory = decoder.highway_step(decoder.input_linearity(step_input), state[:size], memory[:size])
        step_dists = decoder.out_obj(state)
        step_labels = decoder.step_labels(step_dists, target_labels[rows] if decoder.training else None)
        dists.append(step_dists)
        labels.append(step_labels)
        previous_embedding = decoder.obj_embed(step_labels + 1)
    return torch.cat(dists), torch.cat(labels)


def _inputs(args: argparse.Namespace, num_classes: int, mode: str, generator: torch.Generator) -> list[ContextInputs]:
    """One ContextInputs per image (random features, boxes in a 600 x 1000 image)."""
    height, width = IMAGE_SIZE
    images = []
    for _ in range(args.images):
        corner = torch.rand(args.objects, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
        boxes = torch.cat([corner, corner + 16 + torch.rand(args.objects, 2, generator=generator) * 300], dim=1)
        labels = torch.randint(1, num_classes, (args.objects,), generator=generator)
        images.append(ContextInputs(
            torch.randn(args.objects, args.in_channels, generator=generator), encode_box_info(boxes, IMAGE_SIZE),
            [args.objects], labels=labels if mode == "predcls" else None,
            detector_logits=None if mode == "predcls" else torch.randn(args.objects, num_classes, generator=generator),
            boxes=boxes, image_sizes=[IMAGE_SIZE], target_labels=None if mode == "predcls" else labels))
    return images


def _batch(images: list[ContextInputs]) -> ContextInputs:
    def cat(name):
        values = [getattr(image, name) for image in images]
        return None if values[0] is None else torch.cat(values)

    return ContextInputs(cat("roi_features"), cat("box_info"), [n for image in images for n in image.num_objects],
                         labels=cat("labels"), detector_logits=cat("detector_logits"), boxes=cat("boxes"),
                         image_sizes=[size for image in images for size in image.image_sizes],
                         target_labels=cat("target_labels"))


def _relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).abs().max() / reference.double().abs().max())


def bench_motifs_context(args: argparse.Namespace, counted_gflop, matmul_gflops) -> dict:
    """Timings of ours and the reference (training and testing), their agreement and the matmul peak."""
    num_classes, embed_dim = 151, 200
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    context = LSTMContext(args.mode, torch.randn(num_classes, embed_dim), torch.randn(num_classes + 1, embed_dim),
                          args.in_channels, args.hidden, args.obj_layers, args.rel_layers, dropout=0.0,
                          nms_threshold=0.5)
    reference = LSTMContext(args.mode, torch.randn(num_classes, embed_dim), torch.randn(num_classes + 1, embed_dim),
                            args.in_channels, args.hidden, args.obj_layers, args.rel_layers, dropout=0.0,
                            nms_threshold=0.5)
    reference.load_state_dict(context.state_dict())
    if reference.decoder_rnn is not None:
        reference.decoder_rnn.forward = types.MethodType(sgb_style_decoder_forward, reference.decoder_rnn)
    images = _inputs(args, num_classes, args.mode, generator)
    batch = _batch(images)

    def train_step(module) -> None:
        output = module.train()(batch)
        (output.edge_context.sum() + output.object_logits.sum()).backward()

    def test_ours() -> list:
        with torch.no_grad():
            return [context.eval()(batch)]

    def test_reference() -> list:
        with torch.no_grad():
            return [reference.eval()(image) for image in images]

    with torch.no_grad():
        train_ours, train_reference = context.train()(batch), reference.train()(batch)
    tested_ours, tested_reference = test_ours()[0], test_reference()
    reference_logits = torch.cat([output.object_logits for output in tested_reference])
    reference_edges = torch.cat([output.edge_context for output in tested_reference])
    agreement = {
        "train_max_relative_difference": max(
            _relative_difference(train_ours.edge_context, train_reference.edge_context),
            _relative_difference(train_ours.object_logits, train_reference.object_logits)),
        "test_max_relative_difference": max(_relative_difference(tested_ours.edge_context, reference_edges),
                                            _relative_difference(tested_ours.object_logits, reference_logits)),
        "test_labels_equal": bool(torch.equal(tested_ours.object_labels,
                                              torch.cat([output.object_labels for output in tested_reference]))),
    }
    peak_before = matmul_gflops(args.repeat)
    gflop = counted_gflop(lambda: train_step(context))
    seconds, reference_seconds, test_seconds, reference_test_seconds = interleaved_medians(
        [lambda: train_step(context), lambda: train_step(reference), test_ours, test_reference], args.repeat)
    peak = max(peak_before, matmul_gflops(args.repeat))
    result = {"seconds_per_step": seconds, "gflop": gflop, "achieved_gflops": gflop / seconds,
              "matmul_peak_gflops": peak, "fraction_of_matmul_peak": gflop / seconds / peak,
              "reference_seconds_per_step": reference_seconds, "test_seconds": test_seconds,
              "reference_test_seconds": reference_test_seconds, **agreement}
    print(f"Motifs context ({args.mode}), {args.images} images x {args.objects} objects, H {args.hidden}, "
          f"D {args.in_channels}, {args.obj_layers}+{args.rel_layers} LSTM layers: {gflop:.1f} GFLOP per train step")
    print(f"  train forward + backward: ours {seconds:.3f} s, SGB's loop structure {reference_seconds:.3f} s "
          f"({reference_seconds / seconds:.2f}x); {result['fraction_of_matmul_peak']:.0%} of the fp32 matmul peak "
          f"({peak:.0f} GFLOP/s)")
    print(f"  test forward: ours (batched) {test_seconds:.3f} s, SGB's (one image per forward) "
          f"{reference_test_seconds:.3f} s ({reference_test_seconds / test_seconds:.2f}x)")
    print(f"  agreement: train {agreement['train_max_relative_difference']:.1e}, test "
          f"{agreement['test_max_relative_difference']:.1e} (largest relative difference), test labels equal: "
          f"{agreement['test_labels_equal']}")
    return result
