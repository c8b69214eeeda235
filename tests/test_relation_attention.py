"""Batched attention over padded images equals the per-image computation (docs/reference.md#attention-cells),
in eval and train mode,
for images of different sizes (padding never leaks), and the HCA encoder runs RB's update order."""
from __future__ import annotations

import pytest
import torch

from rebalance_hca.modeling.relation_head.context import (AttentionCell, AttentionOptions, ContextInputs,
                                                          HybridCoAttentionContext, PaddedLayout, TransformerContext)

NUM_CLASSES, EMBED_DIM, BOX_DIM, HIDDEN = 7, 12, 20, 16
SIZES = [3, 7, 1, 5]


def _context(kind: str, mode: str, dropout: float) -> torch.nn.Module:
    torch.manual_seed(0)
    cls = HybridCoAttentionContext if kind == "hca" else TransformerContext
    options = AttentionOptions(num_heads=2, key_dim=8, value_dim=8, inner_dim=24, dropout=dropout,
                               attention_dropout=dropout)
    context = cls(mode, torch.randn(NUM_CLASSES, EMBED_DIM), BOX_DIM, HIDDEN, obj_layers=2, rel_layers=2,
                  attention=options, nms_threshold=0.5)
    if dropout == 0.0:  # the box embedding's own dropout (0.1, SGB's) is off too
        for module in context.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return context


def _inputs(sizes: list[int], mode: str, seed: int = 1) -> ContextInputs:
    generator = torch.Generator().manual_seed(seed)
    total = sum(sizes)
    return ContextInputs(
        roi_features=torch.randn(total, BOX_DIM, generator=generator),
        box_info=torch.rand(total, 9, generator=generator),
        num_objects=list(sizes),
        labels=torch.randint(1, NUM_CLASSES, (total,), generator=generator) if mode == "predcls" else None,
        detector_logits=torch.randn(total, NUM_CLASSES, generator=generator) if mode != "predcls" else None)


def _image(inputs: ContextInputs, index: int) -> ContextInputs:
    start = sum(inputs.num_objects[:index])
    rows = slice(start, start + inputs.num_objects[index])
    return ContextInputs(inputs.roi_features[rows], inputs.box_info[rows], [inputs.num_objects[index]],
                         None if inputs.labels is None else inputs.labels[rows],
                         None if inputs.detector_logits is None else inputs.detector_logits[rows])


@pytest.mark.parametrize("kind", ["hca", "transformer"])
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
@pytest.mark.parametrize("train", [False, True])
def test_batched_context_equals_per_image(kind, mode, train):
    context = _context(kind, mode, dropout=0.0).train(train)
    inputs = _inputs(SIZES, mode)
    batched = context(inputs)
    offsets = [0]
    for size in SIZES:
        offsets.append(offsets[-1] + size)
    for index in range(len(SIZES)):
        single = context(_image(inputs, index))
        rows = slice(offsets[index], offsets[index + 1])
        torch.testing.assert_close(batched.edge_context[rows], single.edge_context, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batched.object_logits[rows], single.object_logits, rtol=1e-5, atol=1e-5)
        assert torch.equal(batched.object_labels[rows], single.object_labels)


def test_padding_never_leaks_and_empty_images_are_harmless():
    context = _context("hca", "predcls", dropout=0.0).eval()
    with_empty = _inputs([3, 0, 5], "predcls")
    without_empty = ContextInputs(with_empty.roi_features, with_empty.box_info, [3, 5], with_empty.labels)
    first = context(with_empty).edge_context
    second = context(without_empty).edge_context
    assert first.shape == (8, HIDDEN) and torch.isfinite(first).all()
    torch.testing.assert_close(first[3:], second[3:], rtol=1e-5, atol=1e-5)  # same rows, different padding


def test_batched_gradients_equal_per_image_gradients():
    options = AttentionOptions(num_heads=2, key_dim=8, value_dim=8, inner_dim=24, dropout=0.0, attention_dropout=0.0)
    cell = AttentionCell(HIDDEN, options, self_attention=False)
    queries, keys = torch.randn(9, HIDDEN), torch.randn(9, HIDDEN)
    cell(queries, PaddedLayout([2, 7], queries.device), keys).square().sum().backward()
    batched = [p.grad.clone() for p in cell.parameters()]
    cell.zero_grad()
    for rows in (slice(0, 2), slice(2, 9)):
        cell(queries[rows], PaddedLayout([rows.stop - rows.start], queries.device), keys[rows]).square().sum().backward()
    for together, separately in zip(batched, (p.grad for p in cell.parameters())):
        torch.testing.assert_close(together, separately, rtol=1e-4, atol=1e-5)


def test_padded_layout_round_trip():
    layout = PaddedLayout([2, 0, 3], torch.device("cpu"))
    rows = torch.arange(10.0).reshape(5, 2)
    padded = layout.pad(rows)
    assert padded.shape == (3, 3, 2)
    assert torch.equal(padded[1], torch.zeros(3, 2)) and torch.equal(padded[0, 2], torch.zeros(2))
    assert torch.equal(layout.unpad(padded), rows)
    assert layout.attention_mask[:, 0, 0].tolist() == [[True, True, False], [True, False, False],
                                                        [True, True, True]]


def test_encoder_runs_rb_update_order():
    """Step 2 reads the visual self-stream before its update, step 4 the updated textual one
    (docs/reference.md#hybrid-co-attention-encoder)."""
    context = _context("hca", "predcls", dropout=0.0).eval()
    layer = context.encoder.layers[0]
    calls = []
    for name in ("text_self", "text_cross", "visual_self", "visual_cross"):
        cell = getattr(layer, name)
        cell.register_forward_hook(lambda module, args, output, name=name: calls.append((name, args, output)))
    context.encoder.layers = context.encoder.layers[:1]
    visual, text = torch.randn(4, HIDDEN), torch.randn(4, HIDDEN)
    layout = PaddedLayout([4], visual.device)
    out = context.encoder(visual, text, layout)
    assert [name for name, _, _ in calls] == ["text_self", "text_cross", "visual_self", "visual_cross"]
    recorded = {name: (args, output) for name, args, output in calls}
    assert torch.equal(recorded["text_cross"][0][2], visual)                  # old visual self-stream
    assert torch.equal(recorded["visual_cross"][0][2], recorded["text_self"][1])  # new textual self-stream
    expected = sum(recorded[name][1] for name in ("text_self", "text_cross", "visual_self", "visual_cross"))
    torch.testing.assert_close(out, expected)
